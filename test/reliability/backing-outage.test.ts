import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFaultMesh, type Exit, type FaultMesh, type Shutdown } from "../support/fault-mesh.js";
import { endedIn, inARow, reached, restRunSender, startLoad, type LoadRecord, type LoadReport } from "../support/load-driver.js";
import { watchReadiness, type ReadinessSample } from "../support/readiness-watch.js";
import { progress, writeReport } from "../support/reliability-report.js";
import { isTerminal, restStates, settledAudit, type RunAudit } from "../support/run-audit.js";
import { startThrowawayPostgres, startThrowawayRedis, type ThrowawayServer } from "../support/throwaway-servers.js";

// Stop and restart Redis, then PostgreSQL, under load: a PostgreSQL and a
// Redis of this file's own (never the machine's shared ones, which other test
// files use at the same time), taken down the hard way mid-load and brought
// back on the same port. Count: every request answered, clearly, while each
// is down; no service crashes; full recovery after; no run left RUNNING.

/** deadlineMs is each run's deadline (Grpc-Timeout); hangAfterMs is when a request with no answer counts as lost. */
const deadlineMs = 10_000;
const hangAfterMs = deadlineMs + 15_000;
/** Counts that pace the scenario: requests ended per phase, never seconds. */
const beforeFault = 20;
const whileDown = 40;
const recovered = 20;
/** recoveryBoundMs bounds the wait for `recovered` successes in a row: a generous "never recovers" line, not a speed. */
const recoveryBoundMs = 60_000;
/** noticeBoundMs bounds the wait for the orchestrator's health to notice an outage (it checks every 500 ms here). */
const noticeBoundMs = 20_000;

const id = randomBytes(3).toString("hex");
const prefix = `backing-${id}`;

let postgres: ThrowawayServer | undefined;
let redis: ThrowawayServer | undefined;
let mesh: FaultMesh | undefined;
let result:
  | {
      report: LoadReport;
      records: readonly LoadRecord[];
      audit: RunAudit;
      api: Map<string, string>;
      readiness: ReadinessSample[];
      crashes: readonly Exit[];
      marks: Record<string, number>;
      shutdown: Shutdown;
      recovered: { redis: boolean; postgres: boolean };
      noticed: { redis: boolean; postgres: boolean };
      healthyAgain: { redis: boolean; postgres: boolean };
    }
  | undefined;

const suite = "reliability: Redis and PostgreSQL stopped under load";
const available = await (async () => {
  postgres = await startThrowawayPostgres(suite);
  redis = postgres && (await startThrowawayRedis(suite));
  return Boolean(postgres && redis);
})();

/** answered are the classes of the requests sent in a phase. */
const answered = (phase: string) => new Set(result!.records.filter((r) => r.phase === phase).map((r) => r.outcome.kind));

beforeAll(async () => {
  if (!available) return;
  mesh = await startFaultMesh({
    env: {
      DATABASE_URL: postgres!.url,
      REDIS_URL: redis!.url,
      OFFLINE_LLM_LATENCY_MS: "50",
      // Health notices a lost dependency within half a second (5 s by default).
      HEALTH_CHECK_INTERVAL_MS: "500",
    },
  });
  progress("backing-outage", "mesh up");
  await mesh.warmUp();
  const readiness = watchReadiness(mesh.service("orchestrator").metricsPort!, 100);
  // Two steps that share context (the second reads the first's output: Redis, else PostgreSQL).
  const load = startLoad({
    name: prefix,
    concurrency: 6,
    hangAfterMs,
    phase: "before",
    send: restRunSender(mesh.gatewayUrl, { deadlineMs, body: (r) => ({ input: `Profile our customers, then write ad copy for them (${r.index})`, agents: ["agents/icp_builder", "agents/copywriter"], checks: "CHECKS_OFF" }) }),
  });
  const marks: Record<string, number> = {};
  const mark = (phase: string): void => {
    marks[phase] = performance.now();
    load.phase(phase);
    progress("backing-outage", phase);
  };

  await load.until(endedIn("before", beforeFault), 60_000, `${beforeFault} runs before Redis stops`);
  // Redis first: what PostgreSQL's outage leaves behind must not blur what Redis's does.
  mark("redis-down");
  await redis!.stop();
  await load.until(endedIn("redis-down", whileDown), 60_000, `${whileDown} requests while Redis is down`);
  // Down until health has noticed (or a generous bound passed), so the outage is one the mesh saw.
  const degradedSeen = await readiness.seen("degraded", marks["redis-down"], noticeBoundMs);
  mark("redis-starting");
  await redis!.start();
  mark("redis-back");
  const redisRecovered = await reached(load.until(inARow("redis-back", recovered, "201 SUCCEEDED"), recoveryBoundMs, "recovery from Redis"));
  // Health sees Redis again once ioredis has reconnected (its backoff) and the next check ran: wait for it, bounded.
  const redisHealthy = await readiness.seen("serving", marks["redis-starting"], noticeBoundMs);

  mark("postgres-down");
  await postgres!.stop();
  await load.until(endedIn("postgres-down", whileDown), 60_000, `${whileDown} requests while PostgreSQL is down`);
  const notServingSeen = await readiness.seen("not_serving", marks["postgres-down"], noticeBoundMs);
  mark("postgres-starting");
  await postgres!.start();
  mark("postgres-back");
  const postgresRecovered = await reached(load.until(inARow("postgres-back", recovered, "201 SUCCEEDED"), recoveryBoundMs, "recovery from PostgreSQL"));
  const postgresHealthy = await readiness.seen("serving", marks["postgres-starting"], noticeBoundMs);

  const report = await load.stop();
  progress("backing-outage", "load stopped");
  await readiness.stop();
  const audit = await settledAudit(postgres!.url, prefix);
  const api = await restStates(mesh.gatewayUrl, report.runs);
  const crashes = mesh.crashes();
  // The end of the scenario: every service must still drain and exit 0 (a leaked database connection holds it open).
  const shutdown = await mesh.stop();
  result = {
    report,
    records: load.records,
    audit,
    api,
    readiness: readiness.transitions(),
    crashes,
    marks,
    shutdown,
    recovered: { redis: redisRecovered, postgres: postgresRecovered },
    noticed: { redis: degradedSeen, postgres: notServingSeen },
    healthyAgain: { redis: redisHealthy, postgres: postgresHealthy },
  };
  const t0 = readiness.samples[0]?.at ?? 0;
  writeReport("backing-outage", {
    sent: report.sent,
    answered: report.answered,
    byPhase: report.byPhase,
    hung: report.hung,
    accepted: audit.accepted,
    runsByState: audit.byState,
    stuck: audit.stuck,
    lost: report.hung + audit.stuck.length,
    // The orchestrator's /readyz as a load balancer saw it, ms from the first sample, next to when each fault began.
    readiness: result.readiness.map((s) => `${Math.round(s.at - t0)} ms ${s.status}`),
    faults: Object.fromEntries(Object.entries(marks).map(([k, v]) => [k, `${Math.round(v - t0)} ms`])),
    recovered: result.recovered,
    healthyAgain: result.healthyAgain,
    crashes: result.crashes,
    shutdown: { exits: result.shutdown.exits, stuck: result.shutdown.stuck.map((s) => s.split(";")[0]) },
  });
}, 300_000);

afterAll(async () => {
  try {
    await mesh?.stop();
  } finally {
    await postgres?.destroy();
    await redis?.destroy();
  }
}, 120_000);

describe.skipIf(!available)("Redis, then PostgreSQL, stopped and restarted under load", () => {
  it("no request hangs: every one is answered before its deadline plus slack", () => {
    expect(result!.report.hung).toBe(0);
  });

  it("no service crashes while either is down", () => {
    expect(result!.crashes, "unexpected exits").toEqual([]);
  });

  it("while PostgreSQL is down, requests fail with a clear UNAVAILABLE (runs already accepted end FAILED/PARTIAL, recorded once it is back)", () => {
    for (const kind of answered("postgres-down")) expect(kind).toMatch(/^(201 SUCCEEDED|201 (FAILED|PARTIAL)( UNAVAILABLE)?|503 UNAVAILABLE)$/);
    expect([...answered("postgres-down")].some((k) => k !== "201 SUCCEEDED"), "the outage was felt").toBe(true);
  });

  it("the orchestrator's health follows: DEGRADED while Redis is down, NOT_SERVING while PostgreSQL is, serving again after each", () => {
    const { readiness, noticed, healthyAgain } = result!;
    expect(noticed, JSON.stringify(readiness)).toEqual({ redis: true, postgres: true });
    expect(healthyAgain, JSON.stringify(readiness)).toEqual({ redis: true, postgres: true });
  });

  it("while Redis is down, runs still succeed (shared context from PostgreSQL): Redis is optional", () => {
    for (const kind of answered("redis-down")) expect(kind).toBe("201 SUCCEEDED");
  });

  it(`recovers fully after each: ${recovered} runs in a row succeed again`, () => {
    expect(result!.recovered).toEqual({ redis: true, postgres: true });
  });

  it("every service still drains and exits 0 on SIGTERM afterwards (nothing, such as a database connection, is left held)", () => {
    const { shutdown } = result!;
    expect(shutdown.stuck, "services that did not exit").toEqual([]);
    for (const e of shutdown.exits) expect(e, e.service).toMatchObject({ code: 0, signal: null });
  });

  it("no run is lost: none is left PENDING or RUNNING, in the database or through the API", () => {
    const { audit, api, records } = result!;
    expect(audit.stuck, "runs left PENDING or RUNNING").toEqual([]);
    for (const r of records.filter((x) => x.outcome.run)) expect(audit.states.get(r.requestId), r.requestId).toBe(r.outcome.kind.split(" ")[1]);
    expect([...api.values()].filter((s) => !isTerminal(s))).toEqual([]);
  });
});

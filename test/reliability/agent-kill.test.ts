import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from "../support/databases.js";
import { startFaultMesh, type Exit, type FaultMesh, type Shutdown } from "../support/fault-mesh.js";
import { endedIn, inARow, restRunSender, startLoad, type LoadRecord, type LoadReport } from "../support/load-driver.js";
import { progress, writeReport } from "../support/reliability-report.js";
import { restStates, settledAudit, isTerminal, type RunAudit } from "../support/run-audit.js";

// Kill an agent service under load: SIGKILL v1-agents while runs that need it
// (and runs that do not) stream in through the gateway, keep the load on,
// restart it on the same port, and count: every request answered, cleanly,
// no accepted run left unfinished, and the mesh back by itself.
// While v1-agents is down the orchestrator's circuit to it opens (mesh/resilience.ts): calls fail fast.

/** deadlineMs is each run's deadline (Grpc-Timeout); hangAfterMs is when a request with no answer counts as lost. */
const deadlineMs = 10_000;
const hangAfterMs = deadlineMs + 15_000;
/** Counts that pace the scenario: requests ended per phase, never seconds. */
const beforeKill = 24;
const whileDown = 60;
const recovered = 20;
/**
 * maxAttemptsToRecover bounds the probe runs (one every 250 ms after the
 * restart) that fail before one succeeds again: 240 is a minute, far more
 * than the few seconds recovery takes, so only "never recovers" fails it.
 */
const maxAttemptsToRecover = 240;

const id = randomBytes(3).toString("hex");
const needsV1 = `kill-v1-${id}`;
const v2Only = `kill-v2-${id}`;

let scratch: ScratchDatabase | undefined;
let mesh: FaultMesh | undefined;
let result:
  | {
      hybrid: LoadReport;
      v2: LoadReport;
      probe: LoadReport;
      records: readonly LoadRecord[];
      audit: RunAudit;
      api: Map<string, string>;
      killed: Exit;
      killedAt: number;
      attemptsToRecover: number;
      crashes: readonly Exit[];
      shutdown: Shutdown;
    }
  | undefined;

const answeredKinds = (r: LoadReport, phase?: string) => Object.keys(phase ? (r.byPhase[phase]?.answered ?? {}) : r.answered);
/** clean are the answers a run may get while an agent service is down: a finished run (the failure recorded as UNAVAILABLE), or 503. */
const clean = /^(201 SUCCEEDED|201 (FAILED|PARTIAL)( UNAVAILABLE)?|503 UNAVAILABLE)$/;

// PostgreSQL holds the runs the audit reads; without it the file skips loudly (fails under REQUIRE_TEST_SERVICES=1).
const available = await postgresAvailable("reliability: agent service killed under load");

beforeAll(async () => {
  if (!available) return;
  scratch = await createScratchDatabase();
  // Every model call takes 100 ms, so a kill always lands on calls in flight.
  mesh = await startFaultMesh({ env: { DATABASE_URL: scratch.url, OFFLINE_LLM_LATENCY_MS: "100", AGENT_CACHE: "off" } });
  progress("agent-kill", "mesh up");
  await mesh.warmUp();
  const body = (agents: string[]) => () => ({ input: "Profile our customers, then write ad copy for them", agents, checks: "CHECKS_OFF" });
  // Runs that need v1-agents (profile, then copy) and runs that need only v2-agents, side by side.
  const hybrid = startLoad({ name: needsV1, concurrency: 6, hangAfterMs, phase: "before", send: restRunSender(mesh.gatewayUrl, { deadlineMs, body: body(["agents/icp_builder", "agents/copywriter"]) }) });
  const v2 = startLoad({ name: v2Only, concurrency: 2, hangAfterMs, phase: "before", send: restRunSender(mesh.gatewayUrl, { deadlineMs, body: body(["agents/copywriter"]) }) });
  const loads = [hybrid, v2];

  await hybrid.until(endedIn("before", beforeKill), 60_000, `${beforeKill} runs before the kill`);
  progress("agent-kill", "killing v1-agents");
  loads.forEach((l) => l.phase("down"));
  const killedAt = performance.now();
  const killed = await mesh.signal("v1-agents", "SIGKILL");
  await hybrid.until(endedIn("down", whileDown), 60_000, `${whileDown} runs while v1-agents is down`);

  // The load stays on while v1-agents starts again (seconds); recovery is counted from when it listens.
  progress("agent-kill", "restarting v1-agents");
  loads.forEach((l) => l.phase("restarting"));
  await mesh.restart("v1-agents");
  loads.forEach((l) => l.phase("after"));
  const restartedAt = performance.now();
  progress("agent-kill", "v1-agents listens again");
  // A probe every 250 ms counts the attempts until a run that needs v1-agents succeeds again: a count that does
  // not grow with how fast failures come back, as the closed-loop workers' would.
  const probe = startLoad({ name: `${needsV1}-probe`, concurrency: 1, pauseMs: 250, hangAfterMs, phase: "after", send: restRunSender(mesh.gatewayUrl, { deadlineMs, body: body(["agents/icp_builder", "agents/copywriter"]) }) });
  // Recovered: the last `recovered` runs that needed v1-agents all succeeded.
  await hybrid.until(inARow("after", recovered, "201 SUCCEEDED"), 90_000, `${recovered} successes in a row after the restart`);
  await probe.until((rs) => rs.some((r) => r.outcome.kind === "201 SUCCEEDED"), 90_000, "a probe run that succeeds after the restart");
  const [hybridReport, v2Report, probeReport] = await Promise.all([...loads, probe].map((l) => l.stop()));
  const firstSuccess = probe.records.findIndex((r) => r.outcome.kind === "201 SUCCEEDED");
  const recoveredAt = probe.records[firstSuccess]?.answeredAt ?? NaN;

  progress("agent-kill", "recovered; load stopped");
  // The scratch database is this file's own: every run with a `kill-…` request id is one of this load's.
  const audit = await settledAudit(scratch.url, "kill");
  const api = await restStates(mesh.gatewayUrl, [...hybridReport.runs, ...v2Report.runs, ...probeReport.runs]);
  const crashes = mesh.crashes();
  // The end of the scenario: every service, the restarted one too, must still drain and exit 0.
  const shutdown = await mesh.stop();
  result = {
    shutdown,
    hybrid: hybridReport,
    v2: v2Report,
    probe: probeReport,
    records: [...hybrid.records, ...v2.records, ...probe.records],
    audit,
    api,
    killed,
    killedAt,
    attemptsToRecover: firstSuccess + 1,
    crashes,
  };
  const hung = hybridReport.hung + v2Report.hung + probeReport.hung;
  writeReport("agent-kill", {
    sent: hybridReport.sent + v2Report.sent + probeReport.sent,
    needsV1: { sent: hybridReport.sent, answered: hybridReport.answered, byPhase: hybridReport.byPhase },
    v2Only: { sent: v2Report.sent, answered: v2Report.answered, byPhase: v2Report.byPhase },
    probe: { sent: probeReport.sent, answered: probeReport.answered },
    hung,
    accepted: audit.accepted,
    runsByState: audit.byState,
    stuck: audit.stuck.length,
    lost: hung + audit.stuck.length,
    attemptsToRecover: firstSuccess + 1,
    // For information only (never asserted): from "v1-agents listens again" to the first run that succeeded.
    recoveryMs: Math.round(recoveredAt - restartedAt),
    circuitOpenAnswers: result.records.filter((r) => /circuit open/i.test(r.outcome.message ?? "")).length,
    crashes: result.crashes,
    shutdown: { exits: shutdown.exits, stuck: shutdown.stuck.map((s) => s.split(";")[0]) },
  });
}, 300_000);

afterAll(async () => {
  await mesh?.stop();
  await scratch?.drop();
}, 120_000);

describe.skipIf(!available)("v1-agents killed (SIGKILL) under load, then restarted on its port", () => {
  it("no request hangs: every one is answered before its deadline plus slack", () => {
    const { hybrid, v2, probe } = result!;
    expect(hybrid.hung + v2.hung + probe.hung).toBe(0);
    expect(hybrid.byPhase.down?.sent).toBeGreaterThanOrEqual(whileDown);
  });

  it("no run is lost: every accepted run ends in a terminal state, in the database and through the API", () => {
    const { audit, api, hybrid, v2, probe } = result!;
    expect(audit.stuck, "runs left PENDING or RUNNING").toEqual([]);
    // Every run a client was told about is stored, in the state the client was told.
    expect(audit.accepted).toBeGreaterThanOrEqual(hybrid.runs.length + v2.runs.length + probe.runs.length);
    for (const r of result!.records.filter((x) => x.outcome.run)) {
      expect(audit.states.get(r.requestId), r.requestId).toBe(r.outcome.kind.split(" ")[1]);
    }
    expect([...api.values()].filter((s) => !isTerminal(s))).toEqual([]);
  });

  it("answers are clean while it is down: runs fail with UNAVAILABLE or the call is refused with 503, nothing else", () => {
    const { hybrid, v2, records, killedAt } = result!;
    // Before the kill, everything succeeded (a run sent before it may fail after it: that counts as "while down").
    expect(new Set(records.filter((r) => r.answeredAt < killedAt).map((r) => r.outcome.kind))).toEqual(new Set(["201 SUCCEEDED"]));
    for (const kind of [...answeredKinds(hybrid), ...answeredKinds(v2), ...answeredKinds(result!.probe)]) expect(kind).toMatch(clean);
    // The kill was felt: runs that needed v1-agents failed while it was down.
    expect(answeredKinds(hybrid, "down").some((k) => k !== "201 SUCCEEDED")).toBe(true);
  });

  it("only the killed service exited, by the kill; nothing else crashed, and every service drains and exits 0 at the end", () => {
    expect(result!.killed.signal).toBe("SIGKILL");
    expect(result!.crashes, "unexpected exits").toEqual([]);
    expect(result!.shutdown.stuck, "services that did not exit on SIGTERM").toEqual([]);
    for (const e of result!.shutdown.exits) expect(e, e.service).toMatchObject({ code: 0, signal: null });
  });

  it(`recovers by itself after the restart: runs succeed again within ${maxAttemptsToRecover} probes, then keep succeeding`, () => {
    expect(result!.attemptsToRecover).toBeGreaterThan(0);
    expect(result!.attemptsToRecover).toBeLessThanOrEqual(maxAttemptsToRecover);
  });

  it("fails fast with circuit open while v1-agents is down (circuit breaker)", () => {
    const down = result!.records.filter((r) => r.phase === "down" && r.requestId.startsWith(needsV1));
    const open = down.filter((r) => /circuit open/i.test(r.outcome.message ?? ""));
    expect(open.length, "answers naming an open circuit while v1-agents was down").toBeGreaterThan(0);
    // Open-circuit failures are UNAVAILABLE, as a run's error or as the call's status.
    for (const r of open) expect(r.outcome.kind).toMatch(/UNAVAILABLE/);
  });
});

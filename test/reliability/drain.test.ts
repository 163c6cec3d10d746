import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from "../support/databases.js";
import { startFaultMesh, type Exit, type FaultMesh, type Shutdown } from "../support/fault-mesh.js";
import { plainServerStream } from "../support/grpc-client.js";
import { endedIn, grpcRunSender, startLoad, type LoadRecord, type LoadReport } from "../support/load-driver.js";
import { watchReadiness, type ReadinessSample } from "../support/readiness-watch.js";
import { progress, writeReport } from "../support/reliability-report.js";
import { settledAudit, type RunAudit } from "../support/run-audit.js";

// SIGTERM the orchestrator under load (test/e2e/resilience.test.ts does it
// for one call to an agent service): the runs in flight finish and are
// recorded, health says NOT_SERVING before the listener goes, calls after
// that are refused with UNAVAILABLE, and the process exits 0.

/** deadlineMs is each run's deadline; hangAfterMs is when a request with no answer counts as lost. */
const deadlineMs = 30_000;
const hangAfterMs = deadlineMs + 15_000;
const beforeFault = 8;
const afterExit = 20;

const id = randomBytes(3).toString("hex");
const prefix = `drain-${id}`;

let scratch: ScratchDatabase | undefined;
let mesh: FaultMesh | undefined;
let result:
  | {
      report: LoadReport;
      records: readonly LoadRecord[];
      inFlightAtSigterm: readonly string[];
      sigtermAt: number;
      notServingAt: number;
      exitedAt: number;
      exit: Exit;
      watched: { status: number; at: number }[];
      watchEndedAt: number;
      readiness: ReadinessSample[];
      audit: RunAudit;
      crashes: readonly Exit[];
      shutdown: Shutdown;
    }
  | undefined;

const available = await postgresAvailable("reliability: SIGTERM under load");

beforeAll(async () => {
  if (!available) return;
  scratch = await createScratchDatabase();
  // Every model call takes a second: at the SIGTERM every worker has a run in flight, a second or two from its end.
  mesh = await startFaultMesh({ services: ["v1-agents", "v2-agents", "orchestrator"], env: { DATABASE_URL: scratch.url, OFFLINE_LLM_LATENCY_MS: "1000", AGENT_CACHE: "off" } });
  progress("drain", "mesh up");
  await mesh.warmUp();
  const address = mesh.address("orchestrator");
  const watch = plainServerStream(address, Health.method.watch, { service: "" });
  const watched: { status: number; at: number }[] = [];
  let watchEndedAt = NaN;
  watch.call.on("data", (m: { status: number }) => watched.push({ status: m.status, at: performance.now() }));
  watch.call.on("error", () => (watchEndedAt = performance.now()));
  watch.call.on("end", () => (watchEndedAt = performance.now()));
  const readiness = watchReadiness(mesh.service("orchestrator").metricsPort!, 50);

  const sender = grpcRunSender(address, { deadlineMs, request: () => ({ input: "Profile our customers, then write ad copy for them", agents: ["agents/icp_builder", "agents/copywriter"] }) });
  // A short pause between a worker's calls: refused calls come back at once, and the drain needs the CPU more.
  const load = startLoad({ name: prefix, concurrency: 8, pauseMs: 20, hangAfterMs, phase: "before", send: sender.send });
  await load.until(endedIn("before", beforeFault), 60_000, `${beforeFault} runs before the SIGTERM`);
  // The workers run in step (each run takes two 1 s model calls), so right after those ended most are between
  // two calls. The SIGTERM waits until six have a run under way: sent 100 ms ago or more, so the server has
  // taken it (on loopback that takes about a millisecond) and it is a second or more from its end.
  for (const bound = performance.now() + 30_000; performance.now() < bound; await new Promise((r) => setTimeout(r, 5))) {
    if (load.inFlight().filter((r) => performance.now() - r.sentAt >= 100).length >= 6) break;
  }

  // The requests in flight now are the ones that must finish.
  const ended = new Set(load.records.map((r) => r.requestId));
  progress("drain", "SIGTERM to the orchestrator");
  load.phase("draining");
  const sigtermAt = performance.now();
  const exiting = mesh.signal("orchestrator", "SIGTERM");
  // Wait for Watch to say NOT_SERVING — or for the process to be gone without saying it (the assertions tell).
  let exited = false;
  void exiting.then(() => (exited = true));
  const notServingAt = await new Promise<number>((resolve) => {
    const check = (): void => {
      if (watched.some((w) => w.at >= sigtermAt && w.status === HealthCheckResponse_ServingStatus.NOT_SERVING)) resolve(performance.now());
      else if (exited) resolve(NaN);
      else setTimeout(check, 5);
    };
    check();
  });
  // From here on no call may be accepted. The Watch stream is a call too: close it so the drain need not wait for it.
  load.phase("not-serving");
  watch.close();
  progress("drain", "NOT_SERVING seen");
  const exit = await exiting;
  progress("drain", "the orchestrator exited");
  const exitedAt = performance.now();
  load.phase("exited");
  await load.until(endedIn("exited", afterExit), 60_000, `${afterExit} calls after the exit`);
  const report = await load.stop();
  sender.close();
  await readiness.stop();

  // Requests sent before the SIGTERM that had not ended then.
  const inFlightAtSigterm = load.records.filter((r) => r.phase === "before" && !ended.has(r.requestId) && r.sentAt < sigtermAt).map((r) => r.requestId);
  const audit = await settledAudit(scratch.url, prefix);
  const crashes = mesh.crashes();
  const shutdown = await mesh.stop();
  result = {
    shutdown,
    report,
    records: load.records,
    inFlightAtSigterm,
    sigtermAt,
    notServingAt,
    exitedAt,
    exit,
    watched,
    watchEndedAt,
    readiness: readiness.transitions(),
    audit,
    crashes,
  };
  writeReport("drain", {
    sent: report.sent,
    answered: report.answered,
    byPhase: report.byPhase,
    hung: report.hung,
    inFlightAtSigterm: inFlightAtSigterm.length,
    inFlightTaken: inFlightAtSigterm.filter((id) => audit.states.has(id)).length,
    accepted: audit.accepted,
    runsByState: audit.byState,
    stuck: audit.stuck.length,
    lost: report.hung + audit.stuck.length,
    exit,
    // For information only: ms from the SIGTERM.
    notServingAfterMs: Math.round(notServingAt - sigtermAt),
    exitedAfterMs: Math.round(exitedAt - sigtermAt),
    readiness: result.readiness.map((s) => `${Math.round(s.at - sigtermAt)} ms ${s.status}`),
    crashes: result.crashes,
  });
}, 300_000);

afterAll(async () => {
  await mesh?.stop();
  await scratch?.drop();
}, 120_000);

const byRequest = () => new Map(result!.records.map((r) => [r.requestId, r]));

describe.skipIf(!available)("the orchestrator gets SIGTERM under load", () => {
  it("no request hangs, and the process exits 0 by itself", () => {
    expect(result!.report.hung).toBe(0);
    expect(result!.exit).toEqual({ service: "orchestrator", code: 0, signal: null });
    expect(result!.crashes, "unexpected exits").toEqual([]);
    // Its upstreams, stopped after it, drain and exit 0 too.
    expect(result!.shutdown.stuck).toEqual([]);
    for (const e of result!.shutdown.exits) expect(e, e.service).toMatchObject({ code: 0, signal: null });
  });

  it("every call in flight at the SIGTERM that the server had taken finishes: its run succeeds and is recorded", () => {
    const { inFlightAtSigterm, audit } = result!;
    expect(inFlightAtSigterm.length).toBeGreaterThanOrEqual(4);
    const records = byRequest();
    const taken = inFlightAtSigterm.filter((id) => audit.states.has(id));
    // A call still in transit when the server stopped taking calls is refused whole (UNAVAILABLE: safe to retry,
    // no run was made); every call it had taken runs to the end.
    for (const id of inFlightAtSigterm.filter((x) => !taken.includes(x))) expect(records.get(id)?.outcome.kind, id).toBe("UNAVAILABLE");
    expect(taken.length).toBeGreaterThanOrEqual(inFlightAtSigterm.length / 2);
    for (const id of taken) {
      expect(records.get(id)?.outcome.kind, id).toBe("OK SUCCEEDED");
      expect(audit.states.get(id), id).toBe("SUCCEEDED");
    }
  });

  it("health goes NOT_SERVING first: Watch and /readyz say so before the server goes away", () => {
    const { watched, watchEndedAt, exitedAt, readiness, sigtermAt } = result!;
    // SERVING until the signal; then one change, to NOT_SERVING, and nothing after it.
    expect(watched[0]?.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    const afterSignal = watched.filter((w) => w.at >= sigtermAt);
    expect(afterSignal.map((w) => w.status)).toEqual([HealthCheckResponse_ServingStatus.NOT_SERVING]);
    const notServing = afterSignal[0].at;
    expect(notServing).toBeLessThan(exitedAt);
    if (!Number.isNaN(watchEndedAt)) expect(notServing).toBeLessThanOrEqual(watchEndedAt);
    // The operations port answers not_serving through the drain, before it stops answering at all, and never
    // serving again (a probe answered just after the signal may still say serving: the signal had not landed).
    const after = readiness.filter((s) => s.at > sigtermAt).map((s) => s.status);
    const fromDrain = after.slice(after.findIndex((s) => s !== "serving"));
    expect(fromDrain[0], JSON.stringify(readiness)).toBe("not_serving");
    expect(fromDrain).not.toContain("serving");
  });

  it("no new call is accepted once it is NOT_SERVING: they are refused with UNAVAILABLE", () => {
    const { records } = result!;
    const late = records.filter((r) => r.phase === "not-serving" || r.phase === "exited");
    expect(late.length).toBeGreaterThanOrEqual(afterExit);
    expect(new Set(late.map((r) => r.outcome.kind))).toEqual(new Set(["UNAVAILABLE"]));
    // Calls sent between the SIGTERM and the NOT_SERVING were either served in full or refused.
    for (const r of records.filter((x) => x.phase === "draining")) expect(r.outcome.kind).toMatch(/^(OK SUCCEEDED|UNAVAILABLE)$/);
  });

  it("no run is lost: every accepted run ends in a terminal state in the database", () => {
    const { audit, records } = result!;
    expect(audit.stuck, "runs left PENDING or RUNNING").toEqual([]);
    for (const r of records.filter((x) => x.outcome.run)) expect(audit.states.get(r.requestId), r.requestId).toBe("SUCCEEDED");
  });
});

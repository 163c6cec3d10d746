import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createScratchDatabase, postgresAvailable, type ScratchDatabase } from "../support/databases.js";
import { median, rssBytes, startFaultMesh, type Exit, type FaultMesh, type Shutdown } from "../support/fault-mesh.js";
import { endedIn, reached, restRunSender, startLoad, type LoadRecord, type LoadReport } from "../support/load-driver.js";
import { progress, writeReport } from "../support/reliability-report.js";
import { isTerminal, settledAudit, type RunAudit } from "../support/run-audit.js";
import { startStallingOpenAI, type StallingLlm } from "../support/stalling-llm.js";
import type { ServiceName } from "../../mesh/topology.js";

// A slow upstream: v2-agents' model server (OpenAI-compatible, on loopback)
// takes every request and never answers. Runs sent through the gateway with
// a short deadline (Grpc-Timeout) must end at their deadline — answered
// 504, recorded CANCELLED — the model requests must be let go (the server
// sees each connection closed), and the services' memory must not grow from
// round to round.

/** deadlineMs is each run's deadline; hangAfterMs is when a request with no answer counts as lost (the deadline plus generous slack). */
const deadlineMs = 1_000;
const hangAfterMs = deadlineMs + 10_000;
/** Rounds of load (the first warms up and is not compared), each `perRound` requests. */
const rounds = 7;
const perRound = 24;
/** rssGrowth bounds the second half's median RSS against the first half's, per service. */
const rssGrowth = 1.5;
/** roundsBudgetMs bounds all the rounds together (they take 5-30 s here). */
const roundsBudgetMs = 150_000;
const watched: readonly ServiceName[] = ["gateway", "orchestrator", "v2-agents"];

const id = randomBytes(3).toString("hex");
const prefix = `slow-${id}`;

let scratch: ScratchDatabase | undefined;
let llm: StallingLlm | undefined;
let mesh: FaultMesh | undefined;
let result:
  | {
      report: LoadReport;
      bystanders: LoadReport;
      records: readonly LoadRecord[];
      audit: RunAudit;
      rss: Record<string, number[]>;
      llm: { received: number; abandoned: number; open: number };
      crashes: readonly Exit[];
      shutdown: Shutdown;
      roundsDone: number;
    }
  | undefined;

const available = await postgresAvailable("reliability: slow upstream");

beforeAll(async () => {
  if (!available) return;
  scratch = await createScratchDatabase();
  llm = await startStallingOpenAI();
  mesh = await startFaultMesh({
    env: { DATABASE_URL: scratch.url, AGENT_CACHE: "off" },
    // Only V2 talks to the stalled model server; V1 answers offline (the orchestrator reads both catalogs).
    perService: { "v2-agents": { LLM_PROVIDER: "openai", OPENAI_BASE_URL: llm.baseURL } },
  });
  progress("slow-upstream", "mesh up");
  // A V1 run warms the way in (its catalog read reaches both agent services); a V2 run would stall.
  await mesh.warmUp(["agents/icp_builder"]);
  const load = startLoad({
    name: prefix,
    concurrency: 8,
    hangAfterMs,
    phase: "round-0",
    send: restRunSender(mesh.gatewayUrl, { deadlineMs, body: () => ({ input: "Write three ad variants for our spring sale", agents: ["agents/copywriter"], checks: "CHECKS_OFF" }) }),
  });
  // Alongside, runs that do not need the stalled model (V1, offline), one at a time with the default deadline.
  const bystander = startLoad({
    name: `bystander-${id}`,
    concurrency: 1,
    pauseMs: 100,
    hangAfterMs: 25_000,
    send: restRunSender(mesh.gatewayUrl, { deadlineMs: 10_000, body: () => ({ input: "Build an ideal customer profile for our analytics tool", agents: ["agents/icp_builder"], checks: "CHECKS_OFF" }) }),
  });
  const rss: Record<string, number[]> = Object.fromEntries(watched.map((s) => [s, []]));
  // The rounds share one generous budget, so a slow machine cannot push the hook past its timeout without a report.
  const roundsEnd = performance.now() + roundsBudgetMs;
  let roundsDone = 0;
  for (let round = 0; round < rounds; round++) {
    load.phase(`round-${round}`);
    if (!(await reached(load.until(endedIn(`round-${round}`, perRound), Math.max(1, roundsEnd - performance.now()), `round ${round}`)))) break;
    roundsDone++;
    for (const s of watched) rss[s].push(rssBytes(mesh.service(s).child.pid!) ?? NaN);
    const hangs = load.records.filter((r) => r.outcome.kind === "hang").length;
    progress("slow-upstream", `round ${round} done, ${load.records.length} requests ended, ${hangs} hung`);
    // Hangs fail the scenario anyway; more rounds of them would only spend minutes.
    if (hangs > 0) break;
  }
  const [report, bystanders] = await Promise.all([load.stop(), bystander.stop()]);
  // The model requests are let go: each connection to the stalled server closes (bounded wait: closes are asynchronous).
  for (let i = 0; i < 100 && (llm.openConnections() > 0 || llm.abandoned() < llm.received()); i++) await new Promise((r) => setTimeout(r, 100));
  progress("slow-upstream", "load stopped");
  const audit = await settledAudit(scratch.url, prefix);
  const crashes = mesh.crashes();
  const shutdown = await mesh.stop();
  const llmCounts = { received: llm.received(), abandoned: llm.abandoned(), open: llm.openConnections() };
  result = { report, bystanders, records: load.records, audit, rss, llm: llmCounts, crashes, shutdown, roundsDone };
  const elapsed = load.records.map((r) => r.elapsedMs);
  writeReport("slow-upstream", {
    sent: report.sent + bystanders.sent,
    answered: report.answered,
    hung: report.hung + bystanders.hung,
    bystanders: { sent: bystanders.sent, answered: bystanders.answered },
    accepted: audit.accepted,
    runsByState: audit.byState,
    stuck: audit.stuck.length,
    lost: report.hung + bystanders.hung + audit.stuck.length,
    deadlineMs,
    roundsDone,
    // For information only: how long the answers took (the deadline is 1000 ms).
    answerMs: { median: Math.round(median(elapsed)), max: Math.round(Math.max(...elapsed)) },
    llm: result.llm,
    rssMiB: Object.fromEntries(Object.entries(rss).map(([k, v]) => [k, v.map((b) => Math.round(b / 2 ** 20))])),
    crashes,
    shutdown: { exits: shutdown.exits, stuck: shutdown.stuck.map((s) => s.split(";")[0]) },
  });
}, 300_000);

afterAll(async () => {
  await mesh?.stop();
  await llm?.close();
  await scratch?.drop();
}, 120_000);

describe.skipIf(!available)("the model server stalls (never answers) under load", () => {
  it("deadlines fire: every request is answered — 504 at its deadline, or refused at once (503, an open circuit) — none hangs", () => {
    const { report, bystanders, roundsDone } = result!;
    expect(report.hung + bystanders.hung).toBe(0);
    expect(roundsDone, "rounds that ended within the budget").toBe(rounds);
    for (const kind of Object.keys(report.answered)) expect(kind).toMatch(/^(504 DEADLINE_EXCEEDED|503 UNAVAILABLE|201 FAILED UNAVAILABLE)$/);
    expect(report.answered["504 DEADLINE_EXCEEDED"]).toBeGreaterThan(0);
  });

  it("every accepted run is recorded as ended (CANCELLED by its deadline, or FAILED fast), none left RUNNING", () => {
    const { audit, report } = result!;
    expect(audit.stuck, "runs left PENDING or RUNNING").toEqual([]);
    expect(audit.accepted).toBeLessThanOrEqual(report.sent);
    for (const state of Object.keys(audit.byState)) expect(state).toMatch(/^(CANCELLED|FAILED)$/);
    expect(audit.byState.CANCELLED).toBeGreaterThan(0);
  });

  it("the stall stays contained: runs that do not need the stalled model keep succeeding meanwhile", () => {
    const { bystanders } = result!;
    expect(bystanders.sent).toBeGreaterThan(0);
    expect(bystanders.answered).toEqual({ "201 SUCCEEDED": bystanders.sent });
  });

  it("resources are released: the stalled model requests are abandoned and their connections closed", () => {
    const { llm } = result!;
    // Every model request that reached the stalled server was let go by its caller.
    expect(llm.received).toBeGreaterThan(0);
    expect(llm.abandoned).toBe(llm.received);
    expect(llm.open).toBe(0);
  });

  it(`memory stays flat: each service's median RSS over the later rounds is under ${rssGrowth}x the earlier rounds'`, () => {
    for (const [service, samples] of Object.entries(result!.rss)) {
      const measured = samples.slice(1); // round 0 warms up
      const half = Math.floor(measured.length / 2);
      const early = median(measured.slice(0, half));
      const late = median(measured.slice(measured.length - half));
      expect(late, `${service}: ${samples.map((b) => Math.round(b / 2 ** 20)).join(", ")} MiB`).toBeLessThan(early * rssGrowth);
    }
  });

  it("nothing crashed, and every service drains and exits 0 at the end", () => {
    expect(result!.crashes).toEqual([]);
    expect(result!.shutdown.stuck).toEqual([]);
    for (const e of result!.shutdown.exits) expect(e, e.service).toMatchObject({ code: 0, signal: null });
  });
});

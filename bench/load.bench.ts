/**
 * The load benchmark (docs/performance.md, "Mesh under load"): the whole mesh
 * as `raptorflow start` runs it (embedded defaults, offline provider, the
 * agents' result cache off), driven from a load-generator process of its own
 * (autocannon for REST, a plain grpc-js client for gRPC) at fixed
 * concurrencies, then at fixed rates, and, with --profile-dir, once more
 * under the CPU profiler (a second mesh, each service with --cpu-prof).
 *
 *   npm run bench:load -- [--concurrency 1,32] [--seconds 3] [--warmup 0.5] [--repeats 1]
 *       [--rates auto|none|R1,R2,…] [--cases id,…] [--env KEY=VALUE …]
 *       [--profile-dir DIR [--profile-cases rest:run-v1,rest:agents]]
 *       [--max-other 0.4] [--attempts 2] [--quiet-cores 0.3] [--quiet-wait 60]
 *
 * Cases: REST through the gateway and gRPC straight to the orchestrator for
 * the same calls (ListAgents, ExplainRoute, CreateRun of one V1 agent, of one
 * V2 agent and a hybrid run), and RunAgent straight to each agent service
 * with the same agent and input as the single-agent runs, so that each hop's
 * added latency is a difference measured in the same run.
 *
 * Progress goes to stderr; the Markdown report goes to stdout.
 */
import * as os from "node:os";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { JsonObject } from "@bufbuild/protobuf";
import { authSettings } from "../platform/auth/auth-from-env.js";
import type { ServiceName } from "../mesh/topology.js";
import { newestMainThreadProfile, profileTables, summariseProfile, type ProfileSummary } from "./cpu-profile.js";
import { spawnLoadGenerator, type LoadGenerator, type LoadResult, type LoadTarget } from "./load-generator.js";
import { processCpuSeconds, startLoadMesh, type LoadMesh } from "./load-mesh.js";
import { busyMs, codeState, fmtCores, fmtInt, fmtMs, fmtPct, fmtRatio, machineLine, mdCode, median, versionOf, waitForQuiet } from "./report.js";
import { sourceMapsDirEnv, sourceMapsFileOf } from "./source-maps.js";

// ---------------------------------------------------------------------------
// The calls and the cases

/** CallId names a call the benchmark makes, over one path or several. */
type CallId = "agents" | "explain" | "run-v1" | "run-v2" | "run-hybrid" | "agent-v1" | "agent-v2";

/** PathId names how a call reaches the mesh. */
type PathId = "rest" | "grpc-orchestrator" | "grpc-v1-agents" | "grpc-v2-agents";

const pathLabels: Record<PathId, string> = {
  rest: "REST → gateway → …",
  "grpc-orchestrator": "gRPC → orchestrator → …",
  "grpc-v1-agents": "gRPC → v1-agents",
  "grpc-v2-agents": "gRPC → v2-agents",
};

const icpInput = "Build an ideal customer profile for our B2B analytics tool";
const emailInput = "Write a welcome email for new trial users";

/** OrchestratorCallId names a call to the orchestrator's service. */
type OrchestratorCallId = "agents" | "explain" | "run-v1" | "run-v2" | "run-hybrid";

/** OrchestratorCall is one call as REST (the gateway's route) and as gRPC (the method), with the same request. */
interface OrchestratorCall {
  readonly label: string;
  readonly rest: { readonly method: "GET" | "POST"; readonly path: string };
  readonly grpc: "ListAgents" | "ExplainRoute" | "CreateRun";
  /** request is the request in protobuf JSON: the REST body and the gRPC message are the same. */
  readonly request: JsonObject;
}

const orchestratorCalls: Readonly<Record<OrchestratorCallId, OrchestratorCall>> = {
  agents: { label: "`GET /v3/agents` · `ListAgents`", rest: { method: "GET", path: "/v3/agents" }, grpc: "ListAgents", request: {} },
  explain: {
    label: "`POST /v3/routes:explain` · `ExplainRoute`",
    rest: { method: "POST", path: "/v3/routes:explain" },
    grpc: "ExplainRoute",
    request: { input: "Write three ad variants for our spring sale" },
  },
  "run-v1": {
    label: "`POST /v3/runs` · `CreateRun`, one V1 agent (`icp_builder`)",
    rest: { method: "POST", path: "/v3/runs" },
    grpc: "CreateRun",
    request: { input: icpInput, agents: ["agents/icp_builder"] },
  },
  "run-v2": {
    label: "`POST /v3/runs` · `CreateRun`, one V2 agent (`email_automation`)",
    rest: { method: "POST", path: "/v3/runs" },
    grpc: "CreateRun",
    request: { input: emailInput, agents: ["agents/email_automation"] },
  },
  "run-hybrid": {
    label: "`POST /v3/runs` · `CreateRun`, hybrid (`ROUTE_MODE_HYBRID`)",
    rest: { method: "POST", path: "/v3/runs" },
    grpc: "CreateRun",
    request: { input: `${icpInput} and ${emailInput.charAt(0).toLowerCase()}${emailInput.slice(1)}`, mode: "ROUTE_MODE_HYBRID" },
  },
};

/** LoadCase is one call over one path. */
interface LoadCase {
  readonly id: string;
  readonly call: CallId;
  readonly path: PathId;
  readonly label: string;
  /** target builds the request against the running mesh; `tiers` are the model tiers the orchestrator chose for the single-agent runs. */
  target(mesh: LoadMesh, tiers: ReadonlyMap<string, string>): LoadTarget;
}

function orchestratorCases(): LoadCase[] {
  const out: LoadCase[] = [];
  for (const [call, c] of Object.entries(orchestratorCalls) as [OrchestratorCallId, OrchestratorCall][]) {
    const expect = c.grpc === "CreateRun" ? ("run-succeeded" as const) : undefined;
    out.push({
      id: `rest:${call}`,
      call,
      path: "rest",
      label: c.label,
      target: (mesh) => ({ kind: "http", url: `${mesh.gatewayUrl}${c.rest.path}`, method: c.rest.method, body: c.rest.method === "GET" ? undefined : JSON.stringify(c.request), expect }),
    });
    out.push({
      id: `grpc:${call}`,
      call,
      path: "grpc-orchestrator",
      label: c.label,
      target: (mesh) => ({ kind: "grpc", address: mesh.address("orchestrator"), method: `raptorflow.v3.OrchestratorService/${c.grpc}`, request: c.request, expect }),
    });
  }
  return out;
}

/** The agent calls: the agent and input of a single-agent run, with the model tier the orchestrator gives that step. */
const agentCases: LoadCase[] = [
  { call: "agent-v1", path: "grpc-v1-agents", agent: "agents/icp_builder", input: icpInput, service: "v1-agents", run: "run-v1" },
  { call: "agent-v2", path: "grpc-v2-agents", agent: "agents/email_automation", input: emailInput, service: "v2-agents", run: "run-v2" },
].map((a) => ({
  id: `grpc:${a.call}`,
  call: a.call as CallId,
  path: a.path as PathId,
  label: `\`RunAgent\` \`${a.agent.slice(7)}\` (the agent of the ${a.run === "run-v1" ? "V1" : "V2"} run, same input)`,
  target: (mesh: LoadMesh, tiers: ReadonlyMap<string, string>): LoadTarget => ({
    kind: "grpc",
    address: mesh.address(a.service as ServiceName),
    method: "raptorflow.agent.v1.AgentService/RunAgent",
    request: { name: a.agent, input: a.input, modelTier: tiers.get(a.agent) ?? "MODEL_TIER_UNSPECIFIED" },
  }),
}));

const allCases: readonly LoadCase[] = [...orchestratorCases(), ...agentCases];

/**
 * checkCases sends each REST call once and checks its answer (a 2xx; a run
 * that SUCCEEDED, with the steps it should have), so a broken case fails
 * before it is measured. It returns what the report says about each call
 * (steps, answer size) and the model tier each single-agent run gave its
 * agent, so the direct RunAgent calls ask for the same.
 */
async function checkCases(mesh: LoadMesh): Promise<{ notes: Map<CallId, string>; tiers: Map<string, string> }> {
  const notes = new Map<CallId, string>();
  const tiers = new Map<string, string>();
  for (const [call, c] of Object.entries(orchestratorCalls) as [OrchestratorCallId, OrchestratorCall][]) {
    const res = await fetch(`${mesh.gatewayUrl}${c.rest.path}`, {
      method: c.rest.method,
      headers: c.rest.method === "GET" ? {} : { "content-type": "application/json" },
      body: c.rest.method === "GET" ? undefined : JSON.stringify(c.request),
    });
    const text = await res.text();
    if (res.status < 200 || res.status > 299) throw new Error(`${c.rest.method} ${c.rest.path} answered ${res.status}: ${text.slice(0, 500)}`);
    const json = JSON.parse(text) as {
      state?: string;
      error?: string;
      steps?: Array<{ agent: string; modelTier?: string }>;
      route?: { steps: Array<{ agent: string; modelTier?: string }> };
      agents?: unknown[];
    };
    const size = `${fmtInt(Buffer.byteLength(text) / 1024)} KiB of JSON`;
    if (c.grpc === "CreateRun") {
      if (json.state !== "STATE_SUCCEEDED") throw new Error(`${call}: the run ended ${json.state}: ${json.error}`);
      const steps = json.route!.steps;
      if (call !== "run-hybrid" && steps.length !== 1) throw new Error(`${call}: expected one step, the route has ${steps.map((s) => s.agent).join(", ")}`);
      if (call === "run-hybrid" && !(steps.length >= 2)) throw new Error(`${call}: expected a V1 and a V2 step, the route has ${steps.map((s) => s.agent).join(", ")}`);
      for (const s of steps) if (call !== "run-hybrid") tiers.set(s.agent, s.modelTier ?? "MODEL_TIER_UNSPECIFIED");
      notes.set(
        call,
        `${steps.length} step${steps.length > 1 ? "s" : ""}: ${steps.map((s) => `${s.agent.slice(7)} (${(s.modelTier ?? "").replace("MODEL_TIER_", "").toLowerCase()})`).join(", ")}; answer ${size}; SQL statements per run: ${await statementsPerCall(mesh, c)}`,
      );
    } else if (call === "explain") {
      notes.set(call, `plans ${json.steps!.length} steps; answer ${size}`);
    } else {
      notes.set(call, `${json.agents!.length} agents; answer ${size}`);
    }
  }
  return { notes, tiers };
}

/** databaseStatements sums each service's `db.client.operation.duration` count (PostgreSQL statements so far) from its /metrics. */
async function databaseStatements(mesh: LoadMesh): Promise<Map<ServiceName, number>> {
  const out = new Map<ServiceName, number>();
  for (const s of mesh.services) {
    const text = await (await fetch(mesh.metricsUrl(s.name))).text();
    let n = 0;
    for (const line of text.split("\n")) {
      if (line.startsWith("db_client_operation_duration_count{") && line.includes('db_system_name="postgresql"')) n += Number(line.slice(line.lastIndexOf(" ") + 1));
    }
    out.set(s.name, n);
  }
  return out;
}

/**
 * statementsPerCall sends a REST call `times` times, one after the other, and
 * returns how many SQL statements each service ran per call (from the
 * services' own query metrics), for the services that ran any.
 */
async function statementsPerCall(mesh: LoadMesh, c: OrchestratorCall, times = 10): Promise<string> {
  const before = await databaseStatements(mesh);
  for (let i = 0; i < times; i++) {
    const res = await fetch(`${mesh.gatewayUrl}${c.rest.path}`, {
      method: c.rest.method,
      headers: c.rest.method === "GET" ? {} : { "content-type": "application/json" },
      body: c.rest.method === "GET" ? undefined : JSON.stringify(c.request),
    });
    await res.arrayBuffer();
  }
  const after = await databaseStatements(mesh);
  const per = [...after].map(([name, n]) => [name, (n - (before.get(name) ?? 0)) / times] as const).filter(([, n]) => n > 0);
  return per.length ? per.map(([name, n]) => `${name} ${Number.isInteger(n) ? n : n.toFixed(1)}`).join(", ") : "none";
}

// ---------------------------------------------------------------------------
// Measuring

/** Measured is one load run with the CPU of every process over its window. */
interface Measured {
  readonly result: LoadResult;
  readonly reqPerSec: number;
  /** meshCores is each service's CPU over the window, in cores. */
  readonly meshCores: ReadonlyMap<ServiceName, number>;
  readonly generatorCores: number;
  readonly machineCores: number;
  /** otherCores is the machine's CPU less the mesh's, the generator's and this process's: other work on a shared machine. */
  readonly otherCores: number;
  /** window is the measured window on the machine's monotonic clock (µs), which V8's profiler stamps its samples with. */
  readonly window: readonly [number, number];
}

const monoMicros = (): number => Number(process.hrtime.bigint() / 1000n);

/**
 * meshSettled waits (up to `maxMs`) until the mesh is idle — under
 * `idleCores` over a quarter of a second — so that requests a previous run
 * left in flight do not land in the next run's window.
 */
async function meshSettled(mesh: LoadMesh, idleCores: number, maxMs = 10_000): Promise<void> {
  const total = (): number => [...mesh.cpuSeconds().values()].reduce((n, c) => n + c, 0);
  const until = performance.now() + maxMs;
  while (performance.now() < until) {
    const c0 = total();
    await new Promise((resolve) => setTimeout(resolve, 250));
    if ((total() - c0) / 0.25 < idleCores) return;
  }
}

/** measure runs one load from the generator, reading the CPU of every process as its window opens and closes. */
async function measure(
  generator: LoadGenerator,
  mesh: LoadMesh,
  target: LoadTarget,
  load: { concurrency: number; ratePerSec?: number; warmupMs: number; durationMs: number; idleCores?: number },
): Promise<Measured> {
  type Edge = { wall: number; mono: number; busy: number; mesh: Map<ServiceName, number>; generator: number; self: number };
  const read = (): Edge => {
    const { user, system } = process.cpuUsage();
    return { wall: performance.now(), mono: monoMicros(), busy: busyMs(), mesh: mesh.cpuSeconds(), generator: processCpuSeconds(generator.pid), self: (user + system) / 1e6 };
  };
  // An idle mesh uses about 0.1 cores; under the profiler, about 0.15 per process more (the profiler's thread).
  await meshSettled(mesh, load.idleCores ?? 0.2);
  let a: Edge | undefined;
  let b: Edge | undefined;
  const maxInFlight = load.ratePerSec === undefined ? undefined : Math.max(64, Math.ceil(load.ratePerSec * 0.2));
  const result = await generator.run({ target, concurrency: load.concurrency, ratePerSec: load.ratePerSec, warmupMs: load.warmupMs, durationMs: load.durationMs, maxInFlight }, (edge) => (edge === "start" ? (a = read()) : (b = read())));
  if (!a || !b) throw new Error("the load generator did not report its window");
  const seconds = (b.wall - a.wall) / 1000;
  const meshCores = new Map([...b.mesh].map(([name, cpu]) => [name, (cpu - a!.mesh.get(name)!) / seconds]));
  const generatorCores = (b.generator - a.generator) / seconds;
  const selfCores = (b.self - a.self) / seconds;
  const machineCores = (b.busy - a.busy) / 1000 / seconds;
  const meshTotal = [...meshCores.values()].reduce((n, c) => n + c, 0);
  return {
    result,
    reqPerSec: result.ok / result.seconds,
    meshCores,
    generatorCores,
    machineCores,
    otherCores: machineCores - meshTotal - generatorCores - selfCores,
    window: [a.mono, b.mono],
  };
}

// ---------------------------------------------------------------------------
// Report helpers

const serviceOrder: readonly ServiceName[] = ["gateway", "orchestrator", "v1-agents", "v2-agents", "identity"];
const shortName: Record<ServiceName, string> = { gateway: "gw", orchestrator: "orch", "v1-agents": "v1", "v2-agents": "v2", identity: "id" };

function failuresText(failures: Readonly<Record<string, number>>): string {
  const kinds = Object.entries(failures).sort((x, y) => y[1] - x[1]);
  return kinds.length ? kinds.map(([k, n]) => `${fmtInt(n)} ${k}`).join("; ") : "0";
}

/** summariseRuns is the median of each figure over a case's runs, and the failures summed. */
function summariseRuns(runs: readonly Measured[]) {
  const pick = (f: (m: Measured) => number): number => median(runs.map(f));
  const failures: Record<string, number> = {};
  for (const r of runs) for (const [k, n] of Object.entries(r.result.failures)) failures[k] = (failures[k] ?? 0) + n;
  const meshCores = new Map(serviceOrder.map((s) => [s, pick((m) => m.meshCores.get(s) ?? Number.NaN)]));
  const meshTotal = pick((m) => [...m.meshCores.values()].reduce((n, c) => n + c, 0));
  return {
    reqPerSec: pick((m) => m.reqPerSec),
    p50Ms: pick((m) => m.result.p50Ms),
    p95Ms: pick((m) => m.result.p95Ms),
    p99Ms: pick((m) => m.result.p99Ms),
    failed: runs.reduce((n, r) => n + r.result.failed, 0),
    failures,
    firstFailure: runs.find((r) => r.result.firstFailure)?.result.firstFailure,
    meshCores,
    meshTotal,
    meshCpuMsPerRequest: pick((m) => ([...m.meshCores.values()].reduce((n, c) => n + c, 0) * 1000) / m.reqPerSec),
    generatorCores: pick((m) => m.generatorCores),
    otherCores: pick((m) => m.otherCores),
    runs: runs.length,
  };
}

type Summary = ReturnType<typeof summariseRuns>;

const fmtLoad = (l: readonly number[]): string => l.map((x) => x.toFixed(2)).join(" ");

function fail(message: string): never {
  throw new Error(message);
}

// ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      concurrency: { type: "string", default: "1,32" },
      seconds: { type: "string", default: "3" },
      warmup: { type: "string", default: "0.5" },
      repeats: { type: "string", default: "1" },
      rates: { type: "string", default: "auto" },
      cases: { type: "string" },
      env: { type: "string", multiple: true, default: [] },
      "profile-dir": { type: "string" },
      "profile-cases": { type: "string", default: "rest:run-v1,rest:agents" },
      "max-other": { type: "string", default: "0.4" },
      attempts: { type: "string", default: "2" },
      "quiet-cores": { type: "string", default: "0.3" },
      "quiet-wait": { type: "string", default: "60" },
    },
  });
  const concurrencies = values.concurrency.split(",").map(Number);
  const durationMs = Number(values.seconds) * 1000;
  const warmupMs = Number(values.warmup) * 1000;
  const repeats = Number(values.repeats);
  const maxOther = Number(values["max-other"]);
  const attempts = Math.max(1, Number(values.attempts));
  const quietCores = Number(values["quiet-cores"]);
  const quietWaitMs = Number(values["quiet-wait"]) * 1000;
  if (!concurrencies.every((c) => Number.isInteger(c) && c >= 1)) throw new Error("--concurrency takes a comma-separated list of whole numbers ≥ 1");
  if (![durationMs, warmupMs, repeats].every((n) => Number.isFinite(n) && n >= 0) || durationMs <= 0 || repeats < 1) throw new Error("--seconds, --warmup and --repeats must be positive numbers");
  const fixedRates = values.rates === "auto" ? undefined : values.rates === "none" ? [] : values.rates.split(",").map(Number);
  if (fixedRates && !fixedRates.every((r) => Number.isFinite(r) && r > 0)) throw new Error("--rates takes auto, none, or a comma-separated list of requests per second");
  const extraEnv = Object.fromEntries(
    values.env.map((kv) => {
      const i = kv.indexOf("=");
      if (i < 1) throw new Error(`--env takes KEY=VALUE, got "${kv}"`);
      return [kv.slice(0, i), kv.slice(i + 1)];
    }),
  );
  const wanted = values.cases?.split(",");
  const cases = allCases.filter((c) => !wanted || wanted.includes(c.id) || wanted.includes(c.call));
  if (cases.length === 0) throw new Error(`--cases matched nothing; the cases are ${allCases.map((c) => c.id).join(", ")}`);
  const script = process.env.npm_lifecycle_event;
  const command = [script ? `npm run ${script}` : "npx tsx bench/load.bench.ts", ...(process.argv.length > 2 ? [...(script ? ["--"] : []), ...process.argv.slice(2)] : [])].join(" ");

  const log = (s: string): void => void process.stderr.write(s);
  const startedAt = new Date();
  const loadBefore = os.loadavg();
  const codeAtStart = codeState(["services", "mesh", "platform", "gen", "bench"]);
  const wallStart = performance.now();

  let mesh: LoadMesh | undefined;
  let generator: LoadGenerator | undefined;
  const cleanUp = async (): Promise<void> => {
    await generator?.stop().catch(() => undefined);
    await mesh?.stop().catch(() => undefined);
    generator = mesh = undefined;
  };
  // A mesh still starting when the benchmark is interrupted is stopped once it is up: its processes must not outlive us.
  let starting: Promise<LoadMesh> | undefined;
  const startMesh = async (options: Parameters<typeof startLoadMesh>[0]): Promise<LoadMesh> => {
    starting = startLoadMesh(options);
    try {
      return await starting;
    } finally {
      starting = undefined;
    }
  };
  let interrupted = false;
  process.once("SIGINT", () => {
    interrupted = true;
    log("\ninterrupted: stopping the mesh…\n");
    void (starting ?? Promise.resolve(undefined))
      .then((m) => m?.stop(), () => undefined)
      .then(cleanUp)
      .finally(() => process.exit(130));
  });

  try {
    log(`load average ${fmtLoad(loadBefore)}; waiting for a quiet machine… `);
    const idleBefore = await waitForQuiet(quietCores, quietWaitMs, log);
    log(`${idleBefore.toFixed(2)} cores busy\nstarting the mesh… `);
    const t0 = performance.now();
    mesh = await startMesh({ env: extraEnv });
    const meshStartSeconds = (performance.now() - t0) / 1000;
    const meshSettings = mesh.settings;
    const removedEnv = mesh.removed;
    const auth = authSettings({ ...meshSettings });
    generator = await spawnLoadGenerator();
    log(`ready in ${meshStartSeconds.toFixed(1)} s (${mesh.services.map((s) => `${s.name} :${s.port}`).join(", ")})\n`);
    const { notes, tiers } = await checkCases(mesh);

    // Closed loop: every case at every concurrency, round after round, interleaved.
    const runs = new Map<string, Measured[]>();
    const key = (c: LoadCase, concurrency: number): string => `${c.id}@${concurrency}`;
    let again = 0;
    let disturbed = 0;
    for (let round = 1; round <= repeats; round++) {
      for (const concurrency of concurrencies) {
        for (const c of cases) {
          log(`round ${round}/${repeats}, ${c.id}, ${concurrency} in flight… `);
          let kept: Measured | undefined;
          for (let attempt = 1; attempt <= attempts; attempt++) {
            const m = await measure(generator, mesh, c.target(mesh, tiers), { concurrency, warmupMs, durationMs });
            if (!kept || m.otherCores < kept.otherCores) kept = m;
            if (m.otherCores <= maxOther) break;
            if (attempt < attempts) {
              again++;
              log(`[other work ${fmtCores(m.otherCores)} cores: again] `);
              await waitForQuiet(quietCores, Math.min(quietWaitMs, 60_000), log);
            }
          }
          if (kept!.otherCores > maxOther) disturbed++;
          runs.set(key(c, concurrency), [...(runs.get(key(c, concurrency)) ?? []), kept!]);
          const r = kept!.result;
          log(`${fmtInt(kept!.reqPerSec)}/s, p50 ${fmtMs(r.p50Ms)} p99 ${fmtMs(r.p99Ms)} ms, failed ${r.failed}${r.firstFailure ? ` (${r.firstFailure.slice(0, 160)})` : ""}\n`);
        }
      }
    }

    // Fixed rates: the full path of a single-agent V1 run.
    const rateCase = allCases.find((c) => c.id === "rest:run-v1")!;
    const top = Math.max(...concurrencies);
    const closedRate = runs.has(key(rateCase, top)) ? summariseRuns(runs.get(key(rateCase, top))!).reqPerSec : Number.NaN;
    const rates =
      fixedRates ??
      [...new Set([0.5, 0.9].map((f) => Math.max(1, Math.round((closedRate * f) / 5) * 5)).filter(Number.isFinite)), 1000]
        .filter((r, i, all) => all.indexOf(r) === i)
        .sort((x, y) => x - y);
    const rateRuns: Array<{ rate: number; m: Measured }> = [];
    for (const rate of rates) {
      log(`fixed rate ${fmtInt(rate)}/s, ${rateCase.id}… `);
      const m = await measure(generator, mesh, rateCase.target(mesh, tiers), { concurrency: 1, ratePerSec: rate, warmupMs, durationMs });
      rateRuns.push({ rate, m });
      const r = m.result;
      log(`${fmtInt(m.reqPerSec)}/s answered, p50 ${fmtMs(r.p50Ms)} p99 ${fmtMs(r.p99Ms)} ms, failed ${r.failed}${r.firstFailure ? ` (${r.firstFailure.slice(0, 120)})` : ""}\n`);
    }
    await generator.stop();
    generator = undefined;
    await mesh.stop();
    mesh = undefined;
    const loadAfterMeasuring = os.loadavg();

    // One more mesh under the CPU profiler: each profiled case gets a window of its own in the same profiles.
    const profileDir = values["profile-dir"];
    const profiled: Array<{ c: LoadCase; m: Measured; processes: Array<{ service: ServiceName; summary: ProfileSummary; cores: number }> }> = [];
    const profileCases = profileDir === undefined ? [] : values["profile-cases"].split(",").map((id) => allCases.find((c) => c.id === id) ?? fail(`--profile-cases: no case ${id}`));
    const profileStart = performance.now();
    if (profileDir !== undefined && profileCases.length) {
      // Only the files a profiled mesh writes are cleared: the folder is the caller's.
      mkdirSync(profileDir, { recursive: true });
      for (const f of readdirSync(profileDir)) if (f.endsWith(".cpuprofile") || /^source-maps\.\d+\.json$/.test(f)) rmSync(join(profileDir, f));
      log(`profiling: starting the mesh with --cpu-prof (${profileDir})… `);
      mesh = await startMesh({
        env: extraEnv,
        nodeOptions: `--cpu-prof --cpu-prof-dir=${profileDir} --import=${new URL("./source-maps.ts", import.meta.url).href}`,
        extraEnv: { [sourceMapsDirEnv]: profileDir },
      });
      generator = await spawnLoadGenerator();
      await checkCases(mesh);
      const windows: Array<{ c: LoadCase; m: Measured }> = [];
      for (const c of profileCases) {
        log(`${c.id}… `);
        const m = await measure(generator, mesh, c.target(mesh, tiers), { concurrency: top, warmupMs, durationMs, idleCores: 1 });
        windows.push({ c, m });
        log(`${fmtInt(m.reqPerSec)}/s under the profiler; `);
      }
      log("stopping… ");
      const pids = new Map(mesh.services.map((s) => [s.name, s.child.pid!]));
      await generator.stop();
      generator = undefined;
      await mesh.stop();
      mesh = undefined;
      for (const { c, m } of windows) {
        // The processes that worked in this window, busiest first (at most three).
        const busy = [...m.meshCores].filter(([, cores]) => cores >= 0.05).sort((x, y) => y[1] - x[1]).slice(0, 3);
        const processes: Array<{ service: ServiceName; summary: ProfileSummary; cores: number }> = [];
        for (const [service, cores] of busy) {
          const file = newestMainThreadProfile(profileDir, pids.get(service)!);
          if (!file) {
            log(`no profile of ${service} (pid ${pids.get(service)}) in ${profileDir}\n`);
            continue;
          }
          processes.push({ service, cores, summary: summariseProfile(file, { window: m.window, sourceMapsFile: sourceMapsFileOf(profileDir, pids.get(service)!) }) });
        }
        profiled.push({ c, m, processes });
      }
      log("done\n");
    }
    const totalSeconds = (performance.now() - wallStart) / 1000;
    const profileSeconds = (performance.now() - profileStart) / 1000;

    // ---- Report
    const out: string[] = [];
    const codeAtEnd = codeState(["services", "mesh", "platform", "gen", "bench"]);
    out.push("## Mesh under load", "");
    out.push(`- Command: \`${command}\` (${Math.round(totalSeconds)} s in all${profiled.length ? `, ${Math.round(profileSeconds)} s of it the profiled mesh` : ""})`);
    out.push(`- Date: ${startedAt.toISOString()}`);
    out.push(`- Machine: ${machineLine()}; load average ${fmtLoad(loadBefore)} before, ${fmtLoad(loadAfterMeasuring)} after measuring; ${idleBefore.toFixed(2)} cores busy in the second before the mesh started`);
    out.push(
      `- Runtime: Node.js ${process.version}; @grpc/grpc-js ${versionOf("@grpc/grpc-js")}, fastify ${versionOf("fastify")}, @connectrpc/connect ${versionOf("@connectrpc/connect")}, @bufbuild/protobuf ${versionOf("@bufbuild/protobuf")}, @electric-sql/pglite ${versionOf("@electric-sql/pglite")}, @mikro-orm/core ${versionOf("@mikro-orm/core")}, autocannon ${versionOf("autocannon")}`,
    );
    out.push(`- Code: ${codeAtStart}${codeAtEnd === codeAtStart ? "" : `; **changed during the run**, at the end: ${codeAtEnd}`}`);
    out.push(
      `- Mesh: \`launchMesh\` (as \`raptorflow start\`), each service a process on 127.0.0.1, started in ${meshStartSeconds.toFixed(1)} s; environment: ${Object.entries(meshSettings).map(([k, v]) => `${k}=${v}`).join(", ")}; ` +
        `${removedEnv.length ? `taken out of the inherited environment: ${removedEnv.join(", ")}` : "no other variable that configures the mesh was set"}. Auth as the services read it (\`authSettings\`): ${auth.required ? "AUTH=required" : "AUTH=optional (anonymous calls allowed, a token is verified when sent)"}; gateway rate limits off (not production); runs and agent results persisted in the services' embedded PGlite.`,
    );
    out.push(
      `- Load: a separate load-generator process (\`bench/load-generator.ts\`): autocannon for REST (N keep-alive HTTP/1.1 connections, one request each), a plain grpc-js client for gRPC (N calls in flight on one channel, 30 s deadline); ${warmupMs / 1000} s warm-up + ${durationMs / 1000} s measured per run; ${repeats} run${repeats > 1 ? "s" : ""} per case and concurrency, interleaved${repeats > 1 ? "; each figure is the median over the runs" : ""}. Each run starts once the mesh is idle again (what the run before left in flight has finished); latency counts answers that complete inside the window; a run that does not end SUCCEEDED counts as failed. The gateway logs every request (fastify's request log, two JSON lines, the default outside NODE_ENV=test) to a pipe the benchmark reads and drops.`,
    );
    out.push("");

    out.push("### Throughput and latency", "");
    out.push("| Call | Path | in flight | req/s | p50 ms | p95 ms | p99 ms | failed | mesh CPU (cores): gw / orch / v1 / v2 / id | mesh CPU ms per request | load generator CPU (cores) | other work (cores) |");
    out.push("|---|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|");
    const summaries = new Map<string, Summary>();
    for (const concurrency of concurrencies) {
      for (const c of cases) {
        const s = summariseRuns(runs.get(key(c, concurrency))!);
        summaries.set(key(c, concurrency), s);
        out.push(
          `| ${c.label} | ${pathLabels[c.path]} | ${concurrency} | ${fmtInt(s.reqPerSec)} | ${fmtMs(s.p50Ms)} | ${fmtMs(s.p95Ms)} | ${fmtMs(s.p99Ms)} | ${failuresText(s.failures)} | ${serviceOrder.map((n) => fmtCores(s.meshCores.get(n)!)).join(" / ")} | ${fmtMs(s.meshCpuMsPerRequest)} | ${fmtCores(s.generatorCores)} | ${fmtCores(s.otherCores)} |`,
        );
      }
    }
    out.push("");
    out.push(`Calls: ${[...notes].map(([call, note]) => `${call}: ${note}`).join("; ")}. Request bodies: ${Object.entries(orchestratorCalls).map(([call, c]) => `${call} ${mdCode(JSON.stringify(c.request))}`).join(", ")}.`);
    const failures = cases.flatMap((c) => concurrencies.map((n) => [c, n, summaries.get(key(c, n))!] as const)).filter(([, , s]) => s.failed > 0);
    if (failures.length) out.push("", `First failures: ${failures.map(([c, n, s]) => `${c.id} at ${n}: ${mdCode((s.firstFailure ?? "").slice(0, 200))}`).join("; ")}.`);
    out.push(
      "",
      `"Other work" is the machine's CPU (os.cpus()) less the mesh's, the load generator's and the benchmark's: someone else's work on the shared machine (±0.1 or so is slack). A run with more than ${maxOther} cores of it was measured again (${again} were, up to ${attempts} attempts, keeping the least disturbed); ${disturbed} kept runs are still above ${maxOther}.`,
    );

    // Ratios.
    const s = (id: string, n: number): Summary | undefined => summaries.get(`${id}@${n}`);
    const low = Math.min(...concurrencies);
    out.push("", "### Ratios measured in the same run", "");
    out.push(`REST through the gateway against the same call over gRPC straight to the orchestrator (req/s at ${top} in flight; latency at ${low} and at ${top} in flight):`, "");
    out.push(`| Call | req/s REST / gRPC (${top}) | p50 REST / gRPC (${low}) | p50 REST / gRPC (${top}) | p99 REST / gRPC (${top}) |`);
    out.push("|---|---:|---:|---:|---:|");
    for (const call of Object.keys(orchestratorCalls) as OrchestratorCallId[]) {
      const [rl, gl, rt, gt] = [s(`rest:${call}`, low), s(`grpc:${call}`, low), s(`rest:${call}`, top), s(`grpc:${call}`, top)];
      if (!rl || !gl || !rt || !gt) continue;
      out.push(`| ${orchestratorCalls[call].label} | ${fmtRatio(rt.reqPerSec / gt.reqPerSec)} | ${fmtRatio(rl.p50Ms / gl.p50Ms)} | ${fmtRatio(rt.p50Ms / gt.p50Ms)} | ${fmtRatio(rt.p99Ms / gt.p99Ms)} |`);
    }
    out.push("", `Each hop's added latency: the p50 of a call less the p50 of the same work one hop further in (ms; target under 1 ms at p50):`, "");
    out.push(`| Hop | compared | added p50, ${low} in flight | added p50, ${top} in flight |`);
    out.push("|---|---|---:|---:|");
    const hop = (a: string, b: string, n: number): number => (s(a, n)?.p50Ms ?? Number.NaN) - (s(b, n)?.p50Ms ?? Number.NaN);
    const hops: Array<{ group: string; call: string; name: string; compared: string; a: string; b: string }> = [
      ...(Object.keys(orchestratorCalls) as OrchestratorCallId[]).map((call) => ({
        group: "gateway",
        call,
        name: "gateway (REST → gRPC)",
        compared: `${orchestratorCalls[call].label}: REST − gRPC`,
        a: `rest:${call}`,
        b: `grpc:${call}`,
      })),
      { group: "orchestrator", call: "run-v1", name: "orchestrator → v1-agents (incl. the orchestrator's routing and persistence)", compared: "`CreateRun` of `icp_builder` − `RunAgent` `icp_builder`", a: "grpc:run-v1", b: "grpc:agent-v1" },
      { group: "orchestrator", call: "run-v2", name: "orchestrator → v2-agents (incl. the orchestrator's routing and persistence)", compared: "`CreateRun` of `email_automation` − `RunAgent` `email_automation`", a: "grpc:run-v2", b: "grpc:agent-v2" },
    ];
    const hopValues: Array<{ group: string; call: string; name: string; low: number }> = [];
    for (const h of hops) {
      if (!s(h.a, low) || !s(h.b, low)) continue;
      hopValues.push({ group: h.group, call: h.call, name: h.name, low: hop(h.a, h.b, low) });
      out.push(`| ${h.name} | ${h.compared} | ${fmtMs(hop(h.a, h.b, low))} | ${fmtMs(hop(h.a, h.b, top))} |`);
    }

    // Fixed rates.
    const ok = (r: { rate: number; m: Measured }): boolean => r.m.result.failed === 0 && r.m.result.p99Ms < 50 && r.m.reqPerSec >= 0.97 * r.rate;
    if (rateRuns.length) {
      out.push("", "### Fixed rates: `POST /v3/runs`, one V1 agent, through the gateway", "");
      out.push(
        `Requests go out on a schedule (evenly spaced, open loop: \`bench/open-loop.ts\`, node's http client on a keep-alive agent), and latency counts from when each request was due, so a server that falls behind shows as latency, not as a lower rate. A request due while max(64, 0.2 s × rate) are out is not sent and counts as failed. ${fixedRates ? "Rates as given." : `Rates: 50 and 90 % of the closed-loop throughput at ${top} in flight (${fmtInt(closedRate)} req/s), and the target, 1,000.`}`,
        "",
      );
      out.push("| rate (req/s) | answered req/s | p50 ms | p95 ms | p99 ms | failed | generator behind schedule, max ms | mesh CPU (cores): gw / orch / v1 / v2 / id | other work (cores) | p99 < 50 ms at this rate |");
      out.push("|---:|---:|---:|---:|---:|---|---:|---|---:|---|");
      for (const r of rateRuns) {
        out.push(
          `| ${fmtInt(r.rate)} | ${fmtInt(r.m.reqPerSec)} | ${fmtMs(r.m.result.p50Ms)} | ${fmtMs(r.m.result.p95Ms)} | ${fmtMs(r.m.result.p99Ms)} | ${failuresText(r.m.result.failures)} | ${fmtMs(r.m.result.maxLagMs ?? Number.NaN)} | ${serviceOrder.map((n) => fmtCores(r.m.meshCores.get(n) ?? Number.NaN)).join(" / ")} | ${fmtCores(r.m.otherCores)} | ${ok(r) ? "yes" : "no"} |`,
        );
      }
    }

    // Targets.
    out.push("", "### Against the targets", "");
    const runTop = s("rest:run-v1", top);
    const best = rateRuns.filter(ok).sort((x, y) => y.rate - x.rate)[0];
    const at1000 = rateRuns.find((r) => r.rate === 1000);
    if (runTop) {
      out.push(
        `- **≥ 1,000 req/s for \`POST /v3/runs\` (one agent, offline, persisted): ${runTop.reqPerSec >= 1000 ? "met" : "not met"}** — ${fmtInt(runTop.reqPerSec)} req/s at ${top} in flight (${fmtRatio(runTop.reqPerSec / 1000)} of the target)${at1000 ? `; at a fixed 1,000 req/s, ${fmtInt(at1000.m.reqPerSec)} answered` : ""}.`,
      );
      const [busiest, busiestCores] = [...runTop.meshCores].sort((x, y) => y[1] - x[1])[0];
      const cpus = os.cpus().length;
      out.push(
        `  What limits it: at ${top} in flight the busiest process, ${busiest}, used ${fmtCores(busiestCores)} cores (a Node process runs its JavaScript, and here PGlite's PostgreSQL, on one thread: about one core at most), and the mesh as a whole used ${fmtMs(runTop.meshCpuMsPerRequest)} ms of CPU per request, which on ${cpus} cores caps it at about ${fmtInt((cpus * 1000) / runTop.meshCpuMsPerRequest)} req/s even with the work spread perfectly.`,
      );
    }
    if (at1000 || best) {
      out.push(
        `- **p99 < 50 ms at 1,000 req/s: ${at1000 && ok(at1000) ? "met" : "not met"}**${at1000 ? ` — at 1,000 req/s p99 was ${fmtMs(at1000.m.result.p99Ms)} ms with ${failuresText(at1000.m.result.failures)} failed` : ""}. ${best ? `The highest rate measured with p99 < 50 ms and nothing failed: ${fmtInt(best.rate)} req/s (p99 ${fmtMs(best.m.result.p99Ms)} ms).` : "No rate measured had p99 < 50 ms with nothing failed."}`,
      );
    }
    const gatewayHops = hopValues.filter((h) => h.group === "gateway");
    if (gatewayHops.length) {
      const worst = Math.max(...gatewayHops.map((h) => h.low));
      out.push(
        `- **the gateway hop < 1 ms at p50: ${worst < 1 ? "met" : "not met"}** — REST − gRPC at ${low} in flight: ${gatewayHops.map((h) => `${h.call} ${fmtMs(h.low)} ms`).join(", ")}${worst >= 1 ? `; the worst is ${fmtRatio(worst)} the target` : ""}.`,
      );
    }
    for (const h of hopValues.filter((x) => x.group !== "gateway")) {
      out.push(`- **the ${h.name} hop < 1 ms at p50: ${h.low < 1 ? "met" : "not met"}** — ${fmtMs(h.low)} ms at ${low} in flight${h.low >= 1 ? `, ${fmtRatio(h.low)} the target` : ""}.`);
    }

    // Profile.
    if (profiled.length) {
      out.push("", "### CPU profiles", "");
      out.push(
        `A fresh mesh ran with \`NODE_OPTIONS="--cpu-prof --cpu-prof-dir=${profileDir}"\` (every service; the profiles and the source maps that map tsx's positions back to ours stay in that folder) under the closed-loop load at ${top} in flight, one case after the other. Each case counts only the samples inside its own window. Shares are of each process's busy samples.`,
      );
      for (const { c, m, processes } of profiled) {
        out.push("", `#### ${c.label}, ${pathLabels[c.path]}`, "");
        out.push(
          `${fmtInt(m.reqPerSec)} req/s, p50 ${fmtMs(m.result.p50Ms)} ms, p99 ${fmtMs(m.result.p99Ms)} ms with the profiler on; CPU (cores) ${serviceOrder.map((n) => `${n} ${fmtCores(m.meshCores.get(n)!)}`).join(", ")}; load generator ${fmtCores(m.generatorCores)}; other work ${fmtCores(m.otherCores)}.`,
        );
        for (const p of processes) {
          out.push(
            "",
            `##### ${p.service}: ${fmtCores(p.cores)} cores; ${fmtInt(p.summary.busySamples)} busy samples of ${fmtInt(p.summary.totalSamples)} (${fmtPct(p.summary.busySamples, p.summary.totalSamples)})${p.summary.windowOnly ? "" : " — the window could not be lined up with the samples: the whole profile counts"}; ${mdCode(p.summary.file)}`,
            "",
          );
          out.push(...profileTables(p.summary));
        }
      }
    }
    process.stdout.write(out.join("\n") + "\n");
  } catch (e) {
    if (mesh && !interrupted) log(`\nlast lines of the mesh's output:\n${mesh.logTail()}\n`);
    throw e;
  } finally {
    await cleanUp();
  }
}

await main();

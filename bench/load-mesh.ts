/**
 * The mesh under test of the load benchmark (bench/load.bench.ts): every
 * service as its own process, started with `launchMesh` exactly as
 * `raptorflow start` does, on the embedded defaults — PGlite in a fresh
 * folder, no Redis, AUTH=optional, the offline provider — with the agents'
 * result cache off, on ports the OS picks. The CPU time of each service is
 * read from /proc, so nothing in the services has to cooperate.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { launchMesh, stopMesh, type StartedService } from "../mesh/local-runner.js";
import type { ServiceName } from "../mesh/topology.js";

/**
 * configuringEnv matches the environment variables that change how the mesh
 * runs (database, Redis, auth, provider, cache, telemetry export, ports and
 * addresses, TLS, limits, logging): they are removed from the environment the
 * mesh gets, so the benchmark measures the embedded default whatever the
 * shell has set.
 */
const configuringEnv =
  /^(DATABASE_|DATA_STORE|REDIS_|AUTH|NODE_ENV$|NODE_OPTIONS$|LLM_|OFFLINE_LLM|AGENT_CACHE|OTEL_|RAPTORFLOW_|LOG_|GATEWAY_|ORCHESTRATOR_|V1_AGENTS_|V2_AGENTS_|IDENTITY_|MESH_|OPENAI_|VERTEX_|BEDROCK_|GOOGLE_|AWS_|SHARED_CONTEXT|ROUTER_|ROUTING_|MODEL_|HEALTH_CHECK)/;

/** LoadMeshOptions adjust the mesh for one benchmark phase. */
export interface LoadMeshOptions {
  /** env is set on top of the defaults (the benchmark's `--env KEY=VALUE`). */
  readonly env?: Readonly<Record<string, string>>;
  /** nodeOptions go to every service in NODE_OPTIONS, for example `--cpu-prof`. */
  readonly nodeOptions?: string;
  /** extraEnv is set too, but not reported as a setting of the mesh (the profiler's). */
  readonly extraEnv?: Readonly<Record<string, string>>;
}

/** LoadMesh is the running mesh. */
export interface LoadMesh {
  readonly services: readonly StartedService[];
  /** settings are the variables the benchmark set, as the report states them. */
  readonly settings: Readonly<Record<string, string>>;
  /** removed are the configuring variables taken out of the inherited environment. */
  readonly removed: readonly string[];
  /** address is `127.0.0.1:<port>` of a service. */
  address(name: ServiceName): string;
  /** gatewayUrl is the gateway's base URL. */
  readonly gatewayUrl: string;
  /** pidOf is a service's process id. */
  pidOf(name: ServiceName): number;
  /** metricsUrl is a service's Prometheus endpoint (its operations listener). */
  metricsUrl(name: ServiceName): string;
  /** cpuSeconds reads every service's CPU time so far (user + system, all threads) from /proc. */
  cpuSeconds(): Map<ServiceName, number>;
  /** logTail is the last lines the services wrote, for an error report. */
  logTail(): string;
  /** stop stops every service (SIGTERM, callers first) and removes the data folder. */
  stop(): Promise<void>;
}

const clockTicksPerSecond = 100; // USER_HZ: 100 on every Linux the benchmark runs on (getconf CLK_TCK)

/** processCpuSeconds is a process's user + system CPU time from /proc/<pid>/stat, NaN where there is no /proc. */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) in parentheses: state is the first, utime the 12th, stime the 13th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
  } catch {
    return Number.NaN;
  }
}

/** startLoadMesh launches the mesh and resolves once the gateway reports every upstream healthy. */
export async function startLoadMesh(options: LoadMeshOptions = {}): Promise<LoadMesh> {
  const dataDir = mkdtempSync(join(tmpdir(), "raptorflow-load-"));
  const env: Record<string, string | undefined> = {};
  const removed: string[] = [];
  for (const [k, v] of Object.entries(process.env)) {
    if (configuringEnv.test(k)) removed.push(k);
    else env[k] = v;
  }
  const settings: Record<string, string> = {
    RAPTORFLOW_DATA_DIR: "(a new temporary folder)",
    LLM_PROVIDER: "offline",
    AGENT_CACHE: "off",
    GATEWAY_PORT: "0",
    ORCHESTRATOR_PORT: "0",
    V1_AGENTS_PORT: "0",
    V2_AGENTS_PORT: "0",
    IDENTITY_PORT: "0",
    ...options.env,
  };
  Object.assign(env, settings, { RAPTORFLOW_DATA_DIR: dataDir }, options.extraEnv);
  if (options.nodeOptions) env.NODE_OPTIONS = options.nodeOptions;

  // The services' output is kept (the last lines) for an error report, not shown: stdout carries the report.
  const tail: string[] = [];
  const output = (service: ServiceName, text: string): void => {
    for (const line of text.split("\n")) if (line.trim()) tail.push(`${service}: ${line}`);
    if (tail.length > 200) tail.splice(0, tail.length - 200);
  };
  let services: StartedService[];
  try {
    services = await launchMesh(env, { output });
  } catch (e) {
    rmSync(dataDir, { recursive: true, force: true });
    throw new Error(`the mesh did not start: ${(e as Error).message}\n${tail.slice(-30).join("\n")}`);
  }
  const byName = new Map(services.map((s) => [s.name, s]));
  const address = (name: ServiceName): string => `127.0.0.1:${byName.get(name)!.port}`;
  const gatewayUrl = `http://${address("gateway")}`;
  const mesh: LoadMesh = {
    services,
    settings,
    removed,
    address,
    gatewayUrl,
    pidOf: (name) => byName.get(name)!.child.pid!,
    metricsUrl: (name) => `http://127.0.0.1:${byName.get(name)!.metricsPort}/metrics`,
    cpuSeconds: () => new Map(services.map((s) => [s.name, processCpuSeconds(s.child.pid!)])),
    logTail: () => tail.slice(-30).join("\n"),
    async stop() {
      await stopMesh(services);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  try {
    await waitUntilReady(gatewayUrl, 120_000);
  } catch (e) {
    await mesh.stop();
    throw new Error(`${(e as Error).message}\n${tail.slice(-30).join("\n")}`);
  }
  return mesh;
}

/** waitUntilReady polls the gateway's /readyz until it serves with every upstream healthy. */
async function waitUntilReady(gatewayUrl: string, timeoutMs: number): Promise<void> {
  const until = performance.now() + timeoutMs;
  let last = "";
  while (performance.now() < until) {
    try {
      const res = await fetch(`${gatewayUrl}/readyz`);
      const body = (await res.json()) as { status?: string; dependencies?: Array<{ name: string; healthy: boolean }> };
      const sick = (body.dependencies ?? []).filter((d) => !d.healthy).map((d) => d.name);
      if (res.status === 200 && sick.length === 0) return;
      last = `${res.status} ${body.status ?? ""}${sick.length ? `, not healthy: ${sick.join(", ")}` : ""}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`the mesh did not become ready within ${timeoutMs / 1000} s (gateway /readyz: ${last})`);
}

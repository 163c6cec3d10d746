import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { forkService, type StartedService } from "../../mesh/local-runner.js";
import { envPrefix, serviceNames, topology, type ServiceName } from "../../mesh/topology.js";
import { Checks, OrchestratorService } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { plainUnary } from "./grpc-client.js";
import { freePort } from "./throwaway-servers.js";

/** Exit is how a service process ended. */
export interface Exit {
  /** service that exited. */
  readonly service: ServiceName;
  /** code is its exit code (null when a signal ended it). */
  readonly code: number | null;
  /** signal that ended it, if one did. */
  readonly signal: NodeJS.Signals | null;
}

/** Shutdown is how a mesh's processes ended when it was stopped. */
export interface Shutdown {
  /** exits of the processes that exited on SIGTERM (code 0 is a clean drain). */
  readonly exits: readonly Exit[];
  /** stuck describes each process that had not exited within the bound and was killed. */
  readonly stuck: readonly string[];
}

/** FaultMesh is the mesh (or the part of it a test needs) as processes, whose services a test may kill, stop and restart. */
export interface FaultMesh {
  /** gatewayUrl is the gateway's base URL (when the gateway runs). */
  readonly gatewayUrl: string;
  /** service is a service's current process (the restarted one after a restart). */
  service(name: ServiceName): StartedService;
  /** address is `127.0.0.1:<port>` of a service; a restart keeps it. */
  address(name: ServiceName): string;
  /** signal sends a signal to a service and resolves with its exit. */
  signal(name: ServiceName, signal: NodeJS.Signals): Promise<Exit>;
  /** restart starts a stopped service again on the same port (with its environment) and resolves when it listens. */
  restart(name: ServiceName): Promise<StartedService>;
  /**
   * warmUp sends a one-step run of each of `agents` (default: one of V1,
   * one of V2; through the gateway when it runs, else to the orchestrator)
   * until it succeeds, at most `attempts` times each (default 100, 100 ms
   * apart): services started together may have called each other before
   * all listened, and a gRPC channel that failed to connect waits out its
   * reconnect backoff (about a second) before it tries again.
   */
  warmUp(agents?: readonly string[], attempts?: number): Promise<void>;
  /** crashes are the exits nobody asked for: a crash, or an exit on its own. */
  crashes(): readonly Exit[];
  /** logs is the tail of what a service wrote (all its processes), for the message of a failed assertion. */
  logs(name: ServiceName): string;
  /**
   * stop sends SIGTERM to every process still running, callers first, waits
   * for each to exit (SIGKILL after a bound, reported as stuck) and removes
   * the mesh's folder. It reports how each exited; a second call returns the first's report.
   */
  stop(): Promise<Shutdown>;
}

/** FaultMeshOptions say which services run and with what environment. */
export interface FaultMeshOptions {
  /** env is every service's environment on top of this process's and the mesh's own (NODE_ENV=test, the offline model, free ports, a data folder). */
  readonly env: Record<string, string>;
  /** services to start (default: every one but identity, which runs need not); a caller's missing upstream is simply not there. */
  readonly services?: readonly ServiceName[];
  /** perService adds to one service's environment. */
  readonly perService?: Partial<Record<ServiceName, Record<string, string>>>;
}

const logTail = 64 * 1024;

/** exitBoundMs is how long a service may take to exit after SIGTERM: its drain bound (10 s) and then some. */
const exitBoundMs = 15_000;

/**
 * startFaultMesh launches services as `raptorflow start` does (each its own
 * process via the local runner's forkService, told where its upstreams
 * listen), all at once on ports chosen first, and keeps what a fault
 * test needs: each service's output, every exit the test did not cause (a
 * crash), and a restart on the same port — its callers keep their address,
 * as after a container restart.
 */
export async function startFaultMesh(options: FaultMeshOptions): Promise<FaultMesh> {
  const wanted = options.services ?? serviceNames.filter((n) => n !== "identity");
  const dataDir = mkdtempSync(join(tmpdir(), "raptorflow-faults-"));
  const logs = new Map<ServiceName, string>();
  const output = (service: ServiceName, text: string): void => {
    if (process.env.RELIABILITY_VERBOSE === "1") process.stderr.write(`[${service}] ${text}`);
    logs.set(service, ((logs.get(service) ?? "") + text).slice(-logTail));
  };
  const current = new Map<ServiceName, StartedService>();
  const all: StartedService[] = [];
  const expected = new WeakSet<StartedService>();
  const crashes: Exit[] = [];
  let stopping = false;
  const watch = (s: StartedService): void => {
    s.child.once("exit", (code, signal) => {
      if (!expected.has(s) && !stopping) crashes.push({ service: s.name, code, signal });
    });
  };
  const service = (name: ServiceName): StartedService => {
    const s = current.get(name);
    if (!s) throw new Error(`${name} is not part of this mesh`);
    return s;
  };
  // Every service's port is chosen first, so each can be told where its upstreams will listen and all start at once.
  const ports = new Map<ServiceName, number>();
  for (const name of wanted) ports.set(name, await freePort());
  const address = (name: ServiceName): string => `127.0.0.1:${ports.get(name)}`;
  /** envOf is a service's environment: the mesh's, its own, where its upstreams in the mesh listen, and its port. */
  const envOf = (name: ServiceName, port: number): Record<string, string | undefined> => ({
    ...process.env,
    NODE_ENV: "test",
    RAPTORFLOW_DATA_DIR: dataDir,
    // The offline model, whatever this shell says, unless the test says otherwise.
    LLM_PROVIDER: "offline",
    ...options.env,
    ...options.perService?.[name],
    ...Object.fromEntries(topology[name].upstreams.filter((u) => ports.has(u)).map((u) => [`${envPrefix(u)}_ADDR`, address(u)])),
    [`${envPrefix(name)}_PORT`]: String(port),
    // Port 0 lets the OS pick the metrics port too; a fixed port's default (port + 1000) may be taken.
    [`${envPrefix(name)}_METRICS_PORT`]: "0",
  });
  const launch = async (name: ServiceName, port: number): Promise<StartedService> => {
    const s = await forkService(name, envOf(name, port), { output });
    watch(s);
    current.set(name, s);
    all.push(s);
    return s;
  };
  // A safety net: should the test process end without stop() (a hook that timed out), no service outlives it.
  const killAll = (): void => all.forEach((s) => s.child.exitCode === null && s.child.signalCode === null && s.child.kill("SIGKILL"));
  process.once("exit", killAll);
  let stopped: Promise<Shutdown> | undefined;
  /** shutdown sends SIGTERM to every running process, callers before their upstreams, and waits (bounded) for each to exit. */
  const shutdown = async (): Promise<Shutdown> => {
    stopping = true;
    const exits: Exit[] = [];
    const stuck: string[] = [];
    const running = all.filter((s) => s.child.exitCode === null && s.child.signalCode === null);
    // Waves in reverse start order: the gateway, then the orchestrator, then the agent services together.
    const waves = [["gateway"], ["orchestrator"], ["v1-agents", "v2-agents", "identity"]];
    for (const wave of waves) {
      await Promise.all(
        running
          .filter((s) => wave.includes(s.name))
          .map(async (s) => {
            const exited = new Promise<Exit>((resolve) => s.child.once("exit", (code, signal) => resolve({ service: s.name, code, signal })));
            s.child.kill("SIGTERM");
            let timer: NodeJS.Timeout | undefined;
            const exit = await Promise.race([exited, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), exitBoundMs)))]);
            clearTimeout(timer);
            if (exit) return void exits.push(exit);
            // It may have exited between the check above and the listener: then its exit is known already.
            if (s.child.exitCode !== null || s.child.signalCode !== null) return void exits.push({ service: s.name, code: s.child.exitCode, signal: s.child.signalCode });
            stuck.push(`${s.name} (pid ${s.child.pid}) did not exit within ${exitBoundMs} ms of SIGTERM; its last output: ${(logs.get(s.name) ?? "").slice(-2000) || "(none)"}`);
            s.child.kill("SIGKILL");
            await exited;
          }),
      );
    }
    rmSync(dataDir, { recursive: true, force: true });
    process.off("exit", killAll);
    return { exits, stuck };
  };

  // All at once: callers reach their upstreams lazily (gRPC channels connect on the first call), and the
  // start-up of each is mostly loading code, which two cores do faster side by side than one after another.
  // Every start is awaited before a failure is thrown, so none is left running behind it.
  const starts = await Promise.allSettled(wanted.map((n) => launch(n, ports.get(n)!)));
  const failed = starts.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) {
    await shutdown();
    throw failed.reason;
  }

  return {
    get gatewayUrl() {
      return `http://${address("gateway")}`;
    },
    service,
    address,
    signal(name, sig) {
      const s = service(name);
      expected.add(s);
      if (s.child.exitCode !== null || s.child.signalCode !== null) return Promise.resolve({ service: name, code: s.child.exitCode, signal: s.child.signalCode });
      const exited = new Promise<Exit>((resolve) => s.child.once("exit", (code, signal) => resolve({ service: name, code, signal })));
      s.child.kill(sig);
      return exited;
    },
    restart: (name) => launch(name, ports.get(name)!),
    async warmUp(agents = ["agents/icp_builder", "agents/copywriter"], attempts = 100) {
      for (const agent of agents) {
        let last = "";
        for (let i = 0; ; i++) {
          if (ports.has("gateway")) {
            const body = JSON.stringify({ input: "Warm up", agents: [agent], checks: "CHECKS_OFF" });
            const res = await fetch(`http://${address("gateway")}/v3/runs`, { method: "POST", headers: { "content-type": "application/json" }, body, signal: AbortSignal.timeout(30_000) });
            if (res.ok) break;
            last = `HTTP ${res.status} ${await res.text()}`;
          } else {
            const ok = await plainUnary(address("orchestrator"), OrchestratorService.method.createRun, { input: "Warm up", agents: [agent], checks: Checks.OFF }, { deadlineMs: 30_000 }).then(
              () => true,
              (e: Error) => ((last = e.message), false),
            );
            if (ok) break;
          }
          if (i + 1 >= attempts) throw new Error(`the mesh did not run ${agent} in ${attempts} attempts: ${last}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
    crashes: () => [...crashes],
    logs: (name) => logs.get(name) ?? "",
    stop: () => (stopped ??= shutdown()),
  };
}

/** rssBytes is a process's resident set size, from `/proc/<pid>/status` (VmRSS), or undefined when it is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** scrapeMetrics reads a service's Prometheus `/metrics` on its metrics port into name{labels} → value. */
export async function scrapeMetrics(metricsPort: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(5_000) });
  const out = new Map<string, number>();
  for (const line of (await res.text()).split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** median of a list of numbers (NaN when empty). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

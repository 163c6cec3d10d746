/**
 * The processes of the gateway benchmark (bench/gateway.bench.ts), each run
 * in a child process of its own so its CPU time and memory are measured apart
 * from the load generator's:
 *
 *   node --import tsx bench/gateway-processes.ts upstream [port]
 *   node --import tsx bench/gateway-processes.ts gateway <upstream host:port> [port]
 *   node --import tsx bench/gateway-processes.ts fastify [port]
 *
 * - `upstream` is the conformance echo backend (`createEchoImpl`) on
 *   `createMeshServer`, as the mesh serves any service (validation on).
 * - `gateway` is `createGatewayApp` for `EchoService`, reaching the upstream
 *   through our `createGrpcTransport`.
 * - `fastify` is a plain fastify JSON handler for `POST /v1/echo` that does the
 *   gateway's message work without the gateway (parse, protobuf-es `fromJson`,
 *   `toJson`, answer JSON): the ceiling of any Node HTTP front.
 *
 * Each prints one JSON line `{"port":N}` on stdout once listening (port 0, the
 * default, picks a free one on 127.0.0.1). When started with an IPC channel
 * (as {@link spawnBenchChild} does) it answers `{type:"cpu"}` with its CPU
 * time, reports its memory every `intervalMs` after `{type:"mem-start"}`
 * until `{type:"mem-stop"}`, and shuts down on `{type:"stop"}`, when the
 * channel closes, or when stdin closes.
 *
 * Imported as a module (by the benchmark), it only exports the parent's side.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { resolve as resolvePath } from "node:path";
import { fileURLToPath } from "node:url";
import { dumpSourceMaps } from "./source-maps.js";

/** BenchChildKind names the processes of the gateway benchmark. */
export type BenchChildKind = "upstream" | "gateway" | "fastify";

const childKinds: readonly BenchChildKind[] = ["upstream", "gateway", "fastify"];
const thisFile = fileURLToPath(import.meta.url);
const sourceMapsEnv = "RAPTORFLOW_BENCH_SOURCE_MAPS";

/** ChildCpu is a child's CPU time (user + system, all threads) at one instant of its own monotonic clock. */
export interface ChildCpu {
  /** cpuMicros is `process.cpuUsage()` user + system, in µs. */
  readonly cpuMicros: number;
  /** wallMs is `performance.now()` in the child. */
  readonly wallMs: number;
  /** monoMicros is the child's `process.hrtime` in µs: the clock V8's CPU profiler stamps samples with. */
  readonly monoMicros: number;
}

/** MemSample is one reading of a child's `process.memoryUsage()`, in bytes. */
export interface MemSample {
  /** atMs is the parent's `performance.now()` when the sample arrived. */
  readonly atMs: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

/** Messages a child sends over IPC. */
type ChildMessage =
  | ({ type: "cpu" } & ChildCpu)
  | { type: "mem"; rss: number; heapUsed: number; heapTotal: number; external: number; arrayBuffers: number };

/** Messages the parent sends over IPC. */
type ParentMessage = { type: "cpu" } | { type: "mem-start"; intervalMs: number } | { type: "mem-stop" } | { type: "stop" };

/** BenchChild is a benchmark process running as a child of this one. */
export interface BenchChild {
  /** kind is what the child runs. */
  readonly kind: BenchChildKind;
  /** pid is the child's process id. */
  readonly pid: number;
  /** port is the port the child listens on (127.0.0.1). */
  readonly port: number;
  /** cpu asks the child for its CPU time so far. */
  cpu(): Promise<ChildCpu>;
  /**
   * sampleMemory has the child report its memory every `intervalMs` (and once
   * right away) to `onSample`, until the returned function is called.
   */
  sampleMemory(intervalMs: number, onSample: (s: MemSample) => void): () => void;
  /** stop asks the child to shut down and waits for it to exit (SIGKILL after 10 s). */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** SpawnOptions adjust how a benchmark child is started. */
export interface SpawnOptions {
  /** nodeArgs go before `--import tsx`, for example `--cpu-prof`. */
  readonly nodeArgs?: readonly string[];
  /**
   * sourceMapsFile, when set, has the child write the source maps of the
   * repository's TypeScript modules it loaded (tsx's, keyed by file URL) to
   * this JSON file as it shuts down, so positions in a `.cpuprofile` (which
   * point into tsx's output) can be mapped back to our sources.
   */
  readonly sourceMapsFile?: string;
}

/**
 * spawnBenchChild starts `process.execPath [nodeArgs] --import tsx
 * bench/gateway-processes.ts <kind> [...args]` with an IPC channel, and
 * resolves once the child has printed the port it listens on.
 */
export async function spawnBenchChild(kind: BenchChildKind, args: readonly string[] = [], options: SpawnOptions = {}): Promise<BenchChild> {
  const child: ChildProcess = spawn(process.execPath, [...(options.nodeArgs ?? []), "--import", "tsx", thisFile, kind, ...args], {
    stdio: ["pipe", "pipe", "inherit", "ipc"],
    env: options.sourceMapsFile ? { ...process.env, [sourceMapsEnv]: options.sourceMapsFile } : process.env,
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const cpuWaiters: Array<(c: ChildCpu) => void> = [];
  let memListener: ((s: MemSample) => void) | undefined;
  child.on("message", (raw) => {
    const m = raw as ChildMessage;
    if (m.type === "cpu") cpuWaiters.shift()?.({ cpuMicros: m.cpuMicros, wallMs: m.wallMs, monoMicros: m.monoMicros });
    else if (m.type === "mem") {
      const { type: _type, ...usage } = m;
      memListener?.({ atMs: performance.now(), ...usage });
    }
  });
  const send = (m: ParentMessage): void => {
    if (child.connected) child.send(m);
  };

  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once("line", (line) => {
      try {
        resolve((JSON.parse(line) as { port: number }).port);
      } catch (e) {
        reject(new Error(`bench child ${kind} printed "${line}" instead of its port: ${String(e)}`));
      }
    });
    void exited.then(({ code, signal }) => reject(new Error(`bench child ${kind} exited before listening (code ${code}, signal ${signal})`)));
  });

  return {
    kind,
    pid: child.pid!,
    port,
    cpu() {
      return new Promise<ChildCpu>((resolve, reject) => {
        if (!child.connected) return reject(new Error(`bench child ${kind} is gone`));
        cpuWaiters.push(resolve);
        send({ type: "cpu" });
      });
    },
    sampleMemory(intervalMs, onSample) {
      memListener = onSample;
      send({ type: "mem-start", intervalMs });
      return () => {
        send({ type: "mem-stop" });
        memListener = undefined;
      };
    },
    async stop() {
      send({ type: "stop" });
      child.stdin?.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}

// ---------------------------------------------------------------------------
// The child side. Everything it needs is imported lazily, so the benchmark
// that imports this module for spawnBenchChild does not load the servers.

/** RunningChild is a listening benchmark server. */
interface RunningChild {
  readonly port: number;
  close(): Promise<void>;
}

/** The conformance echo backend on our mesh server (validation, health, reflection). */
async function startUpstream(port: number): Promise<RunningChild> {
  const [{ createMeshServer }, { createEchoImpl }, { EchoService }] = await Promise.all([
    import("../mesh/grpc-server.js"),
    import("../test/support/echo-service.js"),
    import("../gen/raptorflow/conformance/v1/conformance_pb.js"),
  ]);
  const mesh = createMeshServer({ services: [{ service: EchoService, impl: createEchoImpl() }] });
  const bound = await mesh.listen(port, "127.0.0.1");
  mesh.setServing(true);
  return { port: bound, close: () => mesh.shutdown() };
}

/** The gateway for EchoService, forwarding over our grpc-js transport. */
async function startGateway(upstream: string, port: number): Promise<RunningChild> {
  const [{ createGatewayApp }, { createGrpcTransport }, { EchoService }] = await Promise.all([
    import("../services/gateway/gateway-app.js"),
    import("../mesh/grpc-transport.js"),
    import("../gen/raptorflow/conformance/v1/conformance_pb.js"),
  ]);
  const transport = createGrpcTransport({ address: upstream });
  const app = await createGatewayApp({
    services: [{ service: EchoService, transport }],
    timeoutMs: 30_000,
    onClose: () => transport.close(),
  });
  await app.listen({ port, host: "127.0.0.1" });
  return { port: listeningPort(app.server.address(), port), close: () => app.close() };
}

/**
 * A plain fastify handler doing the gateway's message work for `POST /v1/echo`
 * and nothing else: fastify parses the JSON body, protobuf-es builds the
 * Kitchen (`fromJson`, strict as the gateway is) and serialises it back
 * (`toJson`), and the answer is that JSON text.
 */
async function startFastify(port: number): Promise<RunningChild> {
  const [{ default: Fastify }, { fromJson, toJson }, { KitchenSchema }] = await Promise.all([
    import("fastify"),
    import("@bufbuild/protobuf"),
    import("../gen/raptorflow/conformance/v1/conformance_pb.js"),
  ]);
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  app.post("/v1/echo", async (request, reply) => {
    const message = fromJson(KitchenSchema, request.body as Parameters<typeof fromJson>[1], { ignoreUnknownFields: false });
    return reply.code(200).type("application/json").send(JSON.stringify(toJson(KitchenSchema, message)));
  });
  await app.listen({ port, host: "127.0.0.1" });
  return { port: listeningPort(app.server.address(), port), close: () => app.close() };
}

function listeningPort(address: ReturnType<import("node:net").Server["address"]>, fallback: number): number {
  return typeof address === "object" && address ? address.port : fallback;
}

async function childMain(): Promise<void> {
  const [kind, ...rest] = process.argv.slice(2);
  const usage = "usage: gateway-processes.ts upstream [port] | gateway <upstream host:port> [port] | fastify [port]\n";
  if (!childKinds.includes(kind as BenchChildKind)) {
    process.stderr.write(usage);
    process.exit(2);
  }
  let running: RunningChild;
  switch (kind as BenchChildKind) {
    case "upstream":
      running = await startUpstream(Number(rest[0] ?? 0));
      break;
    case "gateway":
      if (!rest[0]) {
        process.stderr.write(usage);
        process.exit(2);
      }
      running = await startGateway(rest[0], Number(rest[1] ?? 0));
      break;
    case "fastify":
      running = await startFastify(Number(rest[0] ?? 0));
      break;
  }
  process.stdout.write(`${JSON.stringify({ port: running.port })}\n`);

  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    const mapsFile = process.env[sourceMapsEnv];
    if (mapsFile) dumpSourceMaps(mapsFile);
    // process.exit (not a signal) so that --cpu-prof writes its profile.
    const force = setTimeout(() => process.exit(0), 5_000);
    void running
      .close()
      .catch(() => undefined)
      .finally(() => {
        clearTimeout(force);
        process.exit(0);
      });
  };

  let memTimer: NodeJS.Timeout | undefined;
  const reply = (m: ChildMessage): void => {
    if (process.connected) process.send!(m);
  };
  const reportMemory = (): void => {
    const { rss, heapUsed, heapTotal, external, arrayBuffers } = process.memoryUsage();
    reply({ type: "mem", rss, heapUsed, heapTotal, external, arrayBuffers });
  };
  process.on("message", (raw) => {
    const m = raw as ParentMessage;
    switch (m.type) {
      case "cpu": {
        const { user, system } = process.cpuUsage();
        reply({ type: "cpu", cpuMicros: user + system, wallMs: performance.now(), monoMicros: Number(process.hrtime.bigint() / 1000n) });
        break;
      }
      case "mem-start":
        clearInterval(memTimer);
        reportMemory();
        memTimer = setInterval(reportMemory, m.intervalMs);
        break;
      case "mem-stop":
        clearInterval(memTimer);
        memTimer = undefined;
        break;
      case "stop":
        clearInterval(memTimer);
        shutdown();
        break;
    }
  });
  process.on("disconnect", shutdown);
  const stdin = createInterface({ input: process.stdin });
  stdin.on("close", shutdown);
}

if (process.argv[1] !== undefined && resolvePath(process.argv[1]) === thisFile) {
  await childMain();
}

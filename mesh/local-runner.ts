import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { ReadyMessage } from "./serve.js";
import { envPrefix, listenPort, serviceNames, topology, type ServiceName } from "./topology.js";

const cli = fileURLToPath(new URL("../bin/raptorflow.js", import.meta.url));

/** StartedService is one child process of the local mesh. */
export interface StartedService {
  /** name of the service. */
  readonly name: ServiceName;
  /** port it listens on. */
  readonly port: number;
  /** metricsPort is where its `/metrics`, `/livez` and `/readyz` answer. */
  readonly metricsPort?: number;
  /** child is its process. */
  readonly child: ChildProcess;
}

/** LaunchOptions say where the services' output goes. */
export interface LaunchOptions {
  /** output, when given, receives everything a service writes to stdout and stderr (tests read the logs); otherwise it goes to this process's. */
  readonly output?: (service: ServiceName, text: string) => void;
}

/**
 * forkService starts one service as a child process (`raptorflow serve`) and
 * resolves when it says it listens, with the port it bound.
 */
export async function forkService(name: ServiceName, env: Record<string, string | undefined>, options: LaunchOptions = {}): Promise<StartedService> {
  const { output } = options;
  const child = fork(cli, ["serve", name], {
    env: { ...env, [`${envPrefix(name)}_PORT`]: String(listenPort(name, env)) },
    stdio: output ? ["ignore", "pipe", "pipe", "ipc"] : ["ignore", "inherit", "inherit", "ipc"],
  });
  if (output) for (const stream of [child.stdout!, child.stderr!]) stream.on("data", (d: Buffer) => output(name, d.toString()));
  const ready = await new Promise<ReadyMessage>((resolve, reject) => {
    child.once("message", (m: ReadyMessage) => resolve(m));
    child.once("exit", (code) => reject(new Error(`${name} exited with code ${code} before it was ready`)));
  });
  return { name, port: ready.port, metricsPort: ready.metricsPort, child };
}

/**
 * launchMesh starts every service as its own process, upstreams first, and
 * resolves when each has said it listens. Each service learns where its
 * upstreams really listen (`<SERVICE>_ADDR`), so port 0 works everywhere.
 */
export async function launchMesh(env: Record<string, string | undefined> = process.env, options: LaunchOptions = {}): Promise<StartedService[]> {
  const started: StartedService[] = [];
  const childEnv: Record<string, string | undefined> = { ...env };
  try {
    for (const name of serviceNames) {
      const s = await forkService(name, childEnv, options);
      started.push(s);
      childEnv[`${envPrefix(name)}_ADDR`] = `127.0.0.1:${s.port}`;
    }
  } catch (e) {
    await stopMesh(started);
    throw e;
  }
  return started;
}

/**
 * stopMesh sends SIGTERM to every service, callers first, and waits for them
 * to exit; one still running killAfterMs later (its own shutdown watchdog
 * failed too) is killed with SIGKILL, so stopping always ends.
 */
export async function stopMesh(started: readonly StartedService[], killAfterMs = 45_000): Promise<void> {
  for (const s of [...started].reverse()) {
    if (s.child.exitCode !== null || s.child.signalCode !== null) continue;
    const exited = new Promise((r) => s.child.once("exit", r));
    s.child.kill("SIGTERM");
    const kill = setTimeout(() => {
      console.error(`${s.name} did not exit within ${killAfterMs} ms of SIGTERM; killing it`);
      s.child.kill("SIGKILL");
    }, killAfterMs);
    await exited;
    clearTimeout(kill);
  }
}

/** startMesh is `raptorflow start`: launch, print where each service listens, stop on a signal. */
export async function startMesh(): Promise<number> {
  const started = await launchMesh();
  const env = process.env;
  const database = env.DATABASE_URL ? "PostgreSQL at DATABASE_URL" : `embedded PostgreSQL (PGlite) in ${env.RAPTORFLOW_DATA_DIR || ".data"}/`;
  const shared = env.REDIS_URL ? "Redis at REDIS_URL" : "in-process shared state";
  console.log(`\nRaptorFlow mesh is up (${database}, ${shared}, LLM provider: ${env.LLM_PROVIDER || "offline"}):`);
  for (const s of started) {
    const kind = topology[s.name].protocol === "http" ? `http://localhost:${s.port}` : `grpc://localhost:${s.port}`;
    console.log(`  ${s.name.padEnd(13)} ${kind.padEnd(24)} metrics http://localhost:${s.metricsPort}/metrics`);
  }
  const gw = started.find((s) => s.name === "gateway");
  console.log(`\nOperations page: http://localhost:${gw?.port}/ops   mesh status: http://localhost:${gw?.port}/v3/status`);
  console.log(`\nTry: curl -s -X POST http://localhost:${gw?.port}/v3/runs -H 'content-type: application/json' -d '{"input":"Build an ideal customer profile for our B2B analytics tool"}'\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    for (const s of started) s.child.once("exit", stop);
  });
  await stopMesh(started);
  return 0;
}

import { startOpsListener, readinessReport, type ReadinessReport } from "./ops-http.js";
import { createServiceHealth } from "./service-health.js";
import { startTelemetry } from "./telemetry.js";
import { meshTlsFromEnv } from "./tls.js";
import { listenPort, metricsListenPort, type ServiceName } from "./topology.js";

/** ReadyMessage is what a service sends its parent (the local runner) once it listens. */
export interface ReadyMessage {
  /** type tags the message. */
  readonly type: "ready";
  /** service that is ready. */
  readonly service: string;
  /** port it listens on. */
  readonly port: number;
  /** metricsPort is where its operations listener (`/metrics`, `/livez`, `/readyz`) listens, when it has one. */
  readonly metricsPort?: number;
}

/** Running is a started server: its port and how to stop it. */
export interface Running {
  /** port it listens on. */
  readonly port: number;
  /** metricsPort is its operations listener's port, when it has one. */
  readonly metricsPort?: number;
  /** close drains and stops it. */
  close(): Promise<void>;
}

/** Service is one started service before the operations listener is wired to it. */
interface Service {
  readonly port: number;
  readonly readiness: () => ReadinessReport | Promise<ReadinessReport>;
  close(): Promise<void>;
}

/**
 * start starts one service with its telemetry (OpenTelemetry, before
 * anything else loads) and its operations listener (metrics, liveness and
 * readiness on `<PREFIX>_METRICS_PORT`, answering `not_serving` until the
 * service is up).
 */
async function start(name: ServiceName, port: number): Promise<Running> {
  const telemetry = startTelemetry(name);
  const host = process.env.HOST ?? "0.0.0.0";
  const starting = readinessReport(createServiceHealth());
  let readiness: Service["readiness"] = () => starting;
  const ops = await startOpsListener(metricsListenPort(name), host, { metrics: telemetry.serveMetrics, readiness: () => readiness() });
  try {
    const service = await startService(name, port, host);
    readiness = service.readiness;
    return {
      port: service.port,
      metricsPort: ops.port,
      async close() {
        await service.close();
        await ops.close();
        await telemetry.shutdown();
      },
    };
  } catch (e) {
    await ops.close();
    throw e;
  }
}

/** startService builds and starts one service; services are imported lazily so a container loads only its own. */
async function startService(name: ServiceName, port: number, host: string): Promise<Service> {
  if (name === "gateway") {
    const { build } = await import("../services/gateway/server.js");
    const app = await build();
    await app.listen({ port, host });
    const addr = app.server.address();
    return {
      port: typeof addr === "object" && addr ? addr.port : port,
      // The gateway's own /readyz (which aggregates the mesh) answers on the operations port too.
      readiness: async () => (await app.inject({ method: "GET", url: "/readyz" })).json() as ReadinessReport,
      close: () => app.close(),
    };
  }
  const mod =
    name === "orchestrator"
      ? await import("../services/orchestrator/server.js")
      : name === "v1-agents"
        ? await import("../services/v1-agents/server.js")
        : name === "identity"
          ? await import("../services/identity/server.js")
          : await import("../services/v2-agents/server.js");
  // Mutual TLS between services when MESH_TLS_* say so (deployments without a mesh that encrypts); read before anything opens.
  const tls = meshTlsFromEnv(process.env);
  const server = await mod.build();
  const bound = await server.listen(port, host, tls);
  server.setServing(true);
  return { port: bound, readiness: () => readinessReport(server.readiness), close: () => server.close() };
}

/**
 * serve runs one service in this process until SIGTERM or SIGINT, then
 * drains it (health NOT_SERVING, in-flight calls finish within the bound)
 * and exits. It tells a parent process when it is ready.
 */
export function serve(name: ServiceName): Promise<number> {
  return runUntilStopped(name, () => start(name, listenPort(name)));
}

/**
 * shutdownLimitDefaultMs is how long closing may take: the drain's own bound
 * (10 s, mesh/grpc-server.ts), closing the stores (the pool gives up after
 * 5 s), and slack — still inside the 30 s an orchestrator (ECS, Kubernetes)
 * waits between SIGTERM and SIGKILL.
 */
const shutdownLimitDefaultMs = 20_000;

/**
 * runUntilStopped starts a server, announces it (an IPC `ready` message to a
 * parent process, or a line on stdout), and on SIGTERM or SIGINT closes it.
 * The signal handlers are in place before anything is announced: a SIGTERM
 * right after "ready" must drain, not kill the process. A process started by
 * a parent over IPC (`raptorflow start`, the tests) also drains when that
 * parent goes away, so a killed parent leaves no service behind. Should
 * closing hang past shutdownLimitMs (a stuck connection, a handler that
 * ignores its signal), the process says so and exits 1: a stopped service
 * must never linger.
 */
export async function runUntilStopped(name: string, startServer: () => Promise<Running>, shutdownLimitMs = shutdownLimitDefaultMs): Promise<number> {
  let stopRequested!: () => void;
  const stopped = new Promise<void>((resolve) => (stopRequested = resolve));
  const stop = (): void => stopRequested();
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  if (process.send) process.once("disconnect", stop);
  try {
    const running = await startServer();
    const ready: ReadyMessage = { type: "ready", service: name, port: running.port, metricsPort: running.metricsPort };
    if (process.send) process.send(ready);
    else console.log(`${name} listening on port ${running.port}`);
    await stopped;
    const watchdog = setTimeout(() => {
      console.error(`${name}: shutdown did not finish within ${shutdownLimitMs} ms; exiting`);
      process.exit(1);
    }, shutdownLimitMs);
    await running.close();
    clearTimeout(watchdog);
    return 0;
  } finally {
    process.off("SIGTERM", stop);
    process.off("SIGINT", stop);
    process.off("disconnect", stop);
  }
}

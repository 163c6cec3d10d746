import { listenPort, type ServiceName } from "./topology.js";

/** ReadyMessage is what a service sends its parent (the local runner) once it listens. */
export interface ReadyMessage {
  /** type tags the message. */
  readonly type: "ready";
  /** service that is ready. */
  readonly service: string;
  /** port it listens on. */
  readonly port: number;
}

/** Running is a started server: its port and how to stop it. */
export interface Running {
  /** port it listens on. */
  readonly port: number;
  /** close drains and stops it. */
  close(): Promise<void>;
}

/** start builds and starts one service; services are imported lazily so a container loads only its own. */
async function start(name: ServiceName, port: number): Promise<Running> {
  if (name === "gateway") {
    const { build } = await import("../services/gateway/server.js");
    const app = await build();
    await app.listen({ port, host: process.env.HOST ?? "0.0.0.0" });
    const addr = app.server.address();
    return { port: typeof addr === "object" && addr ? addr.port : port, close: () => app.close() };
  }
  const mod =
    name === "orchestrator"
      ? await import("../services/orchestrator/server.js")
      : name === "v1-agents"
        ? await import("../services/v1-agents/server.js")
        : name === "identity"
          ? await import("../services/identity/server.js")
          : await import("../services/v2-agents/server.js");
  const server = await mod.build();
  const bound = await server.listen(port, process.env.HOST ?? "0.0.0.0");
  server.setServing(true);
  return { port: bound, close: () => server.close() };
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
 * runUntilStopped starts a server, announces it (an IPC `ready` message to a
 * parent process, or a line on stdout), and on SIGTERM or SIGINT closes it.
 * The signal handlers are in place before anything is announced: a SIGTERM
 * right after "ready" must drain, not kill the process.
 */
export async function runUntilStopped(name: string, startServer: () => Promise<Running>): Promise<number> {
  let stopRequested!: () => void;
  const stopped = new Promise<void>((resolve) => (stopRequested = resolve));
  const stop = (): void => stopRequested();
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  try {
    const running = await startServer();
    const ready: ReadyMessage = { type: "ready", service: name, port: running.port };
    if (process.send) process.send(ready);
    else console.log(`${name} listening on port ${running.port}`);
    await stopped;
    await running.close();
    return 0;
  } finally {
    process.off("SIGTERM", stop);
    process.off("SIGINT", stop);
  }
}

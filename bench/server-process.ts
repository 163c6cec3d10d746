import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createInterface, type Interface } from "node:readline";
import type { ServerKind } from "./transport-server.js";

const serverScript = fileURLToPath(new URL("./transport-server.ts", import.meta.url));

/** CpuSample is a server's CPU time at one instant of its own monotonic clock. */
export interface CpuSample {
  readonly cpuMicros: number;
  readonly wallMs: number;
}

/** ServerProcess is a benchmark server running in a child process. */
export interface ServerProcess {
  /** port is the port the child listens on (127.0.0.1). */
  readonly port: number;
  /** cpu asks the child for its CPU time so far. */
  cpu(): Promise<CpuSample>;
  /** stop closes the child's stdin (it shuts down) and waits for it to exit. */
  stop(): Promise<void>;
}

/**
 * spawnServerProcess starts `bench/transport-server.ts <kind> 0` under
 * `process.execPath --import tsx` and resolves once the child has printed
 * the port it listens on.
 */
export async function spawnServerProcess(kind: ServerKind): Promise<ServerProcess> {
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", serverScript, kind, "0"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines: Interface = createInterface({ input: child.stdout! });
  const waiting: Array<(line: string) => void> = [];
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let exitError: Error | undefined;
  child.once("exit", (code, signal) => {
    exitError = new Error(`bench server ${kind} exited (code ${code}, signal ${signal})`);
  });
  lines.on("line", (line) => waiting.shift()?.(line));

  const nextLine = (): Promise<string> =>
    new Promise((resolve, reject) => {
      if (exitError) return reject(exitError);
      waiting.push(resolve);
      void exited.then(() => reject(exitError));
    });

  const { port } = JSON.parse(await nextLine()) as { port: number };
  return {
    port,
    async cpu() {
      const reply = nextLine();
      child.stdin!.write("cpu\n");
      return JSON.parse(await reply) as CpuSample;
    },
    async stop() {
      child.stdin!.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * The load generator of the load benchmark (bench/load.bench.ts), in a
 * process of its own so that its CPU is measured apart from the mesh's:
 *
 *   node --import tsx bench/load-generator.ts      (started by spawnLoadGenerator, with an IPC channel)
 *
 * The parent sends it one load run at a time (`{type:"run", spec}`); it
 * drives the target, tells the parent as its measured window opens and
 * closes (so the parent can read the mesh's CPU at the same instants), and
 * answers with what it measured. HTTP goes through autocannon (closed loop:
 * `concurrency` keep-alive connections, one request in flight each) or, at a
 * fixed rate, through node's http client on a keep-alive agent; gRPC through
 * a plain grpc-js client (bench/grpc-load-client.ts), closed loop or at a
 * fixed rate (bench/open-loop.ts).
 *
 * Imported as a module (by the benchmark), it only exports the parent's side.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as http from "node:http";
import { resolve as resolvePath } from "node:path";
import { fileURLToPath } from "node:url";
import type { JsonValue } from "@bufbuild/protobuf";
import { windowOfClosedLoop, type LoadWindow } from "./closed-loop.js";
import type { OpenLoopWindow } from "./open-loop.js";

const thisFile = fileURLToPath(import.meta.url);

/**
 * Expectation names a check of every answer beyond its status, for the cases
 * whose failures do not show in the status: a run that FAILED still answers
 * 201 (REST) or OK (gRPC).
 */
export type Expectation = "run-succeeded";

/** LoadTarget is the request a run sends again and again. */
export type LoadTarget =
  | {
      readonly kind: "http";
      readonly url: string;
      readonly method: "GET" | "POST";
      readonly body?: string;
      readonly expect?: Expectation;
    }
  | {
      readonly kind: "grpc";
      readonly address: string;
      /** method is `package.Service/Method`. */
      readonly method: string;
      /** request is the request message in protobuf JSON. */
      readonly request: JsonValue;
      readonly expect?: Expectation;
    };

/** LoadSpec is one load run. */
export interface LoadSpec {
  readonly target: LoadTarget;
  /** concurrency is the number of requests kept in flight (closed loop); ignored with ratePerSec. */
  readonly concurrency: number;
  /** ratePerSec, when set, sends on a fixed schedule instead (open loop, bench/open-loop.ts). */
  readonly ratePerSec?: number;
  /** maxInFlight bounds a fixed-rate run's requests out at once. */
  readonly maxInFlight?: number;
  readonly warmupMs: number;
  readonly durationMs: number;
}

/** LoadResult is what the load generator measured inside one run's window; a fixed-rate run adds its schedule. */
export type LoadResult = LoadWindow & Partial<Pick<OpenLoopWindow, "due" | "notSent" | "maxLagMs">>;

/** WindowEdge is the opening or the closing of a run's measured window. */
export type WindowEdge = "start" | "end";

type ParentMessage = { type: "run"; spec: LoadSpec } | { type: "stop" };
type ChildMessage = { type: "ready" } | { type: "window"; edge: WindowEdge } | { type: "result"; result: LoadResult } | { type: "error"; message: string };

/** LoadGenerator is the load-generator process, seen from the benchmark. */
export interface LoadGenerator {
  /** pid is the generator's process id. */
  readonly pid: number;
  /** run drives one load run; `onWindow` is called as its window opens and closes. */
  run(spec: LoadSpec, onWindow: (edge: WindowEdge) => void): Promise<LoadResult>;
  /** stop ends the process. */
  stop(): Promise<void>;
}

/** spawnLoadGenerator starts `process.execPath --import tsx bench/load-generator.ts` with an IPC channel. */
export async function spawnLoadGenerator(): Promise<LoadGenerator> {
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", thisFile], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.once("message", (m: ChildMessage) => (m.type === "ready" ? resolve() : reject(new Error(`the load generator said ${JSON.stringify(m)} before it was ready`))));
    child.once("exit", (code) => reject(new Error(`the load generator exited with code ${code} before it was ready`)));
  });
  let busy = false;
  return {
    pid: child.pid!,
    run(spec, onWindow) {
      if (busy) return Promise.reject(new Error("the load generator runs one load at a time"));
      busy = true;
      return new Promise<LoadResult>((resolve, reject) => {
        const onMessage = (raw: unknown): void => {
          const m = raw as ChildMessage;
          if (m.type === "window") return onWindow(m.edge);
          if (m.type === "ready") return;
          child.off("message", onMessage);
          child.off("exit", onExit);
          busy = false;
          if (m.type === "result") resolve(m.result);
          else reject(new Error(`load generator: ${m.message}`));
        };
        const onExit = (code: number | null): void => {
          busy = false;
          reject(new Error(`the load generator exited (code ${code}) during a run`));
        };
        child.on("message", onMessage);
        child.once("exit", onExit);
        child.send({ type: "run", spec } satisfies ParentMessage);
      });
    },
    async stop() {
      if (child.connected) child.send({ type: "stop" } satisfies ParentMessage);
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ---------------------------------------------------------------------------
// The child side. The load libraries are imported lazily, so the benchmark
// that imports this module for spawnLoadGenerator does not load them.

/** runNotSucceeded finds a REST run's JSON without parsing it: a run that did not succeed says so in its `state`. */
const runNotSucceeded = /"state":"STATE_(FAILED|CANCELLED|BUDGET_EXCEEDED|PENDING|RUNNING)"/;

async function runLoad(spec: LoadSpec, onWindow: (edge: WindowEdge) => void): Promise<LoadResult> {
  const hooks = { onWindowStart: () => onWindow("start"), onWindowEnd: () => onWindow("end") };
  const { target } = spec;
  if (target.kind === "http") {
    const verifyBody = target.expect === "run-succeeded" ? (body: string) => !runNotSucceeded.test(body) : undefined;
    const headers: Record<string, string> = target.body === undefined ? {} : { "content-type": "application/json" };
    if (spec.ratePerSec === undefined) {
      const { runAutocannon } = await import("./autocannon-load.js");
      return runAutocannon(
        { url: target.url, method: target.method, headers, body: target.body, verifyBody },
        { connections: spec.concurrency, warmupMs: spec.warmupMs, durationMs: spec.durationMs, ...hooks },
      );
    }
    const { runOpenLoop } = await import("./open-loop.js");
    const maxInFlight = spec.maxInFlight ?? 256;
    const agent = new http.Agent({ keepAlive: true, maxSockets: maxInFlight });
    const url = new URL(target.url);
    const call = (): Promise<void> =>
      new Promise((resolve, reject) => {
        const req = http.request(url, { method: target.method, headers, agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const status = res.statusCode ?? 0;
            if (status < 200 || status > 299) return reject(new Error(`HTTP ${status}`));
            if (verifyBody && !verifyBody(Buffer.concat(chunks).toString("utf8"))) return reject(new Error("body check failed"));
            resolve();
          });
          res.on("error", reject);
        });
        req.on("error", reject);
        req.end(target.body);
      });
    try {
      return await runOpenLoop(call, { ratePerSec: spec.ratePerSec, maxInFlight, warmupMs: spec.warmupMs, durationMs: spec.durationMs, ...hooks });
    } finally {
      agent.destroy();
    }
  }

  const [{ createGrpcCaller }, { runClosedLoop }, { runOpenLoop }, grpc, { Run_State, RunSchema }] = await Promise.all([
    import("./grpc-load-client.js"),
    import("./closed-loop.js"),
    import("./open-loop.js"),
    import("@grpc/grpc-js"),
    import("../gen/raptorflow/v3/orchestrator_pb.js"),
  ]);
  const checkRun = target.expect === "run-succeeded";
  const caller = createGrpcCaller({ address: target.address, method: target.method, request: target.request }, checkRun);
  if (checkRun && caller.output.typeName !== RunSchema.typeName) throw new Error(`${target.method} does not answer a Run`);
  const classify = (e: unknown): string => {
    const code = (e as { code?: number }).code;
    return typeof code === "number" ? `gRPC ${grpc.status[code] ?? code}` : e instanceof Error ? e.message : String(e);
  };
  const call = async (): Promise<unknown> => {
    const answer = await caller.call();
    if (checkRun) {
      const run = answer as { state: number; error: string };
      if (run.state !== Run_State.SUCCEEDED) throw new Error(`run ${Run_State[run.state]}: ${run.error}`);
    }
    return answer;
  };
  try {
    await call(); // connect, and fail fast on a broken case
    if (spec.ratePerSec !== undefined) {
      return await runOpenLoop(call, { ratePerSec: spec.ratePerSec, maxInFlight: spec.maxInFlight ?? 256, warmupMs: spec.warmupMs, durationMs: spec.durationMs, classify, ...hooks });
    }
    // runClosedLoop counts failures; the kinds are counted here, over the same window.
    let recording = false;
    const failures: Record<string, number> = {};
    const counted = async (): Promise<unknown> => {
      try {
        return await call();
      } catch (e) {
        if (recording) failures[classify(e)] = (failures[classify(e)] ?? 0) + 1;
        throw e;
      }
    };
    const r = await runClosedLoop(counted, {
      concurrency: spec.concurrency,
      warmupMs: spec.warmupMs,
      durationMs: spec.durationMs,
      onWindowStart: () => {
        recording = true;
        hooks.onWindowStart();
      },
      onWindowEnd: () => {
        recording = false;
        hooks.onWindowEnd();
      },
    });
    return windowOfClosedLoop(r, failures);
  } finally {
    caller.close();
  }
}

async function childMain(): Promise<void> {
  const send = (m: ChildMessage): void => {
    if (process.connected) process.send!(m);
  };
  let running = Promise.resolve();
  process.on("message", (raw) => {
    const m = raw as ParentMessage;
    if (m.type === "stop") {
      process.exit(0);
    }
    running = running.then(async () => {
      try {
        send({ type: "result", result: await runLoad(m.spec, (edge) => send({ type: "window", edge })) });
      } catch (e) {
        send({ type: "error", message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
      }
    });
  });
  process.on("disconnect", () => process.exit(0));
  send({ type: "ready" });
}

if (process.argv[1] !== undefined && resolvePath(process.argv[1]) === thisFile) {
  await childMain();
}

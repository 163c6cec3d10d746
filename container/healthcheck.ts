/**
 * The container's health check (Dockerfile HEALTHCHECK, the ECS container
 * health check): asks the service this container runs whether it serves —
 * `grpc.health.v1.Health/Check` for the whole server, or its HTTP health
 * path — on its own port, and exits 0 (healthy) or 1. The service is
 * RAPTORFLOW_SERVICE, or the `serve <service>` the container was started
 * with. It runs on Node's own type stripping (`node container/healthcheck.ts`,
 * no tsx): every few seconds in every task, it must cost little.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { connect } from "node:http2";
import type { ServiceName } from "../mesh/topology.js";

// Loaded by URL so plain Node resolves the .ts file (tsx and vitest map `.js` to `.ts`; Node does not).
const { healthCheckOf, isServiceName, listenPort, topology } = (await import(new URL("../mesh/topology.ts", import.meta.url).href)) as typeof import("../mesh/topology.js");

type Env = Readonly<Record<string, string | undefined>>;

/** containerService names the service this container runs, or undefined when it cannot tell. */
export function containerService(env: Env = process.env, cmdline: () => string = () => readFileSync("/proc/1/cmdline", "utf8")): ServiceName | undefined {
  const named = env.RAPTORFLOW_SERVICE;
  if (named) return isServiceName(named) ? named : undefined;
  try {
    const args = cmdline().split("\0");
    const at = args.indexOf("serve");
    const name = at >= 0 ? args[at + 1] : undefined;
    return name && isServiceName(name) ? name : undefined;
  } catch {
    return undefined;
  }
}

/** servingBytes is a HealthCheckResponse with status SERVING (field 1, varint 1). */
const servingBytes = Buffer.from([0x08, 0x01]);

/**
 * checkGrpc asks grpc.health.v1 on 127.0.0.1:port whether the whole server
 * is SERVING: one gRPC call over plain HTTP/2 (Node's own; grpc-js takes
 * longer to load than the call takes).
 */
export function checkGrpc(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const session = connect(`http://127.0.0.1:${port}`);
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      session.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    session.on("error", () => done(false));
    const call = session.request({
      ":method": "POST",
      ":path": "/grpc.health.v1.Health/Check",
      "content-type": "application/grpc",
      te: "trailers",
    });
    const chunks: Buffer[] = [];
    let status: string | undefined;
    call.on("response", (headers) => (status = headers["grpc-status"] as string | undefined));
    call.on("trailers", (trailers) => (status = (trailers["grpc-status"] as string | undefined) ?? status));
    call.on("data", (chunk: Buffer) => chunks.push(chunk));
    call.on("error", () => done(false));
    call.on("end", () => {
      // One length-prefixed message: a flag byte, four length bytes, then HealthCheckResponse.
      const body = Buffer.concat(chunks);
      done(status === "0" && body.length >= 5 && body.subarray(5, 5 + body.readUInt32BE(1)).equals(servingBytes));
    });
    // HealthCheckRequest{service: ""} (the whole server) is empty: an uncompressed message of length 0.
    call.end(Buffer.alloc(5));
  });
}

/** checkHttp GETs http://127.0.0.1:port<path> and tells whether it answered 200. */
export async function checkHttp(port: number, path: string, timeoutMs: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** probe checks one service of the mesh the way its topology says it is probed. */
export function probe(name: ServiceName, env: Env = process.env): Promise<boolean> {
  const health = healthCheckOf(topology[name]);
  const port = listenPort(name, env);
  const timeoutMs = health.timeoutSeconds * 1000;
  return health.kind === "grpc" ? checkGrpc(port, timeoutMs) : checkHttp(port, health.path ?? "/healthz", timeoutMs);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const name = containerService();
  if (!name) {
    console.error("healthcheck: set RAPTORFLOW_SERVICE or start the container with `serve <service>`");
    process.exit(1);
  }
  const healthy = await probe(name);
  if (!healthy) console.error(`healthcheck: ${name} is not serving`);
  process.exit(healthy ? 0 : 1);
}

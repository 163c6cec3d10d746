/**
 * The server side of the transport benchmark, run in its own process so its
 * CPU time is measured apart from the load generator's:
 *
 *   node --import tsx bench/transport-server.ts <kind> <port>
 *
 * It prints one JSON line `{"port":N}` once listening. Each line `cpu` on
 * stdin is answered with `{"cpuMicros":…,"wallMs":…}` (the process's user +
 * system CPU time and a monotonic clock); closing stdin stops the server.
 */
import * as http2 from "node:http2";
import { createInterface } from "node:readline";
import * as grpc from "@grpc/grpc-js";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createValidateInterceptor } from "@connectrpc/validate";
import { AgentService } from "../gen/raptorflow/agent/v1/agent_pb.js";
import { createMeshServer } from "../mesh/grpc-server.js";
import { grpcServiceAdapter } from "../mesh/grpc-service-adapter.js";
import { benchAgentService } from "./agent-handler.js";

/** ServerKind names the server stacks the benchmark compares (import it as a type only: this module is a script). */
export type ServerKind = "mesh" | "grpc-js-bare" | "connect" | "connect-bare";

/** serverKinds lists every ServerKind, for argument checking. */
const serverKinds: readonly ServerKind[] = ["mesh", "grpc-js-bare", "connect", "connect-bare"];

/** RunningServer is a listening benchmark server. */
interface RunningServer {
  readonly port: number;
  close(): Promise<void>;
}

/** The mesh's own server: our grpc-js adapter with the protovalidate interceptor, health and reflection. */
async function startMesh(port: number): Promise<RunningServer> {
  const mesh = createMeshServer({ services: [{ service: AgentService, impl: benchAgentService }] });
  const bound = await mesh.listen(port, "127.0.0.1");
  mesh.setServing(true);
  return { port: bound, close: () => mesh.shutdown() };
}

/** Our grpc-js adapter on a bare grpc.Server: no validation, no health, no reflection. */
async function startGrpcJsBare(port: number): Promise<RunningServer> {
  const server = new grpc.Server();
  const { definition, implementation } = grpcServiceAdapter(AgentService, benchAgentService);
  server.addService(definition, implementation);
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { port: bound, close: () => new Promise((resolve) => server.tryShutdown(() => resolve())) };
}

/** Connect-ES's node adapter on a cleartext HTTP/2 server, with or without the same validate interceptor. */
async function startConnect(port: number, validate: boolean): Promise<RunningServer> {
  const handler = connectNodeAdapter({
    routes: (router) => router.service(AgentService, benchAgentService),
    interceptors: validate ? [createValidateInterceptor()] : [],
  });
  const server = http2.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const bound = typeof address === "object" && address ? address.port : port;
  return {
    port: bound,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        // Connected sessions keep an HTTP/2 server open; the client has gone already.
        setTimeout(resolve, 500).unref();
      }),
  };
}

/** startBenchServer starts a benchmark server of the given kind on 127.0.0.1 (port 0 picks a free one). */
function startBenchServer(kind: ServerKind, port: number): Promise<RunningServer> {
  switch (kind) {
    case "mesh":
      return startMesh(port);
    case "grpc-js-bare":
      return startGrpcJsBare(port);
    case "connect":
      return startConnect(port, true);
    case "connect-bare":
      return startConnect(port, false);
  }
}

async function main(): Promise<void> {
  const [kind, portArg = "0"] = process.argv.slice(2);
  if (!serverKinds.includes(kind as ServerKind)) {
    process.stderr.write(`usage: transport-server.ts <${serverKinds.join("|")}> [port]\n`);
    process.exit(2);
  }
  const server = await startBenchServer(kind as ServerKind, Number(portArg));
  process.stdout.write(`${JSON.stringify({ port: server.port })}\n`);
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    if (line.trim() !== "cpu") return;
    const { user, system } = process.cpuUsage();
    process.stdout.write(`${JSON.stringify({ cpuMicros: user + system, wallMs: performance.now() })}\n`);
  });
  lines.on("close", () => {
    void server.close().finally(() => process.exit(0));
  });
}

await main();

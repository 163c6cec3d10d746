import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMeshServer, type MeshServer } from "../mesh/grpc-server.js";
import { envPrefix, serviceNames, topology } from "../mesh/topology.js";
import { checkGrpc, checkHttp, containerService } from "./healthcheck.js";

describe("the container health check", () => {
  let grpcServer: MeshServer;
  let grpcPort: number;
  let http: Server;
  let httpPort: number;
  let serving = true;

  beforeAll(async () => {
    grpcServer = createMeshServer({ services: [] });
    grpcPort = await grpcServer.listen(0, "127.0.0.1");
    http = createServer((req, res) => {
      res.statusCode = req.url === "/healthz" && serving ? 200 : 503;
      res.end();
    });
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
    httpPort = (http.address() as { port: number }).port;
  });
  afterAll(async () => {
    await grpcServer.shutdown();
    await new Promise((r) => http.close(r));
  });

  it("is healthy only while grpc.health.v1 says SERVING", async () => {
    expect(await checkGrpc(grpcPort, 2000)).toBe(false);
    grpcServer.setServing(true);
    expect(await checkGrpc(grpcPort, 2000)).toBe(true);
    grpcServer.setServing(false);
    expect(await checkGrpc(grpcPort, 2000)).toBe(false);
  });

  it("is unhealthy when nothing listens", async () => {
    const closed = createMeshServer({ services: [] });
    const port = await closed.listen(0, "127.0.0.1");
    await closed.shutdown();
    expect(await checkGrpc(port, 1000)).toBe(false);
    expect(await checkHttp(port, "/healthz", 1000)).toBe(false);
  });

  it("is healthy only while the HTTP health path answers 200", async () => {
    expect(await checkHttp(httpPort, "/healthz", 2000)).toBe(true);
    serving = false;
    expect(await checkHttp(httpPort, "/healthz", 2000)).toBe(false);
  });

  it("runs as the image runs it (plain `node container/healthcheck.ts`) and exits 0 only when serving", async () => {
    const name = serviceNames.find((n) => topology[n].protocol === "grpc")!;
    const run = (): Promise<number> =>
      new Promise((resolve) => {
        const script = fileURLToPath(new URL("./healthcheck.ts", import.meta.url));
        const env = { ...process.env, RAPTORFLOW_SERVICE: name, [`${envPrefix(name)}_PORT`]: String(grpcPort) };
        execFile(process.execPath, [script], { env }, (err) => resolve(err ? ((err as { code?: number }).code ?? 1) : 0));
      });
    grpcServer.setServing(true);
    expect(await run()).toBe(0);
    grpcServer.setServing(false);
    expect(await run()).toBe(1);
  });

  it("knows its service from RAPTORFLOW_SERVICE or from the container's `serve <service>` command", () => {
    const name = serviceNames[0];
    expect(containerService({ RAPTORFLOW_SERVICE: name })).toBe(name);
    expect(containerService({ RAPTORFLOW_SERVICE: "nope" })).toBeUndefined();
    expect(containerService({}, () => ["node", "bin/raptorflow.js", "serve", name, ""].join("\0"))).toBe(name);
    expect(containerService({}, () => ["node", "bin/raptorflow.js", "start"].join("\0"))).toBeUndefined();
    expect(containerService({}, () => { throw new Error("no /proc"); })).toBeUndefined();
  });
});

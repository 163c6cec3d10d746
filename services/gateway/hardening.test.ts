import { request as httpsRequest } from "node:https";
import { connect, type Socket } from "node:net";
import { createRouterTransport } from "@connectrpc/connect";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrchestratorService } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { IcpService } from "../../gen/raptorflow/v1/icp_pb.js";
import { createTestPki, hasOpenssl, type TestPki } from "../../test/support/certificates.js";
import { createLogger } from "../../mesh/logger.js";
import { createGatewayApp, type GatewayAppOptions } from "./gateway-app.js";
import { jsonDepthExceeds } from "./json-body.js";
import { createMemoryKeyValueStore } from "../../platform/kv/memory-kv-store.js";
import { createRateLimiter } from "../../platform/kv/rate-limiter.js";
import { hardeningFromEnv } from "./settings.js";

/** gateway is a gateway in front of an in-memory orchestrator whose CreateRun answers with the input it got, and an ICP service. */
function gateway(options: Partial<GatewayAppOptions> = {}): Promise<FastifyInstance> {
  const transport = createRouterTransport(({ service }) => {
    service(OrchestratorService, {
      createRun: (req) => ({ name: "runs/1", input: req.input }),
      getCapabilities: () => ({}),
    });
    service(IcpService, { updateIcp: (req) => req.icp ?? {} });
  });
  return createGatewayApp({ services: [{ service: OrchestratorService, transport }, { service: IcpService, transport }], timeoutMs: 5_000, ...options });
}

const connectJson = { "content-type": "application/json", "connect-protocol-version": "1" };

describe("security headers", () => {
  it("are on every answer: REST, errors, Connect, health, the docs page", async () => {
    const app = await gateway();
    const answers = await Promise.all([
      app.inject({ url: "/v3/capabilities" }),
      app.inject({ url: "/nowhere" }),
      app.inject({ method: "POST", url: "/v3/runs", headers: { "content-type": "application/json" }, payload: "{not json" }),
      app.inject({ method: "POST", url: "/raptorflow.v3.OrchestratorService/GetCapabilities", headers: connectJson, payload: "{}" }),
      app.inject({ url: "/healthz" }),
      app.inject({ url: "/docs/" }),
    ]);
    expect(answers.map((a) => a.statusCode)).toEqual([200, 404, 400, 200, 200, 200]);
    for (const a of answers) {
      expect(a.headers["x-content-type-options"]).toBe("nosniff");
      expect(a.headers["x-frame-options"]).toBe("SAMEORIGIN");
      expect(a.headers["referrer-policy"]).toBe("no-referrer");
      expect(a.headers["content-security-policy"]).toContain("frame-ancestors 'none'");
      expect(a.headers["content-security-policy"]).not.toContain("upgrade-insecure-requests");
      expect(a.headers["cross-origin-resource-policy"]).toBe("same-origin");
      // Plain HTTP: no HSTS (browsers ignore it there; TLS below sends it).
      expect(a.headers["strict-transport-security"]).toBeUndefined();
    }
    await app.close();
  });
});

describe("the request log", () => {
  it("writes one line per request, when it is answered: method, path, status and time, without the credentials", async () => {
    const lines: Record<string, unknown>[] = [];
    const destination = { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) };
    const log = createLogger({ env: { LOG_LEVEL: "info", LOG_FORMAT: "json" }, service: "gateway", destination });
    const app = await gateway({ logger: log });
    await app.inject({ method: "POST", url: "/v3/runs", headers: { "content-type": "application/json", authorization: "Bearer secret-token" }, payload: { input: "hi" } });
    await app.inject({ url: "/nowhere" });
    const requests = lines.filter((l) => l.req !== undefined || l.res !== undefined);
    expect(requests.map((l) => [l.msg, (l.req as { method: string }).method, (l.req as { url: string }).url, (l.res as { statusCode: number }).statusCode])).toEqual([
      ["request completed", "POST", "/v3/runs", 201],
      ["request completed", "GET", "/nowhere", 404],
    ]);
    for (const l of requests) expect(l.responseTime).toEqual(expect.any(Number));
    expect(JSON.stringify(lines)).not.toContain("secret-token");
    await app.close();
  });
});

describe("bad bodies", () => {
  it("counts nesting outside strings only, without recursion", () => {
    expect(jsonDepthExceeds('{"a":[{"b":1}]}', 3)).toBe(false);
    expect(jsonDepthExceeds('{"a":[{"b":1}]}', 2)).toBe(true);
    expect(jsonDepthExceeds(`{"a":"${"[".repeat(1000)}\\""}`, 1)).toBe(false);
    expect(jsonDepthExceeds("[".repeat(5_000_000), 64)).toBe(true);
  });

  it("answers a JSON body nested past the limit with a 400 Status before reading it; one at the limit goes through", async () => {
    const app = await gateway({ maxJsonDepth: 4 });
    const nested = (depth: number): string => `{"input":"x","parameters":${'{"a":'.repeat(depth - 1)}1${"}".repeat(depth - 1)}}`;
    const deep = await app.inject({ method: "POST", url: "/v3/runs", headers: { "content-type": "application/json" }, payload: nested(5) });
    expect(deep.statusCode).toBe(400);
    expect(deep.json()).toMatchObject({ code: 3, message: "the JSON body nests deeper than 4 levels" });
    const ok = await app.inject({ method: "POST", url: "/v3/runs", headers: { "content-type": "application/json" }, payload: nested(4) });
    expect(ok.statusCode).toBe(201);
    await app.close();
  });

  it("bounds Connect and gRPC-Web bodies, which Connect reads itself, as REST ones", async () => {
    const app = await gateway({ maxRequestBytes: 1024 });
    const big = JSON.stringify({ input: "x".repeat(2048) });
    const rest = await app.inject({ method: "POST", url: "/v3/runs", headers: { "content-type": "application/json" }, payload: big });
    expect(rest.statusCode).toBe(413);
    const viaConnect = await app.inject({ method: "POST", url: "/raptorflow.v3.OrchestratorService/CreateRun", headers: connectJson, payload: big });
    expect(viaConnect.statusCode).toBeGreaterThanOrEqual(400);
    expect(viaConnect.statusCode).toBeLessThan(500);
    expect(viaConnect.json()).toMatchObject({ code: "resource_exhausted" });
    await app.close();
  });
});

describe("malformed requests the fuzz test found answering 5xx", () => {
  it("a Connect binary body that is not the method's message is invalid_argument (400), not internal", async () => {
    const app = await gateway();
    const res = await app.inject({ method: "POST", url: "/raptorflow.v3.OrchestratorService/CreateRun", headers: { "content-type": "application/proto", "connect-protocol-version": "1" }, payload: Buffer.from([1]) });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: "invalid_argument", message: expect.stringContaining("is not a valid raptorflow.v3.CreateRunRequest") });
    await app.close();
  });

  it("a gRPC-Web binary body that is not the method's message ends with grpc-status 3 (invalid argument), not 13; good calls are untouched", async () => {
    const app = await gateway();
    const frame = (flag: number, body: Uint8Array) => Buffer.concat([Buffer.from([flag, 0, 0, 0, body.length]), Buffer.from(body)]);
    const grpcWeb = { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" };
    const bad = await app.inject({ method: "POST", url: "/raptorflow.v3.OrchestratorService/CreateRun", headers: grpcWeb, payload: frame(0, new Uint8Array([0xff, 0xff, 0xff])) });
    const trailer = bad.rawPayload.subarray(5).toString();
    expect(bad.rawPayload[0]).toBe(0x80);
    expect(trailer).toMatch(/^grpc-status: 3\r$/m);
    expect(decodeURIComponent(/grpc-message: (.*)\r/.exec(trailer)?.[1] ?? "")).toContain("is not a valid raptorflow.v3.CreateRunRequest");
    // A well-formed call: a data frame (input "hi"), then its trailer with grpc-status 0.
    const good = await app.inject({ method: "POST", url: "/raptorflow.v3.OrchestratorService/CreateRun", headers: grpcWeb, payload: frame(0, new Uint8Array([0x0a, 2, 0x68, 0x69])) });
    expect(good.rawPayload[0]).toBe(0);
    expect(good.rawPayload.toString()).toContain("grpc-status: 0");
    expect(good.rawPayload.toString()).toContain("runs/1");
    await app.close();
  });

  it("a body field that a path variable completes must be an object (400), whatever JSON the body is", async () => {
    const app = await gateway();
    for (const payload of ['"\\ud800"', "[1]", "7", "true"]) {
      const res = await app.inject({ method: "PATCH", url: "/api/icps/x", headers: { "content-type": "application/json" }, payload });
      expect(res.statusCode, payload).toBe(400);
      expect(res.json().message).toBe('icp.name: "icp" must be a JSON object');
    }
    expect((await app.inject({ method: "PATCH", url: "/api/icps/x", headers: { "content-type": "application/json" }, payload: '{"displayName":"a"}' })).json()).toMatchObject({ name: "icps/x", displayName: "a" });
    await app.close();
  });
});

describe("CORS", () => {
  const origin = "https://app.example.com";
  const preflight = (app: FastifyInstance, from: string) =>
    app.inject({
      method: "OPTIONS",
      url: "/raptorflow.v3.OrchestratorService/CreateRun",
      headers: { origin: from, "access-control-request-method": "POST", "access-control-request-headers": "content-type,connect-protocol-version,authorization,x-grpc-web" },
    });

  it("answers preflights of the configured origins for Connect and gRPC-Web, exposing the gRPC status and rate-limit headers", async () => {
    const app = await gateway({ corsOrigins: [origin] });
    const ok = await preflight(app, origin);
    expect(ok.statusCode).toBe(204);
    expect(ok.headers["access-control-allow-origin"]).toBe(origin);
    expect(String(ok.headers["access-control-allow-headers"]).toLowerCase()).toContain("authorization");
    expect(String(ok.headers["access-control-allow-headers"]).toLowerCase()).toContain("connect-protocol-version");
    expect(ok.headers["access-control-allow-credentials"]).toBeUndefined();
    const call = await app.inject({ method: "POST", url: "/raptorflow.v3.OrchestratorService/GetCapabilities", headers: { ...connectJson, origin }, payload: "{}" });
    expect(call.statusCode).toBe(200);
    expect(call.headers["access-control-allow-origin"]).toBe(origin);
    const exposed = String(call.headers["access-control-expose-headers"]).toLowerCase();
    for (const h of ["grpc-status", "grpc-message", "retry-after", "ratelimit-remaining", "x-request-id"]) expect(exposed).toContain(h);
    // The REST routes still answer.
    expect((await app.inject({ url: "/v3/capabilities", headers: { origin } })).headers["access-control-allow-origin"]).toBe(origin);
    await app.close();
  });

  it("gives other origins nothing, and is off unless configured", async () => {
    const app = await gateway({ corsOrigins: [origin] });
    const evil = await preflight(app, "https://evil.example");
    expect(evil.headers["access-control-allow-origin"]).toBeUndefined();
    await app.close();
    const closed = await gateway();
    const none = await preflight(closed, origin);
    expect(none.headers["access-control-allow-origin"]).toBeUndefined();
    await closed.close();
  });
});

/** rawExchange writes bytes on a fresh connection and returns what the server answered until it closed the connection (or 5 s passed). */
function rawExchange(port: number, write: (s: Socket) => void): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    let got = "";
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, 5_000);
    s.on("data", (d) => (got += d.toString()));
    s.on("close", done);
    s.on("error", done);
    s.on("connect", () => write(s));
  });
}

describe("clients that send too much, or too slowly", () => {
  let app: FastifyInstance;
  let port: number;
  beforeAll(async () => {
    app = await gateway({ server: { maxHeaderBytes: 2048, headersTimeoutMs: 200, requestTimeoutMs: 400 } });
    await app.listen({ port: 0, host: "127.0.0.1" });
    port = (app.server.address() as { port: number }).port;
  });
  afterAll(() => app.close());

  it("answers headers past the limit with 431", async () => {
    const answer = await rawExchange(port, (s) => s.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(4096)}\r\n\r\n`));
    expect(answer).toMatch(/^HTTP\/1\.1 431/);
  });

  it("cuts off a client that does not finish its headers, or its body, in time (408)", async () => {
    const slowHeaders = await rawExchange(port, (s) => s.write("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
    expect(slowHeaders).toMatch(/^HTTP\/1\.1 408/);
    const slowBody = await rawExchange(port, (s) => s.write('POST /v3/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"input":'));
    expect(slowBody).toMatch(/^HTTP\/1\.1 408/);
  });

  it("still answers a client that behaves", async () => {
    expect(await rawExchange(port, (s) => s.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))).toMatch(/^HTTP\/1\.1 200/);
  });
});

describe.skipIf(!hasOpenssl)("TLS on the gateway", () => {
  let pki: TestPki;
  beforeAll(() => {
    pki = createTestPki();
  });
  afterAll(() => pki?.dispose());

  it("serves HTTPS from GATEWAY_TLS_CERT and GATEWAY_TLS_KEY, with HSTS", async () => {
    const cert = pki.issue("gateway");
    const { server } = hardeningFromEnv({ GATEWAY_TLS_CERT: cert.certFile, GATEWAY_TLS_KEY: cert.keyFile });
    const app = await gateway({ server });
    await app.listen({ port: 0, host: "127.0.0.1" });
    const port = (app.server.address() as { port: number }).port;
    const res = await new Promise<{ status: number; hsts: string | undefined; body: string }>((resolve, reject) => {
      const req = httpsRequest({ host: "127.0.0.1", port, path: "/v3/capabilities", ca: pki.ca.cert, servername: "localhost" }, (r) => {
        let body = "";
        r.on("data", (d) => (body += d));
        r.on("end", () => resolve({ status: r.statusCode!, hsts: r.headers["strict-transport-security"] as string | undefined, body }));
      });
      req.on("error", reject);
      req.end();
    });
    expect(res.status).toBe(200);
    expect(res.hsts).toBe("max-age=31536000; includeSubDomains");
    // Plain HTTP to the TLS port gets no answer of ours.
    expect(await rawExchange(port, (s) => s.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))).not.toMatch(/^HTTP\/1\.1 200/);
    await app.close();
  });
});

describe("hardeningFromEnv", () => {
  it("reads the bounds and refuses bad ones by name", () => {
    expect(hardeningFromEnv({})).toEqual({ server: { tls: undefined, maxHeaderBytes: undefined, headersTimeoutMs: undefined, requestTimeoutMs: undefined, idleTimeoutMs: undefined }, maxJsonDepth: 64, corsOrigins: [], trustedProxies: [] });
    expect(hardeningFromEnv({ GATEWAY_CORS_ORIGINS: "https://a.example, http://localhost:5173", GATEWAY_MAX_HEADER_BYTES: "8192" })).toMatchObject({
      corsOrigins: ["https://a.example", "http://localhost:5173"],
      server: { maxHeaderBytes: 8192 },
    });
    expect(() => hardeningFromEnv({ GATEWAY_TLS_CERT: "/c.pem" })).toThrow("GATEWAY_TLS_CERT and GATEWAY_TLS_KEY go together");
    expect(() => hardeningFromEnv({ GATEWAY_CORS_ORIGINS: "https://a.example/" })).toThrow(/is not an origin/);
    expect(() => hardeningFromEnv({ GATEWAY_CORS_ORIGINS: "a.example" })).toThrow(/is not an origin/);
    expect(() => hardeningFromEnv({ GATEWAY_MAX_JSON_DEPTH: "0" })).toThrow(/at least 1/);
    expect(() => hardeningFromEnv({ GATEWAY_REQUEST_TIMEOUT_MS: "soon" })).toThrow('GATEWAY_REQUEST_TIMEOUT_MS must be a whole number, got "soon"');
    expect(hardeningFromEnv({ GATEWAY_TRUSTED_PROXIES: "10.0.0.0/8, 127.0.0.1, fd00::/8" }).trustedProxies).toEqual(["10.0.0.0/8", "127.0.0.1", "fd00::/8"]);
    expect(() => hardeningFromEnv({ GATEWAY_TRUSTED_PROXIES: "10.0.0.0/33" })).toThrow('GATEWAY_TRUSTED_PROXIES: "10.0.0.0/33" is not an IP address or CIDR range');
    expect(() => hardeningFromEnv({ GATEWAY_TRUSTED_PROXIES: "lb.example" })).toThrow(/"lb.example" is not an IP address/);
  });
});

describe("clients behind a load balancer", () => {
  const limited = (trustedProxies?: readonly string[]) =>
    gateway({ trustedProxies, rateLimit: { perOrganization: createRateLimiter(createMemoryKeyValueStore(), { limit: 1, windowMs: 60_000 }) } });
  const from = (app: FastifyInstance, client: string, remoteAddress = "10.1.2.3") =>
    app.inject({ url: "/v3/capabilities", remoteAddress, headers: { "x-forwarded-for": client } });

  it("from a trusted proxy, each client address in X-Forwarded-For has its own allowance", async () => {
    const app = await limited(["10.0.0.0/8"]);
    expect((await from(app, "203.0.113.7")).statusCode).toBe(200);
    expect((await from(app, "203.0.113.7")).statusCode).toBe(429);
    expect((await from(app, "198.51.100.4")).statusCode).toBe(200);
    await app.close();
  });

  it("without trusted proxies, X-Forwarded-For is ignored: a client cannot buy allowances by inventing addresses", async () => {
    const app = await limited();
    expect((await from(app, "203.0.113.7")).statusCode).toBe(200);
    expect((await from(app, "198.51.100.4")).statusCode).toBe(429);
    // Nor from a proxy that is not the trusted one.
    const trusting = await limited(["192.168.0.0/16"]);
    expect((await from(trusting, "203.0.113.7")).statusCode).toBe(200);
    expect((await from(trusting, "198.51.100.4")).statusCode).toBe(429);
    await Promise.all([app.close(), trusting.close()]);
  });
});

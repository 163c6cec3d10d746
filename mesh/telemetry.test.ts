import { Writable } from "node:stream";
import { Code, ConnectError, createClient, type ServiceImpl } from "@connectrpc/connect";
import { context, SpanKind, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/raptorflow/agent/v1/agent_pb.js";
import { StatusService, ServingState } from "../gen/raptorflow/ops/v1/status_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { createGrpcTransport, type GrpcTransport } from "./grpc-transport.js";
import { createMeshServer, type MeshServer } from "./grpc-server.js";
import { createLogger } from "./logger.js";
import { startOpsListener, readinessReport, type OpsListener } from "./ops-http.js";
import { createClientTelemetryInterceptor } from "./telemetry-interceptor.js";
import { startTelemetry, tracer, type Telemetry } from "./telemetry.js";
import { metricNames } from "../observability/alerts.js";

/*
 * One process, the SDK started as `raptorflow serve` starts it, an
 * in-memory span exporter: a client calls a server over real gRPC and the
 * spans, metrics, logs and health are read back.
 */

const spans = new InMemorySpanExporter();
let telemetry: Telemetry;
let server: MeshServer;
let transport: GrpcTransport;
let ops: OpsListener;
let up = true;
const lines: Record<string, unknown>[] = [];
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l));
    done();
  },
});
const log = createLogger({ env: { LOG_LEVEL: "info" }, service: "telemetry-test", destination: sink });

beforeAll(async () => {
  telemetry = startTelemetry("v1-agents", { NODE_ENV: "test" }, { spanExporter: spans });
  const impl: Partial<ServiceImpl<typeof AgentService>> = {
    getAgent(req) {
      // A span of the handler's own (a model call, a query) is a child of the call's.
      tracer().startSpan("inner work").end();
      log.info({ authorization: "Bearer secret-token", nested: { password: "hunter2" } }, "handling");
      if (req.name === "agents/missing") throw new ConnectError("no such agent", Code.NotFound);
      if (req.name === "agents/broken") throw new Error("boom");
      return { name: req.name };
    },
    async *streamAgent(req) {
      tracer().startSpan("inner stream work").end();
      yield { event: { case: "delta", value: `hello ${req.name}` } };
      yield { event: { case: "delta", value: "again" } };
    },
  };
  server = createMeshServer({ services: [{ service: AgentService, impl }] });
  server.readiness.watch({ name: "redis", kind: "cache", required: false, check: async () => up });
  const port = await server.listen(0, "127.0.0.1");
  server.setServing(true);
  transport = createGrpcTransport({ address: `127.0.0.1:${port}`, interceptors: [createClientTelemetryInterceptor("v1-agents")] });
  ops = await startOpsListener(0, "127.0.0.1", { metrics: telemetry.serveMetrics, readiness: () => readinessReport(server.readiness) });
});
afterAll(async () => {
  transport?.close();
  await server?.shutdown();
  await ops?.close();
  await telemetry?.shutdown();
});

const byName = (name: string): ReadableSpan[] => spans.getFinishedSpans().filter((s) => s.name === name);

describe("traces", () => {
  it("continue the caller's trace across gRPC: client span → server span → the handler's spans", async () => {
    spans.reset();
    const root = tracer().startSpan("caller");
    await context.with(trace.setSpan(context.active(), root), () =>
      createClient(AgentService, transport).getAgent({ name: "agents/icp_builder" }, { headers: { "x-raptorflow-organization": "acme", "x-request-id": "req-1" } }),
    );
    root.end();
    const [client] = byName("raptorflow.agent.v1.AgentService/GetAgent").filter((s) => s.kind === SpanKind.CLIENT);
    const [srv] = byName("raptorflow.agent.v1.AgentService/GetAgent").filter((s) => s.kind === SpanKind.SERVER);
    const [inner] = byName("inner work");
    const traceId = root.spanContext().traceId;
    for (const s of [client, srv, inner]) expect(s.spanContext().traceId).toBe(traceId);
    expect(client.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(srv.parentSpanContext?.spanId).toBe(client.spanContext().spanId);
    expect(inner.parentSpanContext?.spanId).toBe(srv.spanContext().spanId);
    expect(srv.attributes).toMatchObject({
      "rpc.system": "grpc",
      "rpc.service": "raptorflow.agent.v1.AgentService",
      "rpc.method": "GetAgent",
      "rpc.response.status_code": "OK",
      "raptorflow.organization": "acme",
    });
    expect(client.attributes).toMatchObject({ "peer.service": "v1-agents", "rpc.response.status_code": "OK" });
  });

  it("mark faults as errors on the server, a caller's mistake not", async () => {
    spans.reset();
    const agents = createClient(AgentService, transport);
    await expect(agents.getAgent({ name: "agents/missing" })).rejects.toThrow(/no such agent/);
    await expect(agents.getAgent({ name: "agents/broken" })).rejects.toThrow();
    const servers = byName("raptorflow.agent.v1.AgentService/GetAgent").filter((s) => s.kind === SpanKind.SERVER);
    expect(servers.map((s) => [s.attributes["rpc.response.status_code"], s.status.code])).toEqual([
      ["NOT_FOUND", 0],
      ["UNKNOWN", 2],
    ]);
  });

  it("keep a stream's span open, and its handler's spans inside it, until the stream ends", async () => {
    spans.reset();
    const got: string[] = [];
    for await (const ev of createClient(AgentService, transport).streamAgent({ name: "agents/copywriter", input: "write" })) got.push(String(ev.event.value));
    expect(got).toEqual(["hello agents/copywriter", "again"]);
    const [srv] = byName("raptorflow.agent.v1.AgentService/StreamAgent").filter((s) => s.kind === SpanKind.SERVER);
    const [inner] = byName("inner stream work");
    expect(inner.parentSpanContext?.spanId).toBe(srv.spanContext().spanId);
    expect(srv.attributes["rpc.response.status_code"]).toBe("OK");
  });
});

describe("logs", () => {
  it("carry the trace, span, request id, organization and RPC of the call, and no secret", async () => {
    lines.length = 0;
    spans.reset();
    await createClient(AgentService, transport).getAgent({ name: "agents/icp_builder" }, { headers: { "x-raptorflow-organization": "acme", "x-request-id": "req-42" } });
    const line = lines.find((l) => l.msg === "handling")!;
    const [srv] = byName("raptorflow.agent.v1.AgentService/GetAgent").filter((s) => s.kind === SpanKind.SERVER);
    expect(line).toMatchObject({
      level: "info",
      service: "telemetry-test",
      trace_id: srv.spanContext().traceId,
      span_id: srv.spanContext().spanId,
      request_id: "req-42",
      organization: "acme",
      rpc: "raptorflow.agent.v1.AgentService/GetAgent",
      authorization: "[REDACTED]",
      nested: { password: "[REDACTED]" },
    });
    expect(JSON.stringify(lines)).not.toMatch(/secret-token|hunter2/);
  });
});

describe("metrics", () => {
  it("are served for Prometheus: RED per RPC by code, labelled with the service, and the runtime's", async () => {
    const text = await (await fetch(`http://127.0.0.1:${ops.port}/metrics`)).text();
    /** series are the lines of a metric whose labels include all of `labels`. */
    const series = (name: string, labels: string[]) => text.split("\n").filter((l) => l.startsWith(`${name}{`) && labels.every((x) => l.includes(x)));
    const notFound = series("rpc_server_call_duration_count", ['service_name="v1-agents"', 'rpc_method="GetAgent"', 'rpc_response_status_code="NOT_FOUND"']);
    expect(notFound).toHaveLength(1);
    expect(notFound[0]).toMatch(/ 1$/);
    expect(series("rpc_server_call_duration_bucket", ['rpc_response_status_code="OK"', 'le="0.005"'])).not.toHaveLength(0);
    expect(series("rpc_client_call_duration_count", ['peer_service="v1-agents"'])).not.toHaveLength(0);
    for (const m of ["nodejs_eventloop_delay_p99", "v8js_memory_heap_used", "process_memory_usage", "process_cpu_time_total"]) expect(text).toContain(`\n${m}{`);
  });

  it("are named as the alerting rules read them (observability/alerts.ts)", async () => {
    const text = await (await fetch(`http://127.0.0.1:${ops.port}/metrics`)).text();
    const { rpcDuration, rpcStatusLabel, serviceLabel } = metricNames;
    for (const suffix of ["_bucket", "_count"]) {
      const lines = text.split("\n").filter((l) => l.startsWith(`${rpcDuration}${suffix}{`));
      expect(lines.length, `${rpcDuration}${suffix}`).toBeGreaterThan(0);
      for (const l of lines) expect(l).toMatch(new RegExp(`[{,]${rpcStatusLabel}="[A-Z_]+".*[{,]${serviceLabel}="v1-agents"`));
    }
  });
});

describe("health", () => {
  it("is degraded, not down, while an optional dependency is; its own entry says which", async () => {
    const health = createClient(Health, transport);
    const status = createClient(StatusService, transport);
    up = false;
    await server.readiness.checkNow();
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect((await health.check({ service: "raptorflow.dependency.redis" })).status).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
    const degraded = await status.getServiceStatus({});
    expect(degraded.state).toBe(ServingState.DEGRADED);
    expect(degraded.service).toBe("v1-agents");
    expect(degraded.dependencies).toMatchObject([{ name: "redis", kind: "cache", required: false, healthy: false }]);
    const readyz = await fetch(`http://127.0.0.1:${ops.port}/readyz`);
    expect(readyz.status).toBe(200);
    expect(await readyz.json()).toMatchObject({ status: "degraded", service: "v1-agents" });
    up = true;
    await server.readiness.checkNow();
    expect((await status.getServiceStatus({})).state).toBe(ServingState.SERVING);
    expect((await health.check({ service: "raptorflow.dependency.redis" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect((await fetch(`http://127.0.0.1:${ops.port}/livez`)).status).toBe(200);
  });

  it("is NOT_SERVING while a required dependency is down, and /readyz answers 503", async () => {
    let db = false;
    const unwatch = server.readiness.watch({ name: "database", kind: "database", required: true, check: async () => db });
    await server.readiness.checkNow();
    expect((await createClient(Health, transport).check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
    expect((await fetch(`http://127.0.0.1:${ops.port}/readyz`)).status).toBe(503);
    db = true;
    await server.readiness.checkNow();
    expect((await createClient(Health, transport).check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    unwatch();
  });
});

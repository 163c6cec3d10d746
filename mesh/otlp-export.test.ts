import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { instruments, otlpUrl, startTelemetry, tracer, type Telemetry } from "./telemetry.js";

/*
 * With an OTLP endpoint configured, spans and metrics leave the process as
 * OTLP over HTTP (protobuf) to it; a loopback collector records what came.
 */

const received: { path: string; type: string; bytes: number }[] = [];
let collector: Server;
let telemetry: Telemetry;

beforeAll(async () => {
  collector = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ path: req.url ?? "", type: String(req.headers["content-type"]), bytes: Buffer.concat(chunks).length });
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((r) => collector.listen(0, "127.0.0.1", r));
  const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
  telemetry = startTelemetry("orchestrator", { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_METRIC_EXPORT_INTERVAL: "60000" });
});
afterAll(async () => {
  collector?.close();
});

describe("OTLP export", () => {
  it("sends traces and metrics to the configured endpoint, and nothing without one", async () => {
    expect(telemetry.exporting).toEqual(["otlp-traces", "otlp-metrics"]);
    tracer().startSpan("exported").end();
    instruments("otlp-test", (m) => m.createCounter("raptorflow.test.counter")).add(1);
    // Shutting down flushes both: the batch of spans and a last collection of metrics.
    await telemetry.shutdown();
    expect(received.find((r) => r.path === "/v1/traces")).toMatchObject({ type: "application/x-protobuf", bytes: expect.any(Number) });
    expect(received.find((r) => r.path === "/v1/metrics")).toMatchObject({ type: "application/x-protobuf" });
    expect(received.find((r) => r.path === "/v1/traces")!.bytes).toBeGreaterThan(0);
  });

  it("goes where each setting says", () => {
    expect(otlpUrl({}, "traces")).toBeUndefined();
    expect(otlpUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" }, "traces")).toBe("http://collector:4318/v1/traces");
    expect(otlpUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: "http://m:9/x" }, "metrics")).toBe("http://m:9/x");
    expect(otlpUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_METRICS_EXPORTER: "none" }, "metrics")).toBeUndefined();
  });
});

import { context, trace } from "@opentelemetry/api";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace";
import { describe, expect, it } from "vitest";
import { redisAvailable, redisUrl } from "../../test/support/databases.js";
import { startTelemetry, tracer } from "../../mesh/telemetry.js";
import { createResultCache } from "./result-cache.js";
import { createRedisKeyValueStore } from "./redis-kv-store.js";

const spans = new InMemorySpanExporter();
const telemetry = startTelemetry("v2-agents", { NODE_ENV: "test" }, { spanExporter: spans });

describe("Redis telemetry", () => {
  it("traces each command as a child of the active span, under the cache read that made it, keys and values left out", async (ctx) => {
    if (!(await redisAvailable("Redis telemetry"))) return ctx.skip();
    const kv = createRedisKeyValueStore(redisUrl());
    const cache = createResultCache(kv, 60_000);
    const parent = tracer().startSpan("agent call");
    try {
      await context.with(trace.setSpan(context.active(), parent), async () => {
        await cache.set("agent-result:k1", "secret-value");
        expect(await cache.get("agent-result:k1")).toBe("secret-value");
        expect(await cache.get("agent-result:absent")).toBeUndefined();
      });
    } finally {
      parent.end();
      await kv.close();
    }
    const finished = spans.getFinishedSpans();
    const reads = finished.filter((s) => s.name === "cache.get agent-result");
    expect(reads.map((s) => s.attributes["raptorflow.cache.hit"])).toEqual([true, false]);
    for (const r of reads) expect(r.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
    const gets = finished.filter((s) => s.name === "GET");
    expect(gets).toHaveLength(2);
    expect(gets.map((g) => g.parentSpanContext?.spanId).sort()).toEqual(reads.map((r) => r.spanContext().spanId).sort());
    expect(gets[0].attributes).toMatchObject({ "db.system.name": "redis", "db.operation.name": "GET" });
    const set = finished.find((s) => s.name === "SET")!;
    expect(set.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
    expect(JSON.stringify(finished.map((s) => s.attributes))).not.toMatch(/secret-value|agent-result:k1/);
    await telemetry.shutdown();
  });
});

import Fastify from "fastify";
import { describe, expect, it } from "vitest";
import { createMemoryKeyValueStore } from "../../platform/kv/memory-kv-store.js";
import { createRateLimiter } from "../../platform/kv/rate-limiter.js";
import { createRedisKeyValueStore } from "../../platform/kv/redis-kv-store.js";
import { rateLimitPlugin } from "./rate-limit-plugin.js";

async function app(limiter: ReturnType<typeof createRateLimiter>) {
  const a = Fastify();
  await a.register(rateLimitPlugin, { limiter });
  a.get("/v3/agents", async () => ({ agents: [] }));
  a.get("/healthz", async () => ({ status: "serving" }));
  return a;
}

describe("the gateway's rate limit", () => {
  it("answers 429 with a Status body and Retry-After past the limit, counting per organization or address", async () => {
    const a = await app(createRateLimiter(createMemoryKeyValueStore(), { limit: 2, windowMs: 60_000 }));
    const first = await a.inject({ url: "/v3/agents" });
    expect(first.statusCode).toBe(200);
    expect(first.headers["ratelimit-limit"]).toBe("2");
    expect(first.headers["ratelimit-remaining"]).toBe("1");
    await a.inject({ url: "/v3/agents" });
    const third = await a.inject({ url: "/v3/agents" });
    expect(third.statusCode).toBe(429);
    expect(third.json()).toMatchObject({ code: 8, message: expect.stringContaining("rate limit of 2") });
    expect(Number(third.headers["retry-after"])).toBeGreaterThan(0);
    // Another organization has its own allowance; health checks are never limited.
    const other = await a.inject({ url: "/v3/agents", headers: { "grpc-metadata-x-raptorflow-organization": "globex" } });
    expect(other.statusCode).toBe(200);
    expect((await a.inject({ url: "/healthz" })).statusCode).toBe(200);
    await a.close();
  });

  it("lets requests through, with one warning, when the counter store is down", async () => {
    const kv = createRedisKeyValueStore("redis://127.0.0.1:1");
    const warnings: string[] = [];
    const a = await app(createRateLimiter(kv, { limit: 1, windowMs: 60_000 }, (m) => warnings.push(m)));
    expect((await a.inject({ url: "/v3/agents" })).statusCode).toBe(200);
    expect((await a.inject({ url: "/v3/agents" })).statusCode).toBe(200);
    expect(warnings).toHaveLength(1);
    await a.close();
    await kv.close();
  });
});

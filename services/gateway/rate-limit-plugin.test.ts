import Fastify from "fastify";
import { describe, expect, it } from "vitest";
import { createMemoryKeyValueStore } from "../../platform/kv/memory-kv-store.js";
import { createRateLimiter } from "../../platform/kv/rate-limiter.js";
import { createRedisKeyValueStore } from "../../platform/kv/redis-kv-store.js";
import { rateLimitPlugin, type RateLimitPluginOptions } from "./rate-limit-plugin.js";

/** verify stands for the token verifier: `t-<org>-<id>` verifies as token <id> of <org>; anything else is refused. */
const verify = async (token: string) => {
  const m = /^t-(\w+)-(\w+)$/.exec(token);
  if (!m) throw new Error("bad token");
  return { organization: m[1], tokenId: m[2] };
};
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function app(limiter: ReturnType<typeof createRateLimiter>, more: Omit<RateLimitPluginOptions, "perOrganization"> = {}) {
  const a = Fastify();
  await a.register(rateLimitPlugin, { perOrganization: limiter, ...more });
  a.get("/v3/agents", async () => ({ agents: [] }));
  a.get("/healthz", async () => ({ status: "serving" }));
  return a;
}

describe("the gateway's rate limit", () => {
  it("answers 429 with a Status body and Retry-After past the limit, counting requests without a token per address", async () => {
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
    // An organization a header claims does not get an allowance of its own (nor spend one): the address counts.
    const claimed = await a.inject({ url: "/v3/agents", headers: { "grpc-metadata-x-raptorflow-organization": "globex" } });
    expect(claimed.statusCode).toBe(429);
    // Another address has its own allowance; health checks are never limited.
    expect((await a.inject({ url: "/v3/agents", remoteAddress: "10.0.0.2" })).statusCode).toBe(200);
    expect((await a.inject({ url: "/healthz" })).statusCode).toBe(200);
    await a.close();
  });

  it("counts a verified token's requests against its organization, from any address, and a refused token against its address", async () => {
    const a = await app(createRateLimiter(createMemoryKeyValueStore(), { limit: 2, windowMs: 60_000 }), { verify });
    expect((await a.inject({ url: "/v3/agents", headers: bearer("t-acme-1"), remoteAddress: "10.0.0.1" })).statusCode).toBe(200);
    expect((await a.inject({ url: "/v3/agents", headers: bearer("t-acme-2"), remoteAddress: "10.0.0.2" })).statusCode).toBe(200);
    const third = await a.inject({ url: "/v3/agents", headers: bearer("t-acme-3"), remoteAddress: "10.0.0.3" });
    expect(third.statusCode).toBe(429);
    // Another organization, and a forged token (counted by its address), are not held back by acme's use.
    expect((await a.inject({ url: "/v3/agents", headers: bearer("t-globex-1"), remoteAddress: "10.0.0.3" })).statusCode).toBe(200);
    expect((await a.inject({ url: "/v3/agents", headers: bearer("forged"), remoteAddress: "10.0.0.3" })).statusCode).toBe(200);
    await a.close();
  });

  it("limits each access token on its own, within its organization's allowance, showing the tighter limit's headers", async () => {
    const kv = createMemoryKeyValueStore();
    const a = await app(createRateLimiter(kv, { limit: 100, windowMs: 60_000 }), { verify, perToken: createRateLimiter(kv, { limit: 2, windowMs: 60_000 }) });
    const first = await a.inject({ url: "/v3/agents", headers: bearer("t-acme-runaway") });
    expect(first.statusCode).toBe(200);
    expect(first.headers["ratelimit-limit"]).toBe("2");
    expect(first.headers["ratelimit-remaining"]).toBe("1");
    await a.inject({ url: "/v3/agents", headers: bearer("t-acme-runaway") });
    const refused = await a.inject({ url: "/v3/agents", headers: bearer("t-acme-runaway") });
    expect(refused.statusCode).toBe(429);
    expect(Number(refused.headers["retry-after"])).toBeGreaterThan(0);
    expect(refused.json()).toMatchObject({ code: 8, message: expect.stringContaining("rate limit of 2") });
    // The organization's other tokens go on.
    const other = await a.inject({ url: "/v3/agents", headers: bearer("t-acme-other") });
    expect(other.statusCode).toBe(200);
    expect(other.headers["ratelimit-limit"]).toBe("2");
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

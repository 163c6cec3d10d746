import { createRouterTransport } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { IdentityService } from "../../gen/raptorflow/identity/v1/identity_pb.js";
import { createMemoryKeyValueStore } from "../../platform/kv/memory-kv-store.js";
import { createRateLimiter, type RateLimiter } from "../../platform/kv/rate-limiter.js";
import { createGatewayApp } from "./gateway-app.js";

/** A fake identity service behind the gateway: every sign-in and refresh succeeds. */
const identity = createRouterTransport(({ service }) =>
  service(IdentityService, {
    createToken: () => ({ accessToken: "a", refreshToken: "r" }),
    refreshToken: () => ({ accessToken: "a2", refreshToken: "r2" }),
    revokeToken: () => ({}),
    getCurrentPrincipal: () => ({ subject: "users/1", organization: "organizations/acme", roles: ["viewer"] }),
  }),
);

/** recording wraps a limiter and records the keys it counts. */
function recording(limiter: RateLimiter, keys: string[]): RateLimiter {
  return { hit: (key) => (keys.push(key), limiter.hit(key)) };
}

const apps: Awaited<ReturnType<typeof createGatewayApp>>[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

async function gateway(perAccount: number, perAddress: number, keys: string[] = []) {
  const kv = createMemoryKeyValueStore();
  const app = await createGatewayApp({
    services: [{ service: IdentityService, transport: identity }],
    timeoutMs: 5_000,
    credentialRateLimit: {
      methods: [IdentityService.method.createToken, IdentityService.method.refreshToken, IdentityService.method.revokeToken],
      signIns: [IdentityService.method.createToken],
      perAccount: recording(createRateLimiter(kv, { limit: perAccount, windowMs: 900_000 }), keys),
      perAddress: recording(createRateLimiter(kv, { limit: perAddress, windowMs: 900_000 }), keys),
      accountOf: (body) => (body as { password?: { email?: string } }).password?.email,
    },
  });
  apps.push(app);
  return app;
}

const signIn = (email: string) => ({ organization: "organizations/acme", password: { email, password: "guess" } });

describe("the token routes' stricter rate limit", () => {
  it("limits sign-ins per address and email: 429 with Retry-After, a Status body and RateLimit headers; other emails and addresses go on", async () => {
    const keys: string[] = [];
    const app = await gateway(3, 100, keys);
    const post = (email: string, remoteAddress = "203.0.113.7") => app.inject({ method: "POST", url: "/v3/tokens", payload: signIn(email), remoteAddress });
    for (let i = 0; i < 3; i++) {
      const ok = await post("Victim@Example.com");
      expect(ok.statusCode).toBe(200);
      expect(ok.headers["ratelimit-limit"]).toBe("3");
      expect(ok.headers["ratelimit-remaining"]).toBe(String(2 - i));
    }
    // The email's case and spacing do not make it another account.
    const refused = await post(" victim@example.com");
    expect(refused.statusCode).toBe(429);
    expect(Number(refused.headers["retry-after"])).toBeGreaterThan(800);
    expect(refused.headers["ratelimit-remaining"]).toBe("0");
    expect(refused.json()).toMatchObject({ code: 8, message: expect.stringMatching(/^limit of 3 sign-in attempts exceeded; retry in \d+ s$/) });
    expect((await post("someone.else@example.com")).statusCode).toBe(200);
    expect((await post("victim@example.com", "198.51.100.9")).statusCode).toBe(200);
    // The counters are keyed by a digest of the email, never the email itself.
    expect(keys.some((k) => k.includes("example.com") || k.includes("victim"))).toBe(false);
  });

  it("limits every token call per address, refreshes and sign-outs included, through REST and Connect alike; other routes are not counted", async () => {
    const app = await gateway(100, 3);
    const from = { remoteAddress: "192.0.2.1" };
    expect((await app.inject({ method: "POST", url: "/v3/tokens:refresh", payload: { refreshToken: "r".repeat(43) }, ...from })).statusCode).toBe(200);
    expect((await app.inject({ method: "POST", url: "/v3/tokens:revoke", payload: { refreshToken: "r".repeat(43) }, ...from })).statusCode).toBe(200);
    const connect = await app.inject({
      method: "POST",
      url: "/raptorflow.identity.v1.IdentityService/RefreshToken",
      headers: { "content-type": "application/json" },
      payload: { refreshToken: "r".repeat(43) },
      ...from,
    });
    expect(connect.statusCode).toBe(200);
    const fourth = await app.inject({ method: "POST", url: "/v3/tokens:refresh", payload: { refreshToken: "r".repeat(43) }, ...from });
    expect(fourth.statusCode).toBe(429);
    expect(fourth.headers["retry-after"]).toBeDefined();
    const me = await app.inject({ method: "GET", url: "/v3/me", ...from });
    expect(me.statusCode).toBe(200);
    expect(me.headers["ratelimit-limit"]).toBeUndefined();
  });

  it("counts Connect sign-ins, whose bodies it does not read, against one allowance per address", async () => {
    const app = await gateway(2, 100);
    const connect = (email: string) =>
      app.inject({
        method: "POST",
        url: "/raptorflow.identity.v1.IdentityService/CreateToken",
        headers: { "content-type": "application/json" },
        payload: signIn(email),
        remoteAddress: "192.0.2.50",
      });
    expect((await connect("a@example.com")).statusCode).toBe(200);
    expect((await connect("b@example.com")).statusCode).toBe(200);
    const third = await connect("c@example.com");
    expect(third.statusCode).toBe(429);
  });
});

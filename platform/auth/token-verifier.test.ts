import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, UnsecuredJWT, type CryptoKey, type JSONWebKeySet, type JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTokenVerifier } from "./token-verifier.js";
import { parseJwks } from "./auth-from-env.js";

const issuer = "raptorflow";
const audience = "raptorflow";

/** TestKey is a signing key made with jose alone, as any issuer could. */
interface TestKey {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

async function testKey(): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA");
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { kid, privateKey, publicJwk: { ...jwk, kid, alg: "EdDSA", use: "sig" } };
}

/** sign makes an access token; `header` and `claims` override the good defaults. */
function sign(key: TestKey, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ org: "acme", role: "viewer", ...claims })
    .setProtectedHeader({ alg: "EdDSA", kid: key.kid, typ: "at+jwt", ...header })
    .setSubject("users/0193")
    .setIssuer(issuer)
    .setAudience(audience)
    .setIssuedAt()
    .setExpirationTime("5m")
    .setJti("0193-jti")
    .sign(key.privateKey);
}

async function failure(op: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await op;
  } catch (e) {
    const err = ConnectError.from(e);
    return { code: err.code, message: err.rawMessage };
  }
  throw new Error("expected a failure");
}

const jwks = (...keys: TestKey[]): JSONWebKeySet => ({ keys: keys.map((k) => k.publicJwk) });

let a: TestKey;
let b: TestKey;
beforeAll(async () => {
  [a, b] = [await testKey(), await testKey()];
});

describe("createTokenVerifier", () => {
  it("returns the principal of a good token", async () => {
    const v = createTokenVerifier({ keys: jwks(a), issuer, audience });
    expect(await v.verify(await sign(a))).toMatchObject({ subject: "users/0193", organization: "acme", role: "viewer", tokenId: "0193-jti" });
  });

  it("refuses tokens that are not access tokens or carry no valid organization or role", async () => {
    const v = createTokenVerifier({ keys: jwks(a), issuer, audience });
    expect((await failure(v.verify(await sign(a, {}, { typ: "JWT" })))).message).toContain('"typ"');
    expect(await failure(v.verify(await sign(a, { org: "Not An Org!" })))).toEqual({ code: Code.Unauthenticated, message: "the access token carries no valid organization (org)" });
    expect(await failure(v.verify(await sign(a, { role: "root" })))).toEqual({ code: Code.Unauthenticated, message: "the access token carries no valid role" });
    expect(await failure(v.verify(await sign(b)))).toEqual({ code: Code.Unauthenticated, message: "the access token is signed with an unknown key" });
    expect(await failure(v.verify("abc.def"))).toEqual({ code: Code.Unauthenticated, message: "the access token is malformed" });
    const none = new UnsecuredJWT({ org: "acme", role: "admin" }).setSubject("s").setIssuer(issuer).setAudience(audience).setIssuedAt().setExpirationTime("5m").setJti("j").encode();
    expect(await failure(v.verify(none))).toEqual({ code: Code.Unauthenticated, message: "the access token's signing algorithm is not accepted" });
    // A good token with one byte of its signature changed.
    const good = await sign(a);
    const tampered = good.slice(0, -2) + (good.at(-2) === "A" ? "B" : "A") + good.at(-1);
    expect((await failure(v.verify(tampered))).code).toBe(Code.Unauthenticated);
  });

  it("insists on exactly one key source", () => {
    expect(() => createTokenVerifier({ issuer, audience })).toThrow(/exactly one of keys, jwksUrl or loadKeys/);
    expect(() => createTokenVerifier({ keys: jwks(a), jwksUrl: "http://x/", issuer, audience })).toThrow(/exactly one/);
  });

  describe("over a JWKS URL", () => {
    let server: Server;
    let served: JSONWebKeySet;
    let fetches = 0;
    let url: string;
    beforeAll(async () => {
      served = jwks(a);
      server = createServer((_req, res) => {
        fetches++;
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify(served));
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    it("fetches the keys once, and a key rotated in later is found after the cooldown", async () => {
      const v = createTokenVerifier({ jwksUrl: url, issuer, audience });
      await v.verify(await sign(a));
      await v.verify(await sign(a));
      expect(fetches).toBe(1);
      served = jwks(b, a);
      // Within jose's 30 s cooldown an unknown kid is refused without hammering the endpoint …
      expect((await failure(v.verify(await sign(b)))).message).toBe("the access token is signed with an unknown key");
      // … and a fresh verifier (or this one after the cooldown) finds it.
      await expect(createTokenVerifier({ jwksUrl: url, issuer, audience }).verify(await sign(b))).resolves.toBeTruthy();
    });

    it("a JWKS endpoint that does not answer is UNAVAILABLE, not a bad token", async () => {
      const v = createTokenVerifier({ jwksUrl: "http://127.0.0.1:1/jwks.json", issuer, audience });
      const f = await failure(v.verify(await sign(a)));
      expect(f.code).toBe(Code.Unavailable);
    });
  });

  describe("over a key loader (the identity service over gRPC)", () => {
    it("loads once, reloads for an unknown kid (not more than once per cooldown), and keeps its keys when the source fails", async () => {
      let served = jwks(a);
      let loads = 0;
      let down = false;
      const loadKeys = async () => {
        loads++;
        if (down) throw new Error("identity is down");
        return served;
      };
      const v = createTokenVerifier({ loadKeys, issuer, audience });
      await v.verify(await sign(a));
      await v.verify(await sign(a));
      expect(loads).toBe(1);
      served = jwks(b, a);
      // Just loaded: an unknown kid is refused without another load.
      expect((await failure(v.verify(await sign(b)))).message).toBe("the access token is signed with an unknown key");
      expect(loads).toBe(1);
      // With the source down, the keys in hand keep working.
      down = true;
      const v2 = createTokenVerifier({ loadKeys, issuer, audience, cacheMaxAgeMs: 0 });
      expect((await failure(v2.verify(await sign(a)))).code).toBe(Code.Unavailable);
      down = false;
      await v2.verify(await sign(b));
      down = true;
      await expect(v2.verify(await sign(b))).resolves.toBeTruthy();
    });
  });
});

describe("parseJwks", () => {
  it("takes a public JWK Set and refuses private keys and malformed sets", () => {
    expect(parseJwks(JSON.stringify(jwks(a)), "AUTH_JWKS").keys).toHaveLength(1);
    expect(() => parseJwks(JSON.stringify({ keys: [{ ...a.publicJwk, d: "secret" }] }), "AUTH_JWKS")).toThrow(/AUTH_JWKS holds a private key/);
    expect(() => parseJwks("{", "AUTH_JWKS")).toThrow(/AUTH_JWKS must be a JWK Set/);
    expect(() => parseJwks('{"keys": []}', "AUTH_JWKS")).toThrow(/at least one key/);
  });
});

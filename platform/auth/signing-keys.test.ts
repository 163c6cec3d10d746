import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { decodeProtectedHeader, generateSecret, SignJWT, UnsecuredJWT, type JWK } from "jose";
import { afterAll, describe, expect, it } from "vitest";
import { createTokenVerifier } from "./token-verifier.js";
import { createAccessTokenIssuer, parseDuration } from "./access-tokens.js";
import { generateSigningKey, loadSigningKeys, localKeyPath, parseSigningKeys, type SigningKeys } from "./signing-keys.js";

const issuer = "raptorflow";
const audience = "raptorflow";
const claims = { subject: "users/0193", organization: "acme", role: "analyst" } as const;

/** codeAndMessage runs a verification that should fail and returns its code and message. */
async function failure(op: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await op;
  } catch (e) {
    const err = ConnectError.from(e);
    return { code: err.code, message: err.rawMessage };
  }
  throw new Error("expected a failure");
}

const setOf = async (...keys: JWK[]): Promise<SigningKeys> => parseSigningKeys(JSON.stringify({ keys }), "test");
const publicOnly = ({ d: _, ...rest }: JWK): JWK => rest;

const dirs: string[] = [];
const scratch = (): string => {
  const d = mkdtempSync(join(tmpdir(), "raptorflow-keys-"));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("signing keys", () => {
  it.each(["EdDSA", "ES256"] as const)("generates %s keys with a thumbprint kid; the JWKS carries only public members", async (alg) => {
    const jwk = await generateSigningKey(alg);
    expect(jwk).toMatchObject({ alg, use: "sig", kid: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), d: expect.any(String) });
    const keys = await setOf(jwk);
    expect(keys.active).toMatchObject({ kid: jwk.kid, alg });
    expect(keys.publicJwks.keys).toHaveLength(1);
    for (const k of keys.publicJwks.keys) {
      expect(k).not.toHaveProperty("d");
      expect(Object.keys(k).every((m) => ["kty", "crv", "x", "y", "kid", "alg", "use"].includes(m))).toBe(true);
    }
  });

  it("signs with the first key unless `active` names another, and publishes all of them", async () => {
    const [a, b] = [await generateSigningKey(), await generateSigningKey("ES256")];
    expect((await setOf(a, b)).active.kid).toBe(a.kid);
    const chosen = await parseSigningKeys(JSON.stringify({ keys: [a, b], active: b.kid }), "test");
    expect(chosen.active.kid).toBe(b.kid);
    expect(chosen.publicJwks.keys.map((k) => k.kid)).toEqual([a.kid, b.kid]);
    // A retired key may be public only; the active one must be able to sign.
    expect((await setOf(a, publicOnly(b))).active.kid).toBe(a.kid);
    await expect(setOf(publicOnly(a), b)).rejects.toThrow(/active key .* has no private part/);
  });

  it("refuses weak, foreign, mismatched and malformed key sets, naming the source", async () => {
    const a = await generateSigningKey();
    const b = await generateSigningKey();
    const hmac = { kty: "oct", k: "c2VjcmV0", alg: "HS256", kid: "h" };
    await expect(parseSigningKeys("not json", "IDENTITY_SIGNING_KEYS")).rejects.toThrow(/^IDENTITY_SIGNING_KEYS: not JSON/);
    await expect(parseSigningKeys(JSON.stringify({ keys: [] }), "x")).rejects.toThrow(/at least one key/);
    await expect(setOf(hmac as JWK)).rejects.toThrow(/not an Ed25519 \(EdDSA\) or P-256 \(ES256\) signing key/);
    await expect(setOf({ ...a, alg: "ES256" })).rejects.toThrow(/not an Ed25519/);
    await expect(setOf(a, { ...b, kid: a.kid })).rejects.toThrow(/two keys have the kid/);
    await expect(parseSigningKeys(JSON.stringify({ keys: [a], active: "nope" }), "x")).rejects.toThrow(/"active" names the kid "nope"/);
    // b's private part with a's public part would sign tokens nobody can verify (Node refuses it on import; the probe signature catches the rest).
    await expect(setOf({ ...a, d: b.d })).rejects.toThrow(/cannot be imported|does not match its public part/);
  });

  it("refuses to make up a key in production", async () => {
    await expect(loadSigningKeys({ NODE_ENV: "production", RAPTORFLOW_DATA_DIR: scratch() })).rejects.toThrow(/IDENTITY_SIGNING_KEYS .* is required when NODE_ENV=production/);
  });

  it("reads IDENTITY_SIGNING_KEYS, then IDENTITY_SIGNING_KEYS_FILE", async () => {
    const jwk = await generateSigningKey();
    const json = JSON.stringify({ keys: [jwk] });
    expect((await loadSigningKeys({ IDENTITY_SIGNING_KEYS: json, NODE_ENV: "production" })).active.kid).toBe(jwk.kid);
    const file = join(scratch(), "keys.json");
    writeFileSync(file, json);
    const fromFile = await loadSigningKeys({ IDENTITY_SIGNING_KEYS_FILE: file, NODE_ENV: "production" });
    expect(fromFile.active.kid).toBe(jwk.kid);
    expect(fromFile.source).toContain(file);
    await expect(loadSigningKeys({ IDENTITY_SIGNING_KEYS_FILE: join(file, "nope") })).rejects.toThrow(/IDENTITY_SIGNING_KEYS_FILE: cannot read/);
  });

  it("embedded default: creates the local key file once, owner-only, and every process that starts at once gets the same key", async () => {
    const env = { RAPTORFLOW_DATA_DIR: scratch() };
    const loaded = await Promise.all([loadSigningKeys(env), loadSigningKeys(env), loadSigningKeys(env)]);
    expect(new Set(loaded.map((k) => k.active.kid)).size).toBe(1);
    const path = localKeyPath(env);
    expect(path).toBe(join(env.RAPTORFLOW_DATA_DIR, "identity", "keys.json"));
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(path, "utf8")).keys[0].d).toEqual(expect.any(String));
    expect((await loadSigningKeys(env)).active.kid).toBe(loaded[0].active.kid);
  });
});

describe("access tokens across a key rotation", () => {
  it("carry kid, typ and the claims; verify with the JWKS", async () => {
    const keys = await setOf(await generateSigningKey());
    const issued = await createAccessTokenIssuer({ keys, issuer, audience, ttlMs: 15 * 60_000 }).issue(claims);
    expect(decodeProtectedHeader(issued.token)).toEqual({ alg: "EdDSA", kid: keys.active.kid, typ: "at+jwt" });
    const p = await createTokenVerifier({ keys: keys.publicJwks, issuer, audience }).verify(issued.token);
    expect(p).toEqual({ subject: claims.subject, organization: "acme", role: "analyst", tokenId: issued.tokenId, expireTime: issued.expireTime });
    expect(issued.expireTime.getTime() - Date.now()).toBeGreaterThan(14 * 60_000);
  });

  it("a token signed with the old key verifies while the old key is published, and not once it is removed", async () => {
    const oldKey = await generateSigningKey();
    const newKey = await generateSigningKey();
    const before = await setOf(oldKey);
    const oldToken = (await createAccessTokenIssuer({ keys: before, issuer, audience, ttlMs: 60_000 }).issue(claims)).token;
    // Rotation: the new key signs, the old one stays published (public part only) until its tokens have expired.
    const during = await setOf(newKey, publicOnly(oldKey));
    const newToken = (await createAccessTokenIssuer({ keys: during, issuer, audience, ttlMs: 60_000 }).issue(claims)).token;
    expect(decodeProtectedHeader(newToken).kid).toBe(newKey.kid);
    const verifyDuring = createTokenVerifier({ keys: during.publicJwks, issuer, audience });
    await expect(verifyDuring.verify(oldToken)).resolves.toMatchObject({ organization: "acme" });
    await expect(verifyDuring.verify(newToken)).resolves.toMatchObject({ organization: "acme" });
    // After the old tokens' lifetime the old key is removed: its tokens no longer verify.
    const after = await setOf(newKey);
    const verifyAfter = createTokenVerifier({ keys: after.publicJwks, issuer, audience });
    expect(await failure(verifyAfter.verify(oldToken))).toEqual({ code: Code.Unauthenticated, message: "the access token is signed with an unknown key" });
    await expect(verifyAfter.verify(newToken)).resolves.toBeTruthy();
  });

  it("refuses expired tokens, another audience or issuer, unsigned (alg none) and HMAC tokens; never echoing the token", async () => {
    const keys = await setOf(await generateSigningKey());
    let t = Date.now();
    const now = () => new Date(t);
    const token = (await createAccessTokenIssuer({ keys, issuer, audience, ttlMs: 60_000, now }).issue(claims)).token;
    const verifier = createTokenVerifier({ keys: keys.publicJwks, issuer, audience, now });
    await expect(verifier.verify(token)).resolves.toBeTruthy();
    t += 60_000 + 6_000; // past exp and the 5 s tolerance
    const expired = await failure(verifier.verify(token));
    expect(expired).toEqual({ code: Code.Unauthenticated, message: "the access token has expired; refresh it or sign in again" });

    const fresh = (await createAccessTokenIssuer({ keys, issuer, audience: "another-api", ttlMs: 60_000 }).issue(claims)).token;
    const aud = await failure(createTokenVerifier({ keys: keys.publicJwks, issuer, audience }).verify(fresh));
    expect(aud.code).toBe(Code.Unauthenticated);
    expect(aud.message).toContain('"aud"');
    const foreign = (await createAccessTokenIssuer({ keys, issuer: "someone-else", audience, ttlMs: 60_000 }).issue(claims)).token;
    expect((await failure(createTokenVerifier({ keys: keys.publicJwks, issuer, audience }).verify(foreign))).message).toContain('"iss"');

    const strict = createTokenVerifier({ keys: keys.publicJwks, issuer, audience });
    const none = new UnsecuredJWT({ org: "acme", role: "admin" }).setSubject("users/x").setIssuer(issuer).setAudience(audience).setIssuedAt().setExpirationTime("5m").setJti("j").encode();
    const noneFailure = await failure(strict.verify(none));
    expect(noneFailure.code).toBe(Code.Unauthenticated);
    // HS256 "signed" with a secret: refused for its algorithm, whatever key it names.
    const hmac = await new SignJWT({ org: "acme", role: "admin" })
      .setProtectedHeader({ alg: "HS256", kid: keys.active.kid, typ: "at+jwt" })
      .setSubject("users/x")
      .setIssuer(issuer)
      .setAudience(audience)
      .setIssuedAt()
      .setExpirationTime("5m")
      .setJti("j")
      .sign(await generateSecret("HS256"));
    expect(await failure(strict.verify(hmac))).toEqual({ code: Code.Unauthenticated, message: "the access token's signing algorithm is not accepted" });
    for (const f of [expired, aud, noneFailure]) {
      expect(f.message).not.toContain(token);
      expect(f.message).not.toContain(token.split(".")[1]);
    }
  });

  it("reads durations for token lifetimes", () => {
    expect(parseDuration("15m")).toBe(900_000);
    expect(parseDuration("900")).toBe(900_000);
    expect(parseDuration("1h")).toBe(3_600_000);
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("30d")).toBe(30 * 86_400_000);
    expect(parseDuration("15 minutes")).toBeUndefined();
    expect(parseDuration("-1m")).toBeUndefined();
  });
});

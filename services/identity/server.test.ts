import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { toJson, type DescMessage, type DescMethodUnary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { decodeJwt, decodeProtectedHeader, type JSONWebKeySet } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { IdentityService, JsonWebKeySetSchema, ListApiKeysResponseSchema } from "../../gen/raptorflow/identity/v1/identity_pb.js";
import type { MeshServer } from "../../mesh/grpc-server.js";
import { tokenVerifierFromEnv } from "../../platform/auth/auth-from-env.js";
import { createTokenVerifier } from "../../platform/auth/token-verifier.js";
import type { Database } from "../../platform/db/database.js";
import { plainUnary } from "../../test/support/grpc-client.js";
import { createIdentityServer, identitySettings } from "./server.js";
import { generateSigningKey, parseSigningKeys } from "../../platform/auth/signing-keys.js";
import { createMemoryIdentityStore, type IdentityStore } from "./store/identity-store.js";
import { openIdentityDatabase } from "./store/open-store.js";
import { createPasswordHasher } from "./store/password-hash.js";
import { createPgIdentityStore } from "./store/pg-identity-store.js";

// Cheap scrypt parameters: these tests are about tokens, not about the cost of a hash.
const passwordHasher = createPasswordHasher({ cost: 10 });
const password = "correct horse battery staple";

/** Opened is a store under test and how to clean it up. */
interface Opened {
  readonly store: IdentityStore;
  cleanup(): Promise<void>;
}

/** grpcFailure runs a call that should fail and returns its gRPC status code and message. */
async function grpcFailure(op: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await op;
  } catch (e) {
    const err = e as grpc.ServiceError;
    return { code: err.code, message: err.details };
  }
  throw new Error("expected the call to fail");
}

const bearer = (token: string): grpc.Metadata => {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  return md;
};

/** identityServiceSuite runs the identity service's behaviour over real gRPC on one store. */
function identityServiceSuite(name: string, open: () => Promise<Opened>): void {
  describe(`the identity service over gRPC: ${name}`, () => {
    let opened: Opened;
    let server: MeshServer;
    let address: string;
    let org: string;
    let otherOrg: string;
    let email: string;
    let viewerEmail: string;
    let jwks: JSONWebKeySet;

    const call = <I extends DescMessage, O extends DescMessage>(method: DescMethodUnary<I, O>, input: MessageInitShape<I>, metadata?: grpc.Metadata): Promise<MessageShape<O>> =>
      plainUnary(address, method, input, { metadata }).then((r) => r.message);
    const signIn = (e = email, organization = `organizations/${org}`, pw = password) =>
      call(IdentityService.method.createToken, { organization, credential: { case: "password", value: { email: e, password: pw } } });

    beforeAll(async () => {
      opened = await open();
      const s = opened.store;
      const [acme, globex] = [await s.createOrganization({ displayName: "Acme" }), await s.createOrganization({ displayName: "Globex" })];
      [org, otherOrg] = [acme.id, globex.id];
      email = `admin-${acme.id.slice(-8)}@example.com`;
      viewerEmail = `viewer-${acme.id.slice(-8)}@example.com`;
      const admin = await s.createUser({ email, password });
      const viewer = await s.createUser({ email: viewerEmail, password });
      const otherAdmin = await s.createUser({ email: `admin-${globex.id.slice(-8)}@example.com`, password });
      await s.addMembership({ organizationId: org, userId: admin.id, role: "admin" });
      await s.addMembership({ organizationId: org, userId: viewer.id, role: "viewer" });
      await s.addMembership({ organizationId: otherOrg, userId: otherAdmin.id, role: "admin" });
      const keys = await parseSigningKeys(JSON.stringify({ keys: [await generateSigningKey()] }), "test");
      server = createIdentityServer({ store: s, keys, settings: identitySettings({}) });
      address = `127.0.0.1:${await server.listen(0, "127.0.0.1")}`;
      server.setServing(true);
      jwks = toJson(JsonWebKeySetSchema, await call(IdentityService.method.getJsonWebKeySet, {})) as unknown as JSONWebKeySet;
    });
    afterAll(async () => {
      await server?.shutdown();
      await opened?.cleanup();
    });

    const verifier = () => createTokenVerifier({ keys: jwks, issuer: "raptorflow", audience: "raptorflow" });

    it("serves its health and the public keys only: no private member", async () => {
      const health = await plainUnary(address, Health.method.check, { service: "raptorflow.identity.v1.IdentityService" });
      expect(health.message.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
      expect(jwks.keys).toHaveLength(1);
      for (const k of jwks.keys) {
        expect(k).not.toHaveProperty("d");
        expect(k).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig", kid: expect.any(String), x: expect.any(String) });
      }
    });

    it("signs in with a password: a short-lived access token that verifies against the JWKS, and a refresh token", async () => {
      const t = await signIn();
      expect(t.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(decodeProtectedHeader(t.accessToken)).toMatchObject({ alg: "EdDSA", kid: jwks.keys[0].kid, typ: "at+jwt" });
      const claims = decodeJwt(t.accessToken);
      expect(Object.keys(claims).sort()).toEqual(["aud", "exp", "iat", "iss", "jti", "org", "role", "sub"]);
      expect(claims.exp! - claims.iat!).toBe(15 * 60);
      const p = await verifier().verify(t.accessToken);
      expect(p).toMatchObject({ organization: org, role: "admin", subject: expect.stringMatching(/^users\/[0-9a-f-]{36}$/) });
      expect(Number(t.expireTime!.seconds)).toBe(claims.exp);
      // The email's case does not matter.
      await expect(signIn(email.toUpperCase())).resolves.toBeTruthy();
    });

    it("a wrong password, an unknown email and a foreign organization get one answer, UNAUTHENTICATED, that tells none of them apart", async () => {
      const answers = await Promise.all([
        grpcFailure(signIn(email, `organizations/${org}`, "wrong password")),
        grpcFailure(signIn("nobody@example.com")),
        grpcFailure(signIn(email, `organizations/${otherOrg}`)),
        grpcFailure(signIn(email, "organizations/acme")),
      ]);
      for (const a of answers) expect(a).toEqual({ code: Code.Unauthenticated, message: "sign-in failed: the email, the password or the organization is wrong" });
    });

    it("refresh rotates: each refresh token works once and gives the next one", async () => {
      const first = await signIn();
      const second = await call(IdentityService.method.refreshToken, { refreshToken: first.refreshToken });
      expect(second.refreshToken).not.toBe(first.refreshToken);
      expect(second.accessToken).not.toBe(first.accessToken);
      expect(await verifier().verify(second.accessToken)).toMatchObject({ organization: org, role: "admin" });
      const third = await call(IdentityService.method.refreshToken, { refreshToken: second.refreshToken });
      expect(third.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    });

    it("reusing a used refresh token revokes the whole family: the newer refresh token stops working too", async () => {
      const first = await signIn();
      const second = await call(IdentityService.method.refreshToken, { refreshToken: first.refreshToken });
      const reuse = await grpcFailure(call(IdentityService.method.refreshToken, { refreshToken: first.refreshToken }));
      expect(reuse.code).toBe(Code.Unauthenticated);
      expect(reuse.message).toMatch(/already used, so it may have been stolen: every refresh token of this sign-in is now revoked/);
      expect(reuse.message).not.toContain(first.refreshToken);
      const newer = await grpcFailure(call(IdentityService.method.refreshToken, { refreshToken: second.refreshToken }));
      expect(newer).toEqual({ code: Code.Unauthenticated, message: expect.stringContaining("revoked") });
      // Another sign-in of the same user is another family, untouched.
      const other = await signIn();
      await expect(call(IdentityService.method.refreshToken, { refreshToken: other.refreshToken })).resolves.toBeTruthy();
    });

    it("logout revokes the refresh token's family; revoking an unknown token is not an error", async () => {
      const t = await signIn();
      await call(IdentityService.method.revokeToken, { refreshToken: t.refreshToken });
      const after = await grpcFailure(call(IdentityService.method.refreshToken, { refreshToken: t.refreshToken }));
      expect(after).toEqual({ code: Code.Unauthenticated, message: expect.stringContaining("revoked") });
      await expect(call(IdentityService.method.revokeToken, { refreshToken: "x".repeat(43) })).resolves.toBeTruthy();
      expect((await grpcFailure(call(IdentityService.method.refreshToken, { refreshToken: "y".repeat(43) }))).message).toBe("the refresh token is not valid; sign in again");
    });

    it("tells the caller who it is, from its access token alone", async () => {
      const t = await signIn(viewerEmail);
      const me = await call(IdentityService.method.getCurrentPrincipal, {}, bearer(t.accessToken));
      expect(me).toMatchObject({ organization: `organizations/${org}`, roles: ["viewer"], subject: expect.stringMatching(/^users\//) });
      expect((await grpcFailure(call(IdentityService.method.getCurrentPrincipal, {}))).code).toBe(Code.Unauthenticated);
      const bad = await grpcFailure(call(IdentityService.method.getCurrentPrincipal, {}, bearer(`${t.accessToken.slice(0, -4)}AAAA`)));
      expect(bad.code).toBe(Code.Unauthenticated);
      expect(bad.message).not.toContain(t.accessToken.split(".")[1]);
    });

    it("API keys: an admin creates one, shown once; it exchanges for an access token until it is revoked", async () => {
      const admin = bearer((await signIn()).accessToken);
      const created = await call(IdentityService.method.createApiKey, { parent: `organizations/${org}`, apiKey: { displayName: "nightly export", role: "service" } }, admin);
      expect(created.key).toMatch(/^rfk_[a-z0-9]{8}_[A-Za-z0-9_-]{43}$/);
      expect(created).toMatchObject({ name: expect.stringMatching(new RegExp(`^organizations/${org}/apiKeys/[0-9a-f-]{36}$`)), role: "service", displayName: "nightly export", prefix: created.key.slice(4, 12) });
      // Listed without its secret, ever again.
      const list = await call(IdentityService.method.listApiKeys, { parent: `organizations/${org}` }, admin);
      const listed = list.apiKeys.find((k) => k.name === created.name)!;
      expect(listed.key).toBe("");
      expect(JSON.stringify(toJson(ListApiKeysResponseSchema, list))).not.toContain(created.key.slice(13));

      const exchanged = await call(IdentityService.method.createToken, { organization: `organizations/${org}`, credential: { case: "apiKey", value: created.key } });
      expect(exchanged.refreshToken).toBe("");
      expect(await verifier().verify(exchanged.accessToken)).toMatchObject({ subject: `apiKeys/${created.name.split("/").at(-1)}`, organization: org, role: "service" });
      // Not for another organization.
      const foreign = await grpcFailure(call(IdentityService.method.createToken, { organization: `organizations/${otherOrg}`, credential: { case: "apiKey", value: created.key } }));
      expect(foreign.code).toBe(Code.Unauthenticated);

      const revoked = await call(IdentityService.method.revokeApiKey, { name: created.name }, admin);
      expect(revoked.revokeTime).toBeDefined();
      const after = await grpcFailure(call(IdentityService.method.createToken, { organization: `organizations/${org}`, credential: { case: "apiKey", value: created.key } }));
      expect(after.code).toBe(Code.Unauthenticated);
      // Revoking again is not an error; the list shows it revoked.
      expect((await call(IdentityService.method.revokeApiKey, { name: created.name }, admin)).revokeTime).toBeDefined();
      const relisted = await call(IdentityService.method.listApiKeys, { parent: `organizations/${org}` }, admin);
      expect(relisted.apiKeys.find((k) => k.name === created.name)!.revokeTime).toBeDefined();
    });

    it("API keys are an admin's business, in their own organization only", async () => {
      const parent = `organizations/${org}`;
      const viewer = bearer((await signIn(viewerEmail)).accessToken);
      const outsider = bearer((await signIn(`admin-${otherOrg.slice(-8)}@example.com`, `organizations/${otherOrg}`)).accessToken);
      const apiKey = { role: "viewer" };
      expect((await grpcFailure(call(IdentityService.method.createApiKey, { parent, apiKey }))).code).toBe(Code.Unauthenticated);
      expect((await grpcFailure(call(IdentityService.method.createApiKey, { parent, apiKey }, viewer))).code).toBe(Code.PermissionDenied);
      expect((await grpcFailure(call(IdentityService.method.createApiKey, { parent, apiKey }, outsider))).code).toBe(Code.NotFound);
      expect((await grpcFailure(call(IdentityService.method.listApiKeys, { parent }, outsider))).code).toBe(Code.NotFound);
      const admin = bearer((await signIn()).accessToken);
      const key = await call(IdentityService.method.createApiKey, { parent, apiKey }, admin);
      expect((await grpcFailure(call(IdentityService.method.revokeApiKey, { name: key.name }, outsider))).code).toBe(Code.NotFound);
      expect((await grpcFailure(call(IdentityService.method.revokeApiKey, { name: `${parent}/apiKeys/0193e2d1-0000-7000-8000-000000000000` }, admin))).code).toBe(Code.NotFound);
      // The role is checked by the contract's rules before any handler runs.
      expect((await grpcFailure(call(IdentityService.method.createApiKey, { parent, apiKey: { role: "root" } }, admin))).code).toBe(Code.InvalidArgument);
    });

    it("other services verify tokens with keys fetched from it over gRPC", async () => {
      const { verifier: remote, close } = tokenVerifierFromEnv({ IDENTITY_ADDR: address });
      try {
        expect(await remote.verify((await signIn()).accessToken)).toMatchObject({ organization: org, role: "admin" });
      } finally {
        close();
      }
    });
  });
}

identityServiceSuite("in-memory store", async () => ({ store: createMemoryIdentityStore({ passwordHasher }), cleanup: async () => {} }));

identityServiceSuite("embedded PostgreSQL (PGlite)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "raptorflow-identity-svc-"));
  let db: Database | undefined;
  try {
    db = await openIdentityDatabase({ RAPTORFLOW_DATA_DIR: dir, DATABASE_URL: "" });
    await db.migrate();
  } catch (e) {
    await db?.close();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const ready = db;
  return {
    store: createPgIdentityStore(ready, { passwordHasher }),
    async cleanup() {
      await ready.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

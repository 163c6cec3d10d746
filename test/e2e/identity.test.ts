import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTokenVerifier, type TokenVerifier } from "../../platform/auth/token-verifier.js";
import { createFirstAdmin } from "../../services/identity/first-run.js";
import { openIdentityDatabase } from "../../services/identity/store/open-store.js";
import { createPgIdentityStore } from "../../services/identity/store/pg-identity-store.js";
import { startTestMesh, type TestMesh } from "../support/mesh.js";

const execFileP = promisify(execFile);
const email = "admin@acme.example";
const password = "a long and unguessable passphrase";

describe("identity through the gateway", () => {
  let dataDir: string;
  let mesh: TestMesh;
  let org: string;
  let verifier: TokenVerifier;

  beforeAll(async () => {
    // The first run (what `raptorflow init` does) before the mesh starts: the embedded database is one process's.
    dataDir = mkdtempSync(join(tmpdir(), "raptorflow-identity-e2e-"));
    const db = await openIdentityDatabase({ RAPTORFLOW_DATA_DIR: dataDir, DATABASE_URL: "" });
    try {
      await db.migrate();
      org = (await createFirstAdmin(createPgIdentityStore(db), { email, password, organizationName: "Acme" })).organization.id;
    } finally {
      await db.close();
    }
    mesh = await startTestMesh({ RAPTORFLOW_DATA_DIR: dataDir, DATABASE_URL: "" });
    verifier = createTokenVerifier({ jwksUrl: `${mesh.gatewayUrl}/.well-known/jwks.json`, issuer: "raptorflow", audience: "raptorflow" });
  }, 120_000);
  afterAll(async () => {
    await mesh?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const rest = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any; headers: Headers }> => {
    const res = await fetch(`${mesh.gatewayUrl}${path}`, {
      method,
      headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers };
  };
  const signIn = (pw = password) => rest("POST", "/v3/tokens", { organization: `organizations/${org}`, password: { email, password: pw } });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  it("GET /.well-known/jwks.json serves the public keys only", async () => {
    const { status, json } = await rest("GET", "/.well-known/jwks.json");
    expect(status).toBe(200);
    expect(json.keys.length).toBeGreaterThan(0);
    for (const k of json.keys) {
      expect(k).not.toHaveProperty("d");
      expect(k).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig" });
    }
  });

  it("POST /v3/tokens signs in; the access token verifies against the gateway's JWKS and GET /v3/me reads it", async () => {
    const { status, json, headers } = await signIn();
    expect(status).toBe(200);
    expect(Object.keys(json).sort()).toEqual(["accessToken", "expireTime", "refreshToken"]);
    expect(headers.get("ratelimit-limit")).toBe("10");
    expect(await verifier.verify(json.accessToken)).toMatchObject({ organization: org, role: "admin" });
    const me = await rest("GET", "/v3/me", undefined, bearer(json.accessToken));
    expect(me.status).toBe(200);
    expect(me.json).toMatchObject({ organization: `organizations/${org}`, roles: ["admin"], subject: expect.stringMatching(/^users\//) });
    const anonymous = await rest("GET", "/v3/me");
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toContain("Bearer");
  });

  it("a wrong password is 401 with a message that does not say whether the email exists", async () => {
    const wrong = await signIn("not the password");
    const unknown = await rest("POST", "/v3/tokens", { organization: `organizations/${org}`, password: { email: "nobody@acme.example", password } });
    for (const r of [wrong, unknown]) {
      expect(r.status).toBe(401);
      expect(r.json).toMatchObject({ code: 16, message: "sign-in failed: the email, the password or the organization is wrong" });
    }
  });

  it("refresh rotates; reusing a used refresh token revokes the family, the newer token included; sign-out revokes", async () => {
    const first = (await signIn()).json;
    const second = await rest("POST", "/v3/tokens:refresh", { refreshToken: first.refreshToken });
    expect(second.status).toBe(200);
    expect(second.json.refreshToken).not.toBe(first.refreshToken);
    const reuse = await rest("POST", "/v3/tokens:refresh", { refreshToken: first.refreshToken });
    expect(reuse.status).toBe(401);
    expect(reuse.json.message).toContain("already used");
    expect((await rest("POST", "/v3/tokens:refresh", { refreshToken: second.json.refreshToken })).status).toBe(401);

    const session = (await signIn()).json;
    expect((await rest("POST", "/v3/tokens:revoke", { refreshToken: session.refreshToken })).status).toBe(200);
    expect((await rest("POST", "/v3/tokens:refresh", { refreshToken: session.refreshToken })).status).toBe(401);
  });

  it("an admin creates an API key (201, shown once), scripts exchange it at POST /v3/tokens, and revoking ends that", async () => {
    const admin = bearer((await signIn()).json.accessToken);
    const created = await rest("POST", `/v3/organizations/${org}/apiKeys`, { displayName: "ci", role: "service" }, admin);
    expect(created.status).toBe(201);
    expect(created.json.key).toMatch(/^rfk_/);
    const listed = await rest("GET", `/v3/organizations/${org}/apiKeys`, undefined, admin);
    expect(listed.json.apiKeys.map((k: { name: string }) => k.name)).toContain(created.json.name);
    expect(JSON.stringify(listed.json)).not.toContain(created.json.key);
    const exchanged = await rest("POST", "/v3/tokens", { organization: `organizations/${org}`, apiKey: created.json.key });
    expect(exchanged.status).toBe(200);
    expect(exchanged.json.refreshToken).toBeUndefined();
    expect(await verifier.verify(exchanged.json.accessToken)).toMatchObject({ role: "service", subject: expect.stringMatching(/^apiKeys\//) });
    expect((await rest("POST", `/v3/${created.json.name}:revoke`, {}, admin)).status).toBe(200);
    expect((await rest("POST", "/v3/tokens", { organization: `organizations/${org}`, apiKey: created.json.key })).status).toBe(401);
    expect((await rest("POST", `/v3/organizations/${org}/apiKeys`, { role: "service" })).status).toBe(401);
  });

  it("raptorflow token mints, with the mesh's local key, a token the gateway's JWKS verifies and the identity service accepts", async () => {
    const { stdout } = await execFileP(process.execPath, [join(import.meta.dirname, "..", "..", "bin", "raptorflow.js"), "token", "--org", org, "--role", "viewer"], {
      env: { ...process.env, RAPTORFLOW_DATA_DIR: dataDir, NODE_ENV: "test" },
    });
    const token = stdout.trim();
    expect(stdout.split("\n").filter(Boolean)).toHaveLength(1);
    expect(await verifier.verify(token)).toMatchObject({ organization: org, role: "viewer" });
    const me = await rest("GET", "/v3/me", undefined, bearer(token));
    expect(me.json).toMatchObject({ organization: `organizations/${org}`, roles: ["viewer"], subject: "services/raptorflow-cli" });
  });
});

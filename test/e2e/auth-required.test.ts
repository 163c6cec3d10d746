import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSigningKey } from "../../platform/auth/signing-keys.js";
import { createFirstAdmin } from "../../services/identity/first-run.js";
import { openIdentityDatabase } from "../../services/identity/store/open-store.js";
import { createPgIdentityStore } from "../../services/identity/store/pg-identity-store.js";
import { startTestMesh, type TestMesh } from "../support/mesh.js";

/**
 * The whole mesh as processes with AUTH=required, its logs captured: the
 * checks hold across real hops (gateway → orchestrator → agents with the
 * orchestrator's service tokens), and no secret a test knows — the
 * password, the signing key, the tokens, the API key, a provider key —
 * appears in any service's log or in any error the mesh answers.
 */

const email = "admin@secure.example";
const password = "Sup3r-Secret-Passphrase-f00d";
const providerKey = "sk-test-do-not-log-8c1e5a";

describe("the mesh with AUTH=required (processes)", () => {
  let dataDir: string;
  let mesh: TestMesh;
  let org: string;
  let signingKey: string;
  const logs: string[] = [];
  const logged = new Set<string>();
  /** secrets are every secret value the flows below see, with what it is. */
  const secrets = new Map<string, string>();
  /** answers are the status lines, headers and bodies of every answer that is not a token or key issued on purpose. */
  const answers: string[] = [];

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "raptorflow-auth-required-"));
    const db = await openIdentityDatabase({ RAPTORFLOW_DATA_DIR: dataDir, DATABASE_URL: "" });
    try {
      await db.migrate();
      org = (await createFirstAdmin(createPgIdentityStore(db), { email, password, organizationName: "Secure" })).organization.id;
    } finally {
      await db.close();
    }
    const key = await generateSigningKey();
    signingKey = key.d!;
    secrets.set(password, "the password").set(signingKey, "the signing key's private part").set(providerKey, "the LLM provider key");
    mesh = await startTestMesh(
      {
        RAPTORFLOW_DATA_DIR: dataDir,
        DATABASE_URL: "",
        AUTH: "required",
        IDENTITY_SIGNING_KEYS: JSON.stringify({ keys: [key] }),
        OPENAI_API_KEY: providerKey,
        // Everything a service logs, as JSON, and the gateway's request log (off under NODE_ENV=test).
        NODE_ENV: "development",
        LOG_LEVEL: "debug",
        LOG_FORMAT: "json",
        // The general rate limits verify tokens at the gateway too.
        GATEWAY_RATE_LIMIT: "1000",
        GATEWAY_RATE_LIMIT_PER_TOKEN: "1000",
      },
      {
        output: (service, text) => {
          logs.push(text);
          logged.add(service);
        },
      },
    );
  }, 120_000);
  afterAll(async () => {
    await mesh?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}, issuesSecrets = false): Promise<{ status: number; json: any }> => {
    const res = await fetch(`${mesh.gatewayUrl}${path}`, {
      method,
      headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    // An answer that hands out a token or a key on purpose is left out of the search; its headers are not.
    answers.push(`${res.status} ${JSON.stringify([...res.headers])} ${issuesSecrets && res.ok ? "" : text}`);
    return { status: res.status, json: text ? JSON.parse(text) : undefined };
  };
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const signIn = async (pw = password) => {
    const r = await call("POST", "/v3/tokens", { organization: `organizations/${org}`, password: { email, password: pw } }, {}, true);
    if (r.status === 200) secrets.set(r.json.accessToken, "an access token").set(r.json.refreshToken, "a refresh token");
    return r;
  };

  it("refuses every call without a token but the public ones", async () => {
    for (const [method, path] of [["GET", "/v3/runs"], ["POST", "/v3/runs"], ["GET", "/api/icps"], ["GET", "/v2/campaigns"], ["GET", "/v3/me"]]) {
      expect((await call(method, path, method === "POST" ? { input: "x" } : undefined)).status, `${method} ${path}`).toBe(401);
    }
    expect((await call("GET", "/.well-known/jwks.json")).status).toBe(200);
  });

  it("runs a request across every hop for a signed-in admin: the orchestrator reaches the agents with its service token", async () => {
    const { json } = await signIn();
    const run = await call("POST", "/v3/runs", { input: "Write a launch email for our analytics product" }, bearer(json.accessToken));
    expect(run.status).toBe(201);
    expect(run.json.state).toBe("STATE_SUCCEEDED");
    expect((await call("GET", `/v3/${run.json.name}`, undefined, bearer(json.accessToken))).status).toBe(200);
    // Connect reaches the same checks.
    const viaConnect = await call("POST", "/raptorflow.v3.OrchestratorService/ListRuns", {}, { ...bearer(json.accessToken), "connect-protocol-version": "1" });
    expect(viaConnect.status).toBe(200);
  });

  it("holds a viewer (an API key's token) to reading", async () => {
    const admin = bearer((await signIn()).json.accessToken);
    const created = await call("POST", `/v3/organizations/${org}/apiKeys`, { displayName: "dashboard", role: "viewer" }, admin, true);
    expect(created.status).toBe(201);
    secrets.set(created.json.key, "an API key");
    const exchanged = await call("POST", "/v3/tokens", { organization: `organizations/${org}`, apiKey: created.json.key }, {}, true);
    secrets.set(exchanged.json.accessToken, "an access token");
    const viewer = bearer(exchanged.json.accessToken);
    expect((await call("GET", "/v3/runs", undefined, viewer)).status).toBe(200);
    const write = await call("POST", "/v3/runs", { input: "Write three ad variants" }, viewer);
    expect(write.status).toBe(403);
    expect(write.json.message).toContain('the role "viewer" may not call raptorflow.v3.OrchestratorService/CreateRun');
    expect((await call("POST", "/api/icps", { displayName: "x" }, viewer)).status).toBe(403);
    expect((await call("POST", `/v3/${created.json.name}:revoke`, {}, admin)).status).toBe(200);
  });

  it("refuses wrong passwords, reused refresh tokens, tampered and misplaced credentials without repeating them", async () => {
    expect((await signIn("Wrong-Passphrase-0000")).status).toBe(401);
    secrets.set("Wrong-Passphrase-0000", "a wrong password");
    const first = (await signIn()).json;
    const second = await call("POST", "/v3/tokens:refresh", { refreshToken: first.refreshToken }, {}, true);
    secrets.set(second.json.refreshToken, "a refresh token").set(second.json.accessToken, "an access token");
    expect((await call("POST", "/v3/tokens:refresh", { refreshToken: first.refreshToken })).status).toBe(401);
    expect((await call("POST", "/v3/tokens:revoke", { refreshToken: second.json.refreshToken })).status).toBe(200);
    const tampered = `${first.accessToken.slice(0, -6)}AAAAAA`;
    secrets.set(tampered, "a tampered access token");
    expect((await call("GET", "/v3/runs", undefined, bearer(tampered))).status).toBe(401);
    expect((await call("GET", "/v3/runs", undefined, { authorization: `Basic ${Buffer.from(`${email}:${password}`).toString("base64")}` })).status).toBe(401);
    secrets.set(Buffer.from(`${email}:${password}`).toString("base64"), "a Basic credential");
  });

  it("never writes a secret it was given or gave out to a log line or an error answer", async () => {
    // Give the services a moment to flush what the calls above logged.
    await new Promise((r) => setTimeout(r, 300));
    expect([...logged].sort(), "every service logged something to search").toEqual(["gateway", "identity", "orchestrator", "v1-agents", "v2-agents"]);
    const text = logs.join("");
    expect(text).toContain('"msg"');
    const answered = answers.join("\n");
    const leaks: string[] = [];
    expect(secrets.size).toBeGreaterThanOrEqual(10);
    for (const [secret, what] of secrets) {
      if (text.includes(secret)) leaks.push(`${what} is in the logs`);
      if (answered.includes(secret)) leaks.push(`${what} is in an answer`);
    }
    expect(leaks).toEqual([]);
  });
});

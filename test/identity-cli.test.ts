import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { toJson } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { decodeJwt, type JSONWebKeySet } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IdentityService, JsonWebKeySetSchema } from "../gen/raptorflow/identity/v1/identity_pb.js";
import { createTokenVerifier } from "../platform/auth/token-verifier.js";
import { plainUnary } from "./support/grpc-client.js";

const root = join(import.meta.dirname, "..");
const bin = join(root, "bin", "raptorflow.js");

/** cleanEnv is the test's environment without any setting the CLI reads, plus the given ones. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(LLM_PROVIDER|GATEWAY_|ORCHESTRATOR_|V1_AGENTS_|V2_AGENTS_|IDENTITY_|AUTH|DATABASE_URL$|DATA_STORE$|HOST$|NODE_OPTIONS$|NODE_ENV$)/.test(k)) delete env[k];
  }
  // Port 1: nothing listens there, so `init` never mistakes another test's service for this one's.
  return { ...env, HOST: "127.0.0.1", IDENTITY_PORT: "1", ...extra };
}

/** run runs `node bin/raptorflow.js <args>` to its end, with `stdin` as its input. */
function run(args: string[], env: Record<string, string>, stdin = ""): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: root, env: cleanEnv(env), stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("error", reject);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(stdin);
  });
}

/** serveIdentity runs `raptorflow serve identity` on a free port and resolves with its address. */
function serveIdentity(env: Record<string, string>): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(process.execPath, [bin, "serve", "identity"], { cwd: root, env: cleanEnv({ ...env, IDENTITY_PORT: "0" }), stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /^identity listening on port (\d+)$/m.exec(out);
      if (m) resolve({ child, address: `127.0.0.1:${m[1]}` });
    });
    child.once("exit", (code) => reject(new Error(`identity exited ${code} before listening:\n${out}\n${err}`)));
  });
}

describe("raptorflow init, token and signing-key", () => {
  let dataDir: string;
  let identity: { child: ChildProcess; address: string } | undefined;
  let initOutput: string;
  let generatedOutput: string;
  let taken: { code: number | null; stdout: string; stderr: string };

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "raptorflow-identity-cli-"));
    // Both first runs happen while the service is stopped: the embedded database is one process's.
    const first = await run(["init", "--email", "Founder@Example.com", "--name", "Acme", "--password-stdin"], { RAPTORFLOW_DATA_DIR: dataDir }, "a long enough password\n");
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    initOutput = first.stdout;
    const second = await run(["init", "--email", "ops@example.com"], { RAPTORFLOW_DATA_DIR: dataDir });
    expect(second.code).toBe(0);
    generatedOutput = second.stdout;
    taken = await run(["init", "--email", "FOUNDER@example.com", "--password-stdin"], { RAPTORFLOW_DATA_DIR: dataDir }, "another long password");
    identity = await serveIdentity({ RAPTORFLOW_DATA_DIR: dataDir });
  }, 90_000);

  afterAll(async () => {
    if (identity && identity.child.exitCode === null) {
      const exited = new Promise((r) => identity!.child.once("exit", r));
      identity.child.kill("SIGTERM");
      await exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  const signIn = (organization: string, email: string, password: string) =>
    plainUnary(identity!.address, IdentityService.method.createToken, { organization, credential: { case: "password", value: { email, password } } }).then((r) => r.message);

  it("init creates an organization and its admin, never prints a password it was given, and says how to get a token", async () => {
    const org = /\(organizations\/([0-9a-f-]{36})\)/.exec(initOutput)![1];
    expect(initOutput).toContain(`Created the organization "Acme" (organizations/${org}) and its admin founder@example.com.`);
    expect(initOutput).not.toContain("a long enough password");
    expect(initOutput).toContain("/v3/tokens");
    expect(initOutput).toContain(`raptorflow token --org ${org} --role admin`);
    const t = await signIn(`organizations/${org}`, "founder@example.com", "a long enough password");
    const claims = decodeJwt(t.accessToken);
    expect(claims).toMatchObject({ org, role: "admin" });
  });

  it("init without --password-stdin generates a password, prints it once, and it signs in", async () => {
    const org = /\(organizations\/([0-9a-f-]{36})\)/.exec(generatedOutput)![1];
    const password = /shown this once.*\n {2}(\S+)\n/.exec(generatedOutput)![1];
    expect(password).toMatch(/^[A-Za-z0-9_-]{24}$/);
    await expect(signIn(`organizations/${org}`, "ops@example.com", password)).resolves.toMatchObject({ refreshToken: expect.any(String) });
  });

  it("init refuses a taken email (exit 1), a short password and a missing email (exit 2)", async () => {
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain('a user with email "founder@example.com" already exists: the first run is done');
    const unreachable = await run(["init", "--email", "y@example.com", "--password-stdin"], { DATABASE_URL: "postgres://app:s3cret@127.0.0.1:1/x" }, "another long password");
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain("identity: cannot open the database (postgres://app:***@127.0.0.1:1/x)");
    expect(unreachable.stderr).not.toContain("s3cret");
    const short = await run(["init", "--email", "x@example.com", "--password-stdin"], { RAPTORFLOW_DATA_DIR: dataDir }, "short");
    expect(short.code).toBe(2);
    expect(short.stderr).toContain("at least 12 characters");
    const missing = await run(["init"], { RAPTORFLOW_DATA_DIR: dataDir });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("missing --email");
  });

  it("token prints one line alone on stdout: an access token that verifies against the identity service's JWKS", async () => {
    const r = await run(["token", "--org", "acme", "--role", "analyst", "--ttl", "5m"], { RAPTORFLOW_DATA_DIR: dataDir });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$/);
    const jwks = toJson(JsonWebKeySetSchema, (await plainUnary(identity!.address, IdentityService.method.getJsonWebKeySet, {})).message) as unknown as JSONWebKeySet;
    const p = await createTokenVerifier({ keys: jwks, issuer: "raptorflow", audience: "raptorflow" }).verify(r.stdout.trim());
    expect(p).toMatchObject({ organization: "acme", role: "analyst", subject: "services/raptorflow-cli" });
    expect(p.expireTime.getTime() - Date.now()).toBeLessThanOrEqual(5 * 60_000);
    // The identity service accepts it too.
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${r.stdout.trim()}`);
    const me = await plainUnary(identity!.address, IdentityService.method.getCurrentPrincipal, {}, { metadata: md });
    expect(me.message).toMatchObject({ organization: "organizations/acme", roles: ["analyst"] });
    // The local key stays owner-only.
    expect(statSync(join(dataDir, "identity", "keys.json")).mode & 0o777).toBe(0o600);
  });

  it("token refuses bad flags with exit 2, and a production setting without a key with exit 1", async () => {
    const cases = [
      [["token", "--role", "admin"], "missing --org"],
      [["token", "--org", "acme"], "missing --role"],
      [["token", "--org", "acme", "--role", "root"], "--role must be one of"],
      [["token", "--org", "Acme Corp", "--role", "admin"], "is not an organization id"],
      [["token", "--org", "acme", "--role", "admin", "--ttl", "48h"], "--ttl must be"],
    ] as const;
    const [prod, ...results] = await Promise.all([
      run(["token", "--org", "acme", "--role", "admin"], { RAPTORFLOW_DATA_DIR: dataDir, NODE_ENV: "production" }),
      ...cases.map(([args]) => run([...args], { RAPTORFLOW_DATA_DIR: dataDir })),
    ]);
    for (const [i, [args, says]] of cases.entries()) {
      expect(results[i].code, args.join(" ")).toBe(2);
      expect(results[i].stderr).toContain(says);
      expect(results[i].stdout).toBe("");
    }
    expect(prod.code).toBe(1);
    expect(prod.stderr).toContain("IDENTITY_SIGNING_KEYS");
  });

  it("signing-key prints a private key set that token (and the identity service) take as IDENTITY_SIGNING_KEYS", async () => {
    const r = await run(["signing-key"], {});
    expect(r.code).toBe(0);
    const set = JSON.parse(r.stdout) as { keys: { d?: string; kid?: string }[] };
    expect(set.keys[0]).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", d: expect.any(String) });
    const t = await run(["token", "--org", "acme", "--role", "viewer"], { IDENTITY_SIGNING_KEYS: r.stdout.trim(), NODE_ENV: "production" });
    expect(t.code).toBe(0);
    expect(JSON.parse(Buffer.from(t.stdout.split(".")[0], "base64url").toString()).kid).toBe(set.keys[0].kid);
  });

  it("a wrong password is UNAUTHENTICATED over gRPC", async () => {
    const org = /\(organizations\/([0-9a-f-]{36})\)/.exec(initOutput)![1];
    await expect(signIn(`organizations/${org}`, "founder@example.com", "not the password")).rejects.toMatchObject({ code: Code.Unauthenticated });
  });
});

import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { plainUnary } from "./support/grpc-client.js";

const root = join(import.meta.dirname, "..");
const bin = join(root, "bin", "raptorflow.js");

/** cleanEnv is the test's environment without any setting the CLI reads, plus the given ones. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(LLM_PROVIDER|OFFLINE_LLM_|GATEWAY_|ORCHESTRATOR_|V1_AGENTS_|V2_AGENTS_|IDENTITY_|AUTH|HOST$|NODE_OPTIONS$)/.test(k)) delete env[k];
  }
  return { ...env, HOST: "127.0.0.1", ...extra };
}

interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** run runs `node bin/raptorflow.js <args>` to its end. */
function run(args: string[], env: Record<string, string> = {}, timeoutMs = 25_000): Promise<Result> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [bin, ...args], { cwd: root, env: cleanEnv(env), timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err && typeof err.code !== "number") return reject(new Error(`raptorflow ${args.join(" ")}: ${err.message}\n${stderr}`));
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}

describe.concurrent("raptorflow CLI", () => {
  it.each([{ args: ["--help"] }, { args: ["help"] }, { args: ["-h"] }, { args: [] }])("$args prints the usage with the commands and exits 0", async ({ args }) => {
    const r = await run(args);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage: raptorflow <command>");
    for (const c of ["start", "serve <service>", "migrate", "init", "token", "signing-key", "help"]) expect(r.stdout).toContain(c);
    for (const s of ["v1-agents", "v2-agents", "orchestrator", "gateway", "identity"]) expect(r.stdout).toContain(s);
  });

  it.each(["start", "serve", "migrate", "init", "token", "signing-key"])("%s --help prints its help and exits 0", async (command) => {
    const r = await run([command, "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: raptorflow ${command}`);
    expect(r.stderr).toBe("");
  });

  it("help serve prints the serve help", async () => {
    const r = await run(["help", "serve"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage: raptorflow serve <service>");
  });

  // Creating each service's embedded database takes seconds; four of them, one after the other, take a while.
  it("migrate applies each service's migrations once, then says it is up to date", { timeout: 120_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "raptorflow-migrate-"));
    try {
      const first = await run(["migrate"], { RAPTORFLOW_DATA_DIR: dataDir, DATABASE_URL: "" }, 100_000);
      expect(first.code).toBe(0);
      expect(first.stdout).toMatch(/orchestrator \(embedded\): applied Migration20261125000000_runs/);
      expect(first.stdout).toMatch(/v1-agents \(embedded\): applied Migration20261125010000_records/);
      expect(first.stdout).toMatch(/v2-agents \(embedded\): applied Migration20261202000000_records, Migration20261202000100_memories/);
      expect(first.stdout).toMatch(/identity \(embedded\): applied Migration20261126000000_identity/);
      const again = await run(["migrate"], { RAPTORFLOW_DATA_DIR: dataDir, DATABASE_URL: "" }, 60_000);
      expect(again.stdout).toMatch(/orchestrator \(embedded\): up to date/);
      expect(again.stdout).toMatch(/v1-agents \(embedded\): up to date/);
      expect(again.stdout).toMatch(/v2-agents \(embedded\): up to date/);
      expect(again.stdout).toMatch(/identity \(embedded\): up to date/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("migrate against an unreachable database exits 1 naming it, password hidden", async () => {
    const r = await run(["migrate"], { DATABASE_URL: "postgres://app:s3cret@127.0.0.1:1/x" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("orchestrator: cannot open the database (postgres://app:***@127.0.0.1:1/x)");
    expect(r.stderr).not.toContain("s3cret");
  });

  it("an unknown command exits 2 naming it", async () => {
    const r = await run(["frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command "frobnicate"');
    expect(r.stderr).toContain("Usage: raptorflow <command>");
  });

  it("an unknown flag exits 2 naming the flag", async () => {
    const r = await run(["start", "--bogus"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--bogus");
    expect(r.stderr).toContain("Usage: raptorflow start");
  });

  it("serve without a service exits 2", async () => {
    const r = await run(["serve"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("missing <service>");
  });

  it("serve of an unknown service exits 2 listing the services", async () => {
    const r = await run(["serve", "nope"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown service "nope"');
    for (const s of ["v1-agents", "v2-agents", "orchestrator", "gateway"]) expect(r.stderr).toContain(s);
  });

  it("serve with a bad port exits 1 naming the variable", async () => {
    const r = await run(["serve", "v2-agents"], { V2_AGENTS_PORT: "abc" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("V2_AGENTS_PORT");
    expect(r.stderr).toContain('"abc"');
  });

  it("serve with an unknown LLM provider exits 1 naming the variable", async () => {
    const r = await run(["serve", "v2-agents"], { V2_AGENTS_PORT: "0", LLM_PROVIDER: "nope", DATA_STORE: "memory" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("LLM_PROVIDER");
    expect(r.stderr).toContain("nope");
  });

  it("serve v2-agents listens on a port and exits 0 on SIGTERM", async () => {
    const child = spawn(process.execPath, [bin, "serve", "v2-agents"], {
      cwd: root,
      env: cleanEnv({ V2_AGENTS_PORT: "0", DATA_STORE: "memory" }),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on("exit", (code, signal) => resolve({ code, signal })),
    );
    try {
      const port = await new Promise<number>((resolve, reject) => {
        child.stdout.on("data", (d: Buffer) => {
          stdout += d.toString();
          const m = /^v2-agents listening on port (\d+)$/m.exec(stdout);
          if (m) resolve(Number(m[1]));
        });
        void exited.then(({ code }) => reject(new Error(`exited ${code} before listening:\n${stdout}\n${stderr}`)));
      });
      expect(port).toBeGreaterThan(0);
      expect(port).toBeLessThan(65536);
      // A user can reach it there: the health check answers SERVING. Having
      // had an answer also means the process is past its start-up code:
      // mesh/serve.ts prints the line before it installs its SIGTERM handler,
      // so a SIGTERM sent the instant the line appears can kill it outright.
      const health = await plainUnary(`127.0.0.1:${port}`, Health.method.check, { service: "raptorflow.agent.v1.AgentService" });
      expect(health.message.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
      child.kill("SIGTERM");
      const { code, signal } = await exited;
      expect(signal).toBeNull();
      expect(code).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  });
});

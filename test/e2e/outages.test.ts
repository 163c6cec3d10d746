import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { Checks, OrchestratorService, Run_State } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { forkService, stopMesh, type StartedService } from "../../mesh/local-runner.js";
import { createScratchDatabase, postgresAvailable } from "../support/databases.js";
import { plainUnary } from "../support/grpc-client.js";

const started: StartedService[] = [];
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  await stopMesh(started);
  for (const c of cleanups.reverse()) await c();
});

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });

/** mesh starts slow agents (each model call takes 1.5 s) and an orchestrator on a scratch PostgreSQL database. */
async function mesh(extra: Record<string, string> = {}) {
  const scratch = await createScratchDatabase();
  cleanups.push(() => scratch.drop());
  const agentEnv = { ...process.env, NODE_ENV: "test", V1_AGENTS_PORT: "0", V2_AGENTS_PORT: "0", OFFLINE_LLM_LATENCY_MS: "1500", DATA_STORE: "memory", AGENT_CACHE: "off" };
  const v1 = await forkService("v1-agents", agentEnv);
  const v2 = await forkService("v2-agents", agentEnv);
  started.push(v1, v2);
  const orch = await forkService("orchestrator", {
    ...process.env,
    NODE_ENV: "test",
    ORCHESTRATOR_PORT: "0",
    DATABASE_URL: scratch.url,
    V1_AGENTS_ADDR: `127.0.0.1:${v1.port}`,
    V2_AGENTS_ADDR: `127.0.0.1:${v2.port}`,
    ...extra,
  });
  started.push(orch);
  return { address: `127.0.0.1:${orch.port}`, scratch };
}

// Checks off: the test is about the two steps sharing context through an outage.
const twoSteps = { input: "Profile our customers, then write ad copy for them", agents: ["agents/icp_builder", "agents/copywriter"], checks: Checks.OFF };

describe("outages in the middle of a run", () => {
  it("PostgreSQL dropping every connection mid-run: the pool reconnects and the run finishes, recorded", async (ctx) => {
    if (!(await postgresAvailable("PostgreSQL outage mid-run"))) return ctx.skip();
    const { address, scratch } = await mesh();
    const run = plainUnary(address, OrchestratorService.method.createRun, twoSteps, { deadlineMs: 60_000 });
    await new Promise((r) => setTimeout(r, 700));
    const admin = new pg.Client({ connectionString: scratch.url.replace(/\/[^/]+$/, "/postgres") });
    await admin.connect();
    const dbName = new URL(scratch.url).pathname.slice(1);
    const killed = await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`, [dbName]);
    await admin.end();
    expect(killed.rowCount).toBeGreaterThan(0);
    const { message } = await run;
    expect(message.state).toBe(Run_State.SUCCEEDED);
    const stored = await plainUnary(address, OrchestratorService.method.getRun, { name: message.name });
    expect(stored.message.state).toBe(Run_State.SUCCEEDED);
    expect(stored.message.steps).toHaveLength(2);
  }, 120_000);

  it("Redis dying mid-run: the shared context falls back to PostgreSQL and the run finishes, recorded", async (ctx) => {
    if (!(await postgresAvailable("Redis outage mid-run"))) return ctx.skip();
    const port = await freePort();
    const redis: ChildProcess = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
    cleanups.push(() => redis.kill("SIGKILL"));
    await new Promise((r) => setTimeout(r, 300));
    const { address } = await mesh({ REDIS_URL: `redis://127.0.0.1:${port}` });
    const run = plainUnary(address, OrchestratorService.method.createRun, twoSteps, { deadlineMs: 60_000 });
    await new Promise((r) => setTimeout(r, 700));
    redis.kill("SIGKILL");
    const { message } = await run;
    expect(message.state).toBe(Run_State.SUCCEEDED);
    // The second step still saw the first one's output, read back from PostgreSQL.
    expect(Object.keys(message.output ?? {})).toEqual(["icp_builder", "copywriter"]);
    const stored = await plainUnary(address, OrchestratorService.method.getRun, { name: message.name });
    expect(stored.message.state).toBe(Run_State.SUCCEEDED);
  }, 120_000);
});

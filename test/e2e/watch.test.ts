import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { OrchestratorService, Run_State, type RunEvent } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { forkService, stopMesh, type StartedService } from "../../mesh/local-runner.js";
import { createScratchDatabase, postgresAvailable, redisAvailable, redisUrl, type ScratchDatabase } from "../support/databases.js";
import { plainServerStream, plainUnary } from "../support/grpc-client.js";

const started: StartedService[] = [];
const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  await stopMesh(started);
  for (const c of cleanups) await c();
});

/** agents starts both agent services whose model calls take `latencyMs`. */
async function agents(latencyMs: number): Promise<Record<string, string>> {
  const env = { ...process.env, NODE_ENV: "test", V1_AGENTS_PORT: "0", V2_AGENTS_PORT: "0", OFFLINE_LLM_LATENCY_MS: String(latencyMs), DATA_STORE: "memory", AGENT_CACHE: "off" };
  const v1 = await forkService("v1-agents", env);
  const v2 = await forkService("v2-agents", env);
  started.push(v1, v2);
  return { V1_AGENTS_ADDR: `127.0.0.1:${v1.port}`, V2_AGENTS_ADDR: `127.0.0.1:${v2.port}` };
}

/** watch collects the events of WatchRun until the stream ends. */
function watch(address: string, name: string): Promise<RunEvent[]> {
  const { call, close } = plainServerStream(address, OrchestratorService.method.watchRun, { name });
  const events: RunEvent[] = [];
  return new Promise<RunEvent[]>((resolve, reject) => {
    call.on("data", (e: RunEvent) => events.push(e));
    call.on("end", () => resolve(events));
    call.on("error", reject);
  }).finally(close);
}

describe("WatchRun", () => {
  it("a run started on one orchestrator instance is watched, event by event, from another (Redis + PostgreSQL)", async (ctx) => {
    if (!(await postgresAvailable("WatchRun across instances")) || !(await redisAvailable("WatchRun across instances"))) return ctx.skip();
    const scratch: ScratchDatabase = await createScratchDatabase();
    cleanups.push(() => scratch.drop());
    const addrs = await agents(400);
    const shared = { ...process.env, NODE_ENV: "test", ORCHESTRATOR_PORT: "0", DATABASE_URL: scratch.url, REDIS_URL: redisUrl(), ...addrs };
    const a = await forkService("orchestrator", shared);
    const b = await forkService("orchestrator", shared);
    started.push(a, b);
    const onA = `127.0.0.1:${a.port}`;
    const onB = `127.0.0.1:${b.port}`;

    // Start a two-step run on A through its stream, learn its name from the progress, watch it on B.
    const { call, close } = plainServerStream(onA, OrchestratorService.method.streamRun, {
      input: "Profile our customers, then write ad copy for them",
      agents: ["agents/icp_builder", "agents/copywriter"],
    });
    cleanups.push(close);
    const name = await new Promise<string>((resolve, reject) => {
      call.on("data", (e: RunEvent) => e.event.case === "progress" && resolve(e.event.value.run));
      call.on("error", reject);
    });
    const events = await watch(onB, name);
    expect(events[0].event.case).toBe("progress");
    const kinds = events.map((e) => e.event.case);
    // Step 2 started right after the progress the test waited for; its output and its end come through B.
    expect(kinds).toContain("partialOutput");
    expect(kinds).toContain("stepFinished");
    expect(kinds.at(-1)).toBe("run");
    const last = events.at(-1)!;
    expect(last.event.case === "run" && last.event.value.state).toBe(Run_State.SUCCEEDED);
    expect(last.event.case === "run" && last.event.value.name).toBe(name);
  });

  it("a finished run answers at once with the run; an unknown one is NOT_FOUND", async () => {
    const dir = mkdtempSync(join(tmpdir(), "raptorflow-watch-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const addrs = await agents(0);
    const orch = await forkService("orchestrator", { ...process.env, NODE_ENV: "test", ORCHESTRATOR_PORT: "0", RAPTORFLOW_DATA_DIR: dir, ...addrs });
    started.push(orch);
    const address = `127.0.0.1:${orch.port}`;
    const { message } = await plainUnary(address, OrchestratorService.method.createRun, { input: "Write a tagline", agents: ["agents/copywriter"] });
    const events = await watch(address, message.name);
    expect(events.map((e) => e.event.case)).toEqual(["run"]);
    const missing = await watch(address, "runs/01a2147b-0000-7000-8000-000000000000").catch((e: { code: number }) => e);
    expect((missing as { code: number }).code).toBe(5);
  });
});

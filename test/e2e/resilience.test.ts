import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { AgentService } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { OrchestratorService, Run_State } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { forkService, stopMesh, type StartedService } from "../../mesh/local-runner.js";
import { plainServerStream, plainUnary } from "../support/grpc-client.js";

// Every model call takes 1.5 s, like a real model: long enough to act during it.
// Each test starts three services itself: on 2 cores beside the rest of the suite that can take more than the default 30 s.
const slowEnv = {
  ...process.env,
  NODE_ENV: "test",
  RAPTORFLOW_DATA_DIR: mkdtempSync(join(tmpdir(), "raptorflow-resilience-")),
  OFFLINE_LLM_LATENCY_MS: "1500", V2_AGENTS_PORT: "0", V1_AGENTS_PORT: "0", ORCHESTRATOR_PORT: "0" };
let started: StartedService[] = [];
afterEach(async () => {
  await stopMesh(started);
  started = [];
});

const exitOf = (s: StartedService) => new Promise<number | null>((r) => s.child.once("exit", (code) => r(code)));

describe("graceful shutdown", () => {
  it("SIGTERM during a call lets it finish, reports NOT_SERVING, refuses new calls, then exits 0", async () => {
    const v2 = await forkService("v2-agents", slowEnv);
    started.push(v2);
    const address = `127.0.0.1:${v2.port}`;
    const watch = plainServerStream(address, Health.method.watch, { service: "" });
    const statuses: number[] = [];
    watch.call.on("data", (m: { status: number }) => statuses.push(m.status));
    watch.call.on("error", () => {});

    const inFlight = plainUnary(address, AgentService.method.runAgent, { name: "agents/copywriter", input: "Write a tagline for our bakery" });
    await new Promise((r) => setTimeout(r, 300));
    const exited = exitOf(v2);
    v2.child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 200));
    expect(statuses).toEqual([HealthCheckResponse_ServingStatus.SERVING, HealthCheckResponse_ServingStatus.NOT_SERVING]);
    watch.close();

    const late = await plainUnary(address, AgentService.method.listAgents, {}, { deadlineMs: 2000 }).catch((e: grpc.ServiceError) => e);
    expect((late as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);

    const { message } = await inFlight;
    expect(message.agent).toBe("agents/copywriter");
    expect(message.provider).toBe("offline");
    expect(await exited).toBe(0);
  }, 120_000);
});

describe("deadlines", () => {
  it("the caller's deadline reaches the agent call, and the run is recorded as CANCELLED", async () => {
    const v1 = await forkService("v1-agents", slowEnv);
    const v2 = await forkService("v2-agents", slowEnv);
    started.push(v1, v2);
    const orch = await forkService("orchestrator", {
      ...slowEnv,
      V1_AGENTS_ADDR: `127.0.0.1:${v1.port}`,
      V2_AGENTS_ADDR: `127.0.0.1:${v2.port}`,
    });
    started.push(orch);
    const address = `127.0.0.1:${orch.port}`;
    // Warm the catalogs so the deadline is spent on the agent call.
    await plainUnary(address, OrchestratorService.method.listAgents, {});

    const err = await plainUnary(address, OrchestratorService.method.createRun, { input: "Write ad variants for our sale" }, { deadlineMs: 400 }).catch(
      (e: grpc.ServiceError) => e,
    );
    expect((err as grpc.ServiceError).code).toBe(grpc.status.DEADLINE_EXCEEDED);

    // The orchestrator records the outcome once the agent call is cut off by the same deadline.
    let run;
    for (let i = 0; i < 50 && !run; i++) {
      const { message } = await plainUnary(address, OrchestratorService.method.listRuns, {});
      run = message.runs.find((r) => r.state !== Run_State.RUNNING);
      if (!run) await new Promise((r) => setTimeout(r, 50));
    }
    expect(run?.state).toBe(Run_State.CANCELLED);
    expect(run?.steps[0].state).toBe(Run_State.CANCELLED);
  }, 120_000);
});

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Checks, OrchestratorService, Run_State } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { forkService, stopMesh, type StartedService } from "../../mesh/local-runner.js";
import { plainUnary } from "../support/grpc-client.js";
import { startTestMesh, type TestMesh } from "../support/mesh.js";

describe("through the gateway", () => {
  let mesh: TestMesh;
  beforeAll(async () => {
    mesh = await startTestMesh();
  });
  afterAll(async () => {
    await mesh?.stop();
  });

  const post = async (path: string, body: unknown, headers: Record<string, string>) => {
    const res = await fetch(`${mesh.gatewayUrl}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as { name: string; code: number; message: string } };
  };

  it("Idempotency-Key: a retried create returns the first run; the same key with another body is 409", async () => {
    const first = await post("/v3/runs", { input: "Draft a webinar invite" }, { "idempotency-key": "invite-1" });
    expect(first.status).toBe(201);
    const retry = await post("/v3/runs", { input: "Draft a webinar invite" }, { "idempotency-key": "invite-1" });
    expect(retry.json.name).toBe(first.json.name);
    const other = await post("/v3/runs", { input: "Something else" }, { "idempotency-key": "invite-1" });
    expect(other.status).toBe(409);
    expect(other.json.code).toBe(6);
    expect(other.json.message).toContain("invite-1");
  });

  it("one organization cannot read or list another's runs: NOT_FOUND, not PERMISSION_DENIED", async () => {
    const asA = { "grpc-metadata-x-raptorflow-organization": "org-a" };
    const asB = { "grpc-metadata-x-raptorflow-organization": "org-b" };
    const run = await post("/v3/runs", { input: "Our secret launch plan" }, asA);
    expect(run.status).toBe(201);
    const mine = await fetch(`${mesh.gatewayUrl}/v3/${run.json.name}`, { headers: asA });
    expect(mine.status).toBe(200);
    const theirs = await fetch(`${mesh.gatewayUrl}/v3/${run.json.name}`, { headers: asB });
    expect(theirs.status).toBe(404);
    const list = (await (await fetch(`${mesh.gatewayUrl}/v3/runs?pageSize=1000`, { headers: asB })).json()) as { runs?: { name: string }[] };
    expect((list.runs ?? []).map((r) => r.name)).not.toContain(run.json.name);
    const id = run.json.name.slice("runs/".length);
    expect((await fetch(`${mesh.gatewayUrl}/api/v3/result/${id}`, { headers: asB })).status).toBe(404);
    const feedback = await post(`/v3/${run.json.name}/feedback`, { rating: 1 }, asB);
    expect(feedback.status).toBe(404);
  });
});

describe("the embedded database", () => {
  let dataDir: string;
  let started: StartedService[] = [];
  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), "raptorflow-persist-"));
  });
  afterAll(async () => {
    await stopMesh(started);
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** agents starts both agent services with model calls that take `latencyMs`. */
  const agents = async (latencyMs: number) => {
    const env = { ...process.env, NODE_ENV: "test", V1_AGENTS_PORT: "0", V2_AGENTS_PORT: "0", OFFLINE_LLM_LATENCY_MS: String(latencyMs) };
    const v1 = await forkService("v1-agents", env);
    const v2 = await forkService("v2-agents", env);
    started.push(v1, v2);
    return { V1_AGENTS_ADDR: `127.0.0.1:${v1.port}`, V2_AGENTS_ADDR: `127.0.0.1:${v2.port}` };
  };
  const orchestrator = (addrs: Record<string, string>) =>
    forkService("orchestrator", { ...process.env, NODE_ENV: "test", ORCHESTRATOR_PORT: "0", RAPTORFLOW_DATA_DIR: dataDir, ...addrs });

  it("keeps runs across a restart, and marks a run a crash interrupted as FAILED at start-up", async () => {
    const addrs = await agents(3000);
    let orch = await orchestrator(addrs);
    const address = () => `127.0.0.1:${orch.port}`;
    await plainUnary(address(), OrchestratorService.method.listAgents, {});
    // A run that finishes is kept.
    const done = await plainUnary(address(), OrchestratorService.method.createRun, { input: "Write a tagline", agents: ["agents/copywriter"], checks: Checks.OFF }, { deadlineMs: 10_000 });
    expect(done.message.state).toBe(Run_State.SUCCEEDED);
    // A run in flight when the process dies without warning.
    const inFlight = plainUnary(address(), OrchestratorService.method.createRun, { input: "Write another tagline", agents: ["agents/copywriter"], checks: Checks.OFF }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 500));
    const died = new Promise((r) => orch.child.once("exit", r));
    orch.child.kill("SIGKILL");
    await died;
    await inFlight;

    orch = await orchestrator(addrs);
    started.push(orch);
    const { message } = await plainUnary(address(), OrchestratorService.method.listRuns, { pageSize: 10 });
    const byInput = Object.fromEntries(message.runs.map((r) => [r.input, r]));
    expect(byInput["Write a tagline"].state).toBe(Run_State.SUCCEEDED);
    expect(byInput["Write a tagline"].steps[0].result?.provider).toBe("offline");
    expect(byInput["Write another tagline"].state).toBe(Run_State.FAILED);
    expect(byInput["Write another tagline"].error).toContain("interrupted");
  });
});

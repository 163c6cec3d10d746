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

  it("serves V2's campaigns, assets and memory search under /v2, scoped to the organization", async () => {
    const asA = { "grpc-metadata-x-raptorflow-organization": "org-a" };
    const campaign = await post("/v2/campaigns", { displayName: "Spring launch", goal: "Book 500 test rides", channels: ["email"], state: "CAMPAIGN_STATE_DRAFT" }, asA);
    expect(campaign.status).toBe(200);
    expect(campaign.json.name).toMatch(/^campaigns\//);
    const asset = await post("/v2/assets", { displayName: "Launch email", campaign: campaign.json.name, kind: "ASSET_KIND_EMAIL", content: "Ride before you buy." }, asA);
    expect(asset.status).toBe(200);
    const listed = (await (await fetch(`${mesh.gatewayUrl}/v2/assets?campaign=${campaign.json.name}`, { headers: asA })).json()) as { assets: { name: string }[] };
    expect(listed.assets.map((a) => a.name)).toEqual([asset.json.name]);
    const refused = await fetch(`${mesh.gatewayUrl}/v2/${campaign.json.name}`, { method: "DELETE", headers: asA });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { code: number }).code).toBe(9);
    expect((await fetch(`${mesh.gatewayUrl}/v2/${campaign.json.name}?force=true`, { method: "DELETE", headers: asA })).status).toBe(200);

    // Creates of records are idempotent too, the legacy V1 routes included.
    for (const path of ["/v2/campaigns", "/api/icps"]) {
      const key = { ...asA, "idempotency-key": `create-${path}` };
      const once = await post(path, { displayName: "Retried create" }, key);
      const again = await post(path, { displayName: "Retried create" }, key);
      expect(again.json.name).toBe(once.json.name);
      const clash = await post(path, { displayName: "Another create" }, key);
      expect(clash.status).toBe(409);
      expect(clash.json.message).toContain(`create-${path}`);
    }

    const memory = await post("/v2/memories", { kind: "MEMORY_KIND_BRAND", content: "Never say cheap; say fair price." }, asA);
    expect(memory.status).toBe(200);
    const search = await post("/v2/memories:search", { query: "can we call it cheap?" }, asA);
    expect((search.json as unknown as { matches: { memory: { name: string } }[] }).matches[0].memory.name).toBe(memory.json.name);
    const theirs = await post("/v2/memories:search", { query: "can we call it cheap?" }, { "grpc-metadata-x-raptorflow-organization": "org-b" });
    expect((theirs.json as unknown as { matches?: unknown[] }).matches ?? []).toEqual([]);
    const bad = await post("/v2/memories", { kind: "MEMORY_KIND_BRAND" }, asA);
    expect(bad.status).toBe(400);
    expect(bad.json.message).toContain("content");
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
    // The agents keep their records in the process: this test is about the orchestrator's database.
    const env = { ...process.env, NODE_ENV: "test", V1_AGENTS_PORT: "0", V2_AGENTS_PORT: "0", OFFLINE_LLM_LATENCY_MS: String(latencyMs), DATA_STORE: "memory" };
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
    // Three service starts and two embedded databases: on 2 cores beside the rest of the suite, more than the default 30 s.
  }, 120_000);
});

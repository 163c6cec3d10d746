import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "../support/mesh.js";

// The original unified API's routes, called as an old client would.
let mesh: TestMesh;
beforeAll(async () => {
  mesh = await startTestMesh();
});
afterAll(async () => {
  await mesh?.stop();
});

const call = (method: string, path: string, body?: unknown) => mesh.rest(method, path, body);

describe("legacy /api/v3 routes", () => {
  it("execute, then status and result by the bare run id", async () => {
    const run = await call("POST", "/api/v3/execute", { input: "Write a product launch email for our new CRM" });
    // Older routes answer 200, as the original backend did; /v3/runs answers 201.
    expect(run.status).toBe(200);
    expect(run.json.state).toBe("STATE_SUCCEEDED");
    const id = run.json.name.slice("runs/".length);

    const status = await call("GET", `/api/v3/status/${id}`);
    expect(status.status).toBe(200);
    expect(status.json).toMatchObject({ runId: id, name: run.json.name, state: "STATE_SUCCEEDED" });
    expect(status.json.completedSteps).toBe(status.json.totalSteps);

    const result = await call("GET", `/api/v3/result/${id}`);
    expect(result.status).toBe(200);
    expect(result.json.output).toEqual(run.json.output);
    expect(result.json.route.target).toBe(run.json.route.target);

    expect((await call("GET", "/api/v3/status/no-such-run")).status).toBe(404);
    expect((await call("GET", "/api/v3/status/BAD_ID")).status).toBe(400);
  });

  it("agents and capabilities", async () => {
    const agents = await call("GET", "/api/v3/agents?pageSize=100");
    expect(agents.json.totalSize).toBe(70);
    const caps = await call("GET", "/api/v3/capabilities");
    expect(caps.status).toBe(200);
    const bySystem = Object.fromEntries(caps.json.systems.map((s: { system: string; agentCount: number }) => [s.system, s.agentCount]));
    expect(bySystem).toEqual({ AGENT_SYSTEM_V1: 16, AGENT_SYSTEM_V2: 54 });
    const v2 = caps.json.systems.find((s: { system: string }) => s.system === "AGENT_SYSTEM_V2");
    expect(v2.departments).toHaveLength(9);
    expect(caps.json.routeModes).toEqual(["ROUTE_MODE_V1", "ROUTE_MODE_V2", "ROUTE_MODE_HYBRID"]);
    expect(caps.json.router).toBe("semantic-v1");
  });

  it("batch runs every request in order; a bad request gets its own error and the others run", async () => {
    const ok = await call("POST", "/api/v3/batch", {
      requests: [{ input: "Segment our customers into cohorts" }, { input: "Draft a tweet about our webinar" }],
    });
    expect(ok.status).toBe(200);
    expect(ok.json.runs.map((r: { input: string }) => r.input)).toEqual(["Segment our customers into cohorts", "Draft a tweet about our webinar"]);
    const before = (await call("GET", "/v3/runs?pageSize=1000")).json.runs.length;
    const mixed = await call("POST", "/v3/runs:batchCreate", {
      requests: [{ input: "fine" }, { input: "also fine", agents: ["agents/nobody"] }],
    });
    expect(mixed.status).toBe(200);
    expect(mixed.json.results[1].error.code).toBe(3);
    expect(mixed.json.results[1].error.message).toContain("requests[1]");
    expect(mixed.json.runs.map((r: { input: string }) => r.input)).toEqual(["fine"]);
    expect((await call("GET", "/v3/runs?pageSize=1000")).json.runs.length).toBe(before + 1);
  });

  it("feedback on a run: 201 on /v3, 200 on the legacy route, 404 for an unknown run, 400 for a bad rating", async () => {
    const run = await call("POST", "/v3/runs", { input: "Suggest a pricing page headline" });
    const created = await call("POST", `/v3/${run.json.name}/feedback`, { rating: 5, comment: "spot on" });
    expect(created.status).toBe(201);
    expect(created.json.name).toMatch(new RegExp(`^${run.json.name}/feedback/`));
    expect(created.json.rating).toBe(5);
    const legacy = await call("POST", "/api/v3/feedback", { parent: run.json.name, feedback: { rating: 3 } });
    expect(legacy.status).toBe(200);
    expect((await call("POST", "/v3/runs/nope/feedback", { rating: 4 })).status).toBe(404);
    const badRating = await call("POST", `/v3/${run.json.name}/feedback`, { rating: 9 });
    expect(badRating.status).toBe(400);
    expect(badRating.json.message).toContain("rating");
  });
});

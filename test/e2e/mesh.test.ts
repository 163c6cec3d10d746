import { execFile } from "node:child_process";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { fromBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { OrchestratorService, Run_State, Target } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { plainServerStream, plainUnary } from "../support/grpc-client.js";
import { startTestMesh, type TestMesh } from "../support/mesh.js";
import { topology } from "../../mesh/topology.js";

const run = promisify(execFile);
let mesh: TestMesh;

beforeAll(async () => {
  mesh = await startTestMesh();
});
afterAll(async () => {
  await mesh?.stop();
});

async function post(path: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${mesh.gatewayUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function getJson(path: string): Promise<any> {
  return (await fetch(`${mesh.gatewayUrl}${path}`)).json();
}

describe("REST through the gateway", () => {
  it("POST /v3/runs routes, runs the agent over gRPC and returns the finished run", async () => {
    const { status, json } = await post("/v3/runs", { input: "Build an ideal customer profile for our B2B analytics tool" });
    expect(status).toBe(201);
    expect(json.name).toMatch(/^runs\/[0-9a-f-]+$/);
    expect(json.state).toBe("STATE_SUCCEEDED");
    expect(["TARGET_V1", "TARGET_V2", "TARGET_HYBRID"]).toContain(json.route.target);
    expect(json.steps.length).toBeGreaterThan(0);
    for (const step of json.steps) {
      expect(step.state).toBe("STATE_SUCCEEDED");
      expect(step.result.provider).toBe("offline");
      const id = step.agent.slice("agents/".length);
      // Each step's output lands in the run's combined output under its agent id.
      expect(json.output[id]).toEqual(step.result.output);
      expect(Object.keys(step.result.output).length).toBeGreaterThan(0);
    }
    expect(Number(json.usage.inputTokens)).toBeGreaterThan(0);

    const got = await getJson(`/v3/${json.name}`);
    expect(got.name).toBe(json.name);
    expect(got.state).toBe("STATE_SUCCEEDED");
    const list = await getJson(`/v3/runs?pageSize=10`);
    expect(list.runs.map((r: { name: string }) => r.name)).toContain(json.name);
  });

  it("a hybrid run shares the V1 step's output with the V2 step", async () => {
    const { status, json } = await post("/v3/runs", {
      input: "Profile our ideal customer and then write three ad variants for them",
      mode: "ROUTE_MODE_HYBRID",
    });
    expect(status).toBe(201);
    expect(json.route.target).toBe("TARGET_HYBRID");
    // V1 first, then V2; the creative V2 step brings the safety and quality checks after it.
    const systems: string[] = json.steps.map((s: { system: string }) => s.system);
    expect(systems[0]).toBe("AGENT_SYSTEM_V1");
    expect(systems.slice(systems.lastIndexOf("AGENT_SYSTEM_V1") + 1).every((s) => s === "AGENT_SYSTEM_V2")).toBe(true);
    expect(systems).toContain("AGENT_SYSTEM_V2");
    expect(json.steps.map((s: { agent: string }) => s.agent)).toContain("agents/quality_rater");
    expect(json.state).toBe("STATE_SUCCEEDED");
    expect(Object.keys(json.output)).toHaveLength(json.steps.length);
  });

  it("POST /v3/runs:stream streams the run's events as NDJSON, ending with the finished run", async () => {
    const res = await fetch(`${mesh.gatewayUrl}/v3/runs:stream`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input: "Draft a retargeting plan for cart abandoners" }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/x-ndjson");
    const events = (await res.text()).trim().split("\n").map((l) => JSON.parse(l).result);
    expect(Object.keys(events[0])).toEqual(["routed"]);
    expect(events.some((e) => e.partialOutput)).toBe(true);
    expect(events.at(-1).run.state).toBe("STATE_SUCCEEDED");
  });

  it("a run past its budget stops with STATE_BUDGET_EXCEEDED and runs no further step", async () => {
    // A request no other test sends: a cached step would consume nothing, and not trip the budget.
    const { status, json } = await post("/v3/runs", {
      input: "Find the buyers of our budget-tracking app, then write launch copy for them",
      agents: ["agents/icp_builder", "agents/copywriter"],
      budget: { maxTokens: "1" },
      checks: "CHECKS_OFF",
    });
    expect(status).toBe(201);
    expect(json.state).toBe("STATE_BUDGET_EXCEEDED");
    expect(json.steps).toHaveLength(1);
    expect(json.error).toMatch(/budget exceeded: \d+ tokens used, the budget is 1/);
    const bad = await post("/v3/runs", { input: "x", budget: { maxCostUsd: -1 } });
    expect(bad.status).toBe(400);
    expect(bad.json.message).toContain("max_cost_usd");
  });

  it("POST /v3/routes:explain returns a decision without running anything", async () => {
    const { status, json } = await post("/v3/routes:explain", { input: "Write a welcome email sequence for trial users" });
    expect(status).toBe(200);
    expect(["TARGET_V1", "TARGET_V2", "TARGET_HYBRID"]).toContain(json.target);
    expect(json.steps.length).toBeGreaterThan(0);
    expect(json.complexity).toBeGreaterThanOrEqual(0);
    expect(json.reasons.length).toBeGreaterThan(0);
  });

  it("GET /v3/agents lists both catalogs and filters by system and department", async () => {
    const all = await getJson(`/v3/agents?pageSize=1000`);
    expect(all.totalSize).toBe(70);
    const icp = (list: { agents: { name: string; inputSchema?: object; examples?: string[] }[] }) => list.agents.find((a) => a.name === "agents/icp_builder")!;
    expect(icp(all).inputSchema, "the BASIC view by default").toBeUndefined();
    const full = await getJson(`/v3/agents?pageSize=1000&view=AGENT_VIEW_FULL`);
    expect(icp(full).inputSchema).toBeDefined();
    expect(icp(full).examples!.length).toBeGreaterThan(0);
    const v1 = await getJson(`/v3/agents?system=AGENT_SYSTEM_V1&pageSize=1000`);
    expect(v1.agents).toHaveLength(16);
    const creative = await getJson(`/v3/agents?department=creative`);
    expect(creative.agents.map((a: { name: string }) => a.name)).toContain("agents/copywriter");
    expect(creative.agents.every((a: { department: string }) => a.department === "creative")).toBe(true);
  });

  it("a bad request is HTTP 400 naming the field, not a 500", async () => {
    const empty = await post("/v3/runs", { input: "" });
    expect(empty.status).toBe(400);
    expect(empty.json.code).toBe(3);
    expect(empty.json.message).toContain("input");
    const badAgent = await post("/v3/runs", { input: "hello", agents: ["agents/no_such_agent"] });
    expect(badAgent.status).toBe(400);
    expect(badAgent.json.message).toContain("agents[0]");
    const badEnum = await post("/v3/runs", { input: "hello", mode: "ROUTE_MODE_SIDEWAYS" });
    expect(badEnum.status).toBe(400);
    expect(badEnum.json.message).toContain("mode");
  });

  it("an unknown run is HTTP 404", async () => {
    const res = await fetch(`${mesh.gatewayUrl}/v3/runs/does-not-exist`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { code: number }).code).toBe(5);
  });
});

describe("Connect and gRPC-Web through the gateway (the protocols browsers speak)", () => {
  for (const [protocol, make] of [
    ["Connect", createConnectTransport],
    ["gRPC-Web", createGrpcWebTransport],
  ] as const) {
    it(`${protocol}: CreateRun and StreamRun reach the orchestrator`, async () => {
      const client = createClient(OrchestratorService, make({ baseUrl: mesh.gatewayUrl, httpVersion: "1.1" }));
      const run = await client.createRun({ input: "Write a LinkedIn post announcing our webinar" });
      expect(run.state).toBe(Run_State.SUCCEEDED);
      const kinds: string[] = [];
      for await (const ev of client.streamRun({ input: "Write a LinkedIn post announcing our webinar" })) kinds.push(ev.event.case ?? "");
      expect(kinds[0]).toBe("routed");
      expect(kinds).toContain("stepStarted");
      expect(kinds).toContain("partialOutput");
      expect(kinds.at(-1)).toBe("run");
      const err = await client.createRun({ input: "" }).catch((e: unknown) => ConnectError.from(e));
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    });
  }
});

describe("gRPC straight to the orchestrator with a plain @grpc/grpc-js client", () => {
  it("CreateRun returns the combined run", async () => {
    const { message } = await plainUnary(mesh.address("orchestrator"), OrchestratorService.method.createRun, {
      input: "Write three ad variants for our spring sale",
    });
    expect(message.state).toBe(Run_State.SUCCEEDED);
    expect(message.route?.target).not.toBe(Target.UNSPECIFIED);
    expect(message.steps[0].result?.provider).toBe("offline");
  });

  it("a bad request is INVALID_ARGUMENT with the violation in grpc-status-details-bin", async () => {
    const err = await plainUnary(mesh.address("orchestrator"), OrchestratorService.method.createRun, { input: "" }).catch(
      (e: grpc.ServiceError) => e,
    );
    expect(err).toBeInstanceOf(Error);
    const e = err as grpc.ServiceError;
    expect(e.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(e.details).toContain("input");
    const bin = e.metadata.get("grpc-status-details-bin")[0] as Buffer;
    const status = fromBinary(StatusSchema, bin);
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status.details[0].typeUrl).toBe("type.googleapis.com/buf.validate.Violations");
  });

  it("each agent service serves its own catalog", async () => {
    const v1 = await plainUnary(mesh.address("v1-agents"), AgentService.method.listAgents, { pageSize: 100 });
    const v2 = await plainUnary(mesh.address("v2-agents"), AgentService.method.listAgents, { pageSize: 100 });
    expect(v1.message.agents).toHaveLength(16);
    expect(v2.message.agents).toHaveLength(54);
    expect(new Set(v2.message.agents.map((a) => a.department)).size).toBe(9);
  });
});

describe("health", () => {
  it("Check answers SERVING per service and overall, NOT_FOUND for an unknown service", async () => {
    const overall = await plainUnary(mesh.address("orchestrator"), Health.method.check, { service: "" });
    expect(overall.message.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    const svc = await plainUnary(mesh.address("v2-agents"), Health.method.check, { service: "raptorflow.agent.v1.AgentService" });
    expect(svc.message.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    const err = await plainUnary(mesh.address("v1-agents"), Health.method.check, { service: "no.such.Service" }).catch(
      (e: grpc.ServiceError) => e,
    );
    expect((err as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
  });

  it("Watch streams the current status", async () => {
    const { call, close } = plainServerStream(mesh.address("orchestrator"), Health.method.watch, {
      service: "raptorflow.v3.OrchestratorService",
    });
    try {
      const first = await new Promise((resolve, reject) => {
        call.once("data", resolve);
        call.once("error", reject);
      });
      expect((first as { status: number }).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    } finally {
      close();
    }
  });
});

describe("buf curl with server reflection", () => {
  const buf = "node_modules/.bin/buf";

  it("lists every service of every gRPC service of the mesh: exactly what the topology says it serves", async () => {
    for (const name of ["orchestrator", "v1-agents", "v2-agents"] as const) {
      const { stdout } = await run(buf, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-services", `http://${mesh.address(name)}`]);
      const listed = stdout.trim().split("\n").sort();
      const expected = [...topology[name].grpcServices, "raptorflow.ops.v1.StatusService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];
      expect(listed).toEqual(expected.sort());
    }
  });

  it("lists the methods and calls one, with the schema from reflection", async () => {
    const { stdout: methods } = await run(buf, [
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "--list-methods",
      `http://${mesh.address("orchestrator")}`,
    ]);
    expect(methods).toContain("raptorflow.v3.OrchestratorService/CreateRun");
    expect(methods).toContain("raptorflow.v3.OrchestratorService/StreamRun");
    const { stdout } = await run(buf, [
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "-d",
      JSON.stringify({ input: "Plan a posting schedule for our Instagram launch" }),
      `http://${mesh.address("orchestrator")}/raptorflow.v3.OrchestratorService/CreateRun`,
    ]);
    const runJson = JSON.parse(stdout);
    expect(runJson.state).toBe("STATE_SUCCEEDED");
  });
});

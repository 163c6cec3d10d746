import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { forkService, stopMesh, type StartedService } from "../../mesh/local-runner.js";
import { envPrefix, serviceNames } from "../../mesh/topology.js";
import { startLoopbackOpenAI, type LoopbackOpenAI } from "../support/openai-loopback.js";
import { startTestMesh, type TestMesh } from "../support/mesh.js";

/** Step is a run step as the REST API returns it. */
interface Step {
  agent: string;
  system: string;
  state: string;
  error?: string;
  startTime?: string;
  endTime?: string;
}

/** headingOf is the first line of an agent's system prompt (`# Email Automation`), which tells its model requests apart. */
function headingOf(agent: string): string {
  for (const system of ["v1-agents", "v2-agents"]) {
    const file = join("services", system, "prompts", `${agent}.md`);
    if (existsSync(file)) return readFileSync(file, "utf8").split("\n")[0];
  }
  throw new Error(`no prompt for ${agent}`);
}

/** promptsFor are the user turns the model received for one agent's calls, in order. */
function promptsFor(model: LoopbackOpenAI, agent: string): string[] {
  const heading = headingOf(agent);
  return model.requests
    .map((r) => r.messages as { role: string; content: string }[])
    .filter((m) => m.some((x) => x.role === "system" && typeof x.content === "string" && x.content.includes(heading)))
    .map((m) => m.filter((x) => x.role === "user").map((x) => x.content).join("\n"));
}

/** sharedContextOf reads the shared context an agent's prompt carried. */
function sharedContextOf(prompt: string): Record<string, unknown> {
  const inside = prompt.split("<shared_context>\n")[1]?.split("\n</shared_context>")[0] ?? "";
  const json = inside.slice(inside.indexOf("{"), inside.lastIndexOf("}") + 1);
  return json ? (JSON.parse(json) as Record<string, unknown>) : {};
}

const hybridInput = "Build our ideal customer profile and map our competitors, then write the launch email for our B2B analytics tool";

describe("a hybrid run through the whole mesh (gateway, orchestrator, both agent services, a model on loopback)", () => {
  let model: LoopbackOpenAI;
  let mesh: TestMesh;
  const modelEnv = (m: LoopbackOpenAI) => ({ LLM_PROVIDER: "openai", OPENAI_BASE_URL: m.baseURL, AGENT_CACHE: "off" });
  const restarted: StartedService[] = [];
  const restartDir = mkdtempSync(join(tmpdir(), "raptorflow-hybrid-"));
  beforeAll(async () => {
    model = await startLoopbackOpenAI();
    mesh = await startTestMesh(modelEnv(model));
  }, 120_000);
  afterAll(async () => {
    await stopMesh(restarted);
    await mesh?.stop();
    await model?.close();
    rmSync(restartDir, { recursive: true, force: true });
  });

  it("runs the V1 analysis side by side, then V2 steps whose model prompt carries V1's outputs", async () => {
    const { status, json: run } = await mesh.rest("POST", "/v3/runs", { input: hybridInput, mode: "ROUTE_MODE_HYBRID", checks: "CHECKS_OFF" });
    expect(status, JSON.stringify(run)).toBe(201);
    expect(run.state, run.error).toBe("STATE_SUCCEEDED");
    const steps = run.steps as Step[];
    const v1 = steps.filter((s) => s.system === "AGENT_SYSTEM_V1");
    const v2 = steps.filter((s) => s.system === "AGENT_SYSTEM_V2");
    expect(v1.length).toBeGreaterThanOrEqual(2);
    expect(v2.length).toBeGreaterThanOrEqual(1);
    // The plan's DAG: the first V2 step waits for every V1 step; the V1 steps wait for nothing.
    const planned = run.route.steps as { agent: string; dependsOn?: string[] }[];
    for (const s of planned.filter((p) => v1.some((x) => x.agent === p.agent))) expect(s.dependsOn ?? []).toEqual([]);
    const firstV2 = planned.find((p) => p.agent === v2[0].agent)!;
    expect([...(firstV2.dependsOn ?? [])].sort()).toEqual(v1.map((s) => s.agent).sort());
    // Both V1 steps started before either ended; every V2 step started after every V1 step ended (the run's own clock).
    const t = (x?: string) => Date.parse(x!);
    expect(Math.max(...v1.map((s) => t(s.startTime)))).toBeLessThanOrEqual(Math.min(...v1.map((s) => t(s.endTime))));
    for (const s of v2) expect(t(s.startTime)).toBeGreaterThanOrEqual(Math.max(...v1.map((x) => t(x.endTime))));
    // What V1 found reached V2's model call: its prompt's shared context holds each V1 agent's output, as stored.
    const id = v2[0].agent.slice("agents/".length);
    const prompts = promptsFor(model, id);
    expect(prompts.length, `a model request for ${id}`).toBeGreaterThan(0);
    const shared = sharedContextOf(prompts[0]);
    for (const s of v1) expect(shared[s.agent.slice(7)]).toEqual(run.output[s.agent.slice(7)]);
    // The run's context, kept through the data layer, holds every step's output.
    const ctx = await mesh.rest("GET", `/v3/${run.name}/context`);
    expect(ctx.status).toBe(200);
    expect(Object.keys(ctx.json.values).sort()).toEqual(steps.map((s) => s.agent.slice(7)).sort());
  });

  it("a REST client following /v3/runs:stream over SSE sees each step start and end, and the fraction of the plan done", async () => {
    const res = await fetch(`${mesh.gatewayUrl}/v3/runs:stream`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify({ input: hybridInput, mode: "ROUTE_MODE_HYBRID", checks: "CHECKS_OFF" }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    // Each SSE event's data is one RunEvent.
    const events = (await res.text())
      .split("\n\n")
      .flatMap((block) => block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()))
      .filter((d) => d !== "")
      .map((d) => JSON.parse(d) as Record<string, { agent?: string; fraction?: number; state?: string }>);
    const kinds = events.map((e) => Object.keys(e)[0]);
    expect(kinds[0]).toBe("routed");
    expect(kinds[kinds.length - 1]).toBe("run");
    const run = events[events.length - 1].run!;
    expect(run.state).toBe("STATE_SUCCEEDED");
    const started = events.filter((e) => e.stepStarted).map((e) => e.stepStarted!.agent);
    const finished = events.filter((e) => e.stepFinished).map((e) => e.stepFinished!.agent);
    expect([...started].sort()).toEqual([...finished].sort());
    expect(started.length).toBeGreaterThanOrEqual(3);
    // Each step's end comes after its start; progress rises to 1 with each step that ends.
    for (const a of started) expect(kinds.indexOf("stepFinished", events.findIndex((e) => e.stepStarted?.agent === a))).toBeGreaterThan(-1);
    const fractions = events.filter((e) => e.progress).map((e) => e.progress!.fraction ?? 0);
    expect(fractions).toHaveLength(finished.length);
    expect(fractions).toEqual([...fractions].sort((x, y) => x - y));
    expect(fractions[fractions.length - 1]).toBe(1);
  });

  it("a named context carries one run's results into the next, and GET /v3/contexts/{id} shows it", async () => {
    const first = await mesh.rest("POST", "/v3/runs", { input: "Build our ideal customer profile", agents: ["agents/icp_builder"], contextId: "q3-launch" });
    expect(first.json.state).toBe("STATE_SUCCEEDED");
    const second = await mesh.rest("POST", "/v3/runs", { input: "Write the launch email", agents: ["agents/email_automation"], checks: "CHECKS_OFF", contextId: "q3-launch" });
    expect(second.json.state, second.json.error).toBe("STATE_SUCCEEDED");
    expect(second.json.contextId).toBe("q3-launch");
    const prompts = promptsFor(model, "email_automation");
    expect(sharedContextOf(prompts[prompts.length - 1]).icp_builder).toEqual(first.json.output.icp_builder);
    const named = await mesh.rest("GET", "/v3/contexts/q3-launch");
    expect(named.status).toBe(200);
    expect(Object.keys(named.json.values).sort()).toEqual(["email_automation", "icp_builder"]);
    expect((await mesh.rest("GET", "/v3/contexts/never-used")).status).toBe(404);
    expect((await mesh.rest("GET", "/v3/contexts/Not_Valid")).status).toBe(400);
  });

  it("killing the V1 agent service during a hybrid run ends it PARTIAL: V1's errors on its steps, V2's work intact", async () => {
    const v1 = mesh.services.find((s) => s.name === "v1-agents")!;
    // The V1 steps' model calls hang long enough to kill their service during them.
    model.script({ kind: "delay", ms: 20_000 }, { kind: "delay", ms: 20_000 });
    const before = model.requests.length;
    const pending = mesh.rest("POST", "/v3/runs", { input: hybridInput, mode: "ROUTE_MODE_HYBRID", checks: "CHECKS_OFF" });
    while (model.requests.length < before + 2) await new Promise((r) => setTimeout(r, 20));
    v1.child.kill("SIGKILL");
    const { status, json: run } = await pending;
    expect(status, JSON.stringify(run)).toBe(201);
    expect(run.state, run.error).toBe("STATE_PARTIAL");
    const steps = run.steps as Step[];
    for (const s of steps.filter((x) => x.system === "AGENT_SYSTEM_V1")) {
      expect(s.state).toBe("STATE_FAILED");
      expect(s.error).toMatch(/^Unavailable: /);
    }
    const v2 = steps.filter((x) => x.system === "AGENT_SYSTEM_V2");
    expect(v2.length).toBeGreaterThan(0);
    for (const s of v2) {
      expect(s.state).toBe("STATE_SUCCEEDED");
      expect(run.output[s.agent.slice(7)]).toBeDefined();
    }
    // The run as stored says the same.
    const stored = await mesh.rest("GET", `/v3/${run.name}`);
    expect(stored.json.state).toBe("STATE_PARTIAL");

    // The service comes back on its port, and the next hybrid run succeeds whole.
    const addresses = Object.fromEntries(serviceNames.map((n) => [`${envPrefix(n)}_ADDR`, mesh.address(n)]));
    const env = { ...process.env, NODE_ENV: "test", RAPTORFLOW_DATA_DIR: restartDir, ...modelEnv(model), ...addresses, [`${envPrefix("v1-agents")}_PORT`]: String(v1.port) };
    restarted.push(await forkService("v1-agents", env, { output: () => {} }));
    let again: { state: string } = { state: "" };
    for (let attempt = 0; attempt < 20 && again.state !== "STATE_SUCCEEDED"; attempt++) {
      again = (await mesh.rest("POST", "/v3/runs", { input: hybridInput, mode: "ROUTE_MODE_HYBRID", checks: "CHECKS_OFF" })).json;
      if (again.state !== "STATE_SUCCEEDED") await new Promise((r) => setTimeout(r, 500));
    }
    expect(again.state).toBe("STATE_SUCCEEDED");
  }, 90_000);
});

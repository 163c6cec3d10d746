import type { JsonObject } from "@bufbuild/protobuf";
import { createClient, createRouterTransport, type ServiceImpl } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AgentService } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { Checks, OrchestratorService, Run_State } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { toAgentMessage } from "../../platform/agents/agent-service.js";
import { loadCatalog } from "../../platform/agents/catalog.js";
import { createMemoryKeyValueStore } from "../../platform/kv/memory-kv-store.js";
import { createOrchestratorImpl } from "./orchestrator-service.js";
import { createKeywordRouter } from "./router.js";
import { createRunEvents } from "./run-events.js";
import { createMemoryRunStore } from "./run-store.js";
import { createSharedContext } from "./shared-context.js";

const agents = [...loadCatalog("services/v1-agents").agents, ...loadCatalog("services/v2-agents").agents].map(toAgentMessage);

/** orchestrator wires the real orchestrator to fake agent services; quality_rater answers `rating`. */
function orchestrator(rating: JsonObject) {
  return orchestratorWith({ "agents/quality_rater": rating });
}

/** orchestratorWith wires the real orchestrator to fake agents answering `outputs[agent]` (a default output otherwise). */
function orchestratorWith(outputs: Record<string, JsonObject>, provider = "fake") {
  const calls: string[] = [];
  const fake: ServiceImpl<typeof AgentService> = {
    listAgents: () => ({ agents }),
    getAgent: (req) => agents.find((a) => a.name === req.name)!,
    runAgent(req) {
      calls.push(req.name);
      const output: JsonObject = outputs[req.name] ?? { note: `${req.name} done`, sawContext: Object.keys(req.context ?? {}).join(",") };
      return { agent: req.name, output, provider, usage: { inputTokens: 1n, outputTokens: 1n, calls: 1 } };
    },
    async *streamAgent() {},
  };
  const client = createClient(AgentService, createRouterTransport(({ service }) => service(AgentService, fake)));
  const kv = createMemoryKeyValueStore();
  const store = createMemoryRunStore();
  const impl = createOrchestratorImpl({
    agents: { v1: client, v2: client },
    catalog: async () => agents,
    router: createKeywordRouter,
    store,
    context: createSharedContext(kv, store, 60_000),
    events: createRunEvents(kv),
  });
  return { calls, orch: createClient(OrchestratorService, createRouterTransport(({ service }) => service(OrchestratorService, impl))) };
}

describe("safety and quality checks", () => {
  it("run after creative output, and rewrite_fixer repairs output the rating fails", async () => {
    const { calls, orch } = orchestrator({ overall_score: 4, pass: false, issues: ["vague"] });
    const run = await orch.createRun({ input: "Write ad copy for our spring sale", agents: ["agents/copywriter"] });
    expect(run.state).toBe(Run_State.SUCCEEDED);
    expect(calls).toEqual(["agents/copywriter", "agents/brand_safety", "agents/compliance", "agents/ethical_guardrail", "agents/quality_rater", "agents/rewrite_fixer"]);
    expect(run.route?.steps.map((s) => s.agent).at(-1)).toBe("agents/rewrite_fixer");
    // The fixer sees everything before it, the rating included.
    expect((run.output?.rewrite_fixer as { sawContext: string }).sawContext).toContain("quality_rater");
  });

  it("a passing rating needs no rewrite", async () => {
    const { calls, orch } = orchestrator({ overall_score: 9, pass: true });
    await orch.createRun({ input: "Write ad copy", agents: ["agents/copywriter"] });
    expect(calls).not.toContain("agents/rewrite_fixer");
    expect(calls).toContain("agents/quality_rater");
  });

  it("do not run for plans without creative output, unless asked; never with CHECKS_OFF", async () => {
    const a = orchestrator({ overall_score: 9, pass: true });
    await a.orch.createRun({ input: "Build our ICP", agents: ["agents/icp_builder"] });
    expect(a.calls).toEqual(["agents/icp_builder"]);
    const b = orchestrator({ overall_score: 9, pass: true });
    await b.orch.createRun({ input: "Build our ICP", agents: ["agents/icp_builder"], checks: Checks.ON });
    expect(b.calls).toContain("agents/brand_safety");
    const c = orchestrator({ overall_score: 2, pass: false });
    await c.orch.createRun({ input: "Write ad copy", agents: ["agents/copywriter"], checks: Checks.OFF });
    expect(c.calls).toEqual(["agents/copywriter"]);
  });

  it("ExplainRoute shows the checks in the plan, with the reason", async () => {
    const { orch } = orchestrator({});
    const d = await orch.explainRoute({ input: "Write ad copy", agents: ["agents/copywriter"] });
    expect(d.steps.map((s) => s.agent)).toEqual(["agents/copywriter", "agents/brand_safety", "agents/compliance", "agents/ethical_guardrail", "agents/quality_rater"]);
    expect(d.reasons.join(" ")).toContain("checks:");
  });
});

describe("V2's orchestration agent", () => {
  const complex =
    "Plan our spring campaign end to end: research the audience and then design the funnel and then write the emails " +
    "and the social posts and also the ads, then schedule everything across channels for the next eight weeks with budgets";

  it("plans a complex V2 request: its agents replace the router's, and the checks follow creative output", async () => {
    const { calls, orch } = orchestratorWith({
      "agents/orchestrator": { intent: "campaign", plan: [{ agent_id: "campaign_architect", purpose: "shape it" }, { agent: "agents/copywriter" }, { agent_id: "no_such_agent" }, "campaign_architect"] },
      "agents/quality_rater": { overall_score: 9, pass: true },
    });
    const d = await orch.explainRoute({ input: complex });
    expect(d.steps[0].agent).toBe("agents/orchestrator");
    const run = await orch.createRun({ input: complex });
    expect(calls).toEqual(["agents/orchestrator", "agents/campaign_architect", "agents/copywriter", "agents/brand_safety", "agents/compliance", "agents/ethical_guardrail", "agents/quality_rater"]);
    expect(run.route?.reasons.join(" ")).toContain("the orchestration agent planned: campaign_architect, copywriter");
  });

  it("without a usable plan, the router's plan stands", async () => {
    const { calls, orch } = orchestratorWith({ "agents/orchestrator": { plan: "a plan in prose, not steps" } });
    const planned = (await orch.explainRoute({ input: complex, checks: Checks.OFF })).steps.map((s) => s.agent);
    const run = await orch.createRun({ input: complex, checks: Checks.OFF });
    expect(calls[0]).toBe("agents/orchestrator");
    // Every agent of the routed plan runs, each once (the planner is not run again as a step of its own plan).
    expect(calls).toEqual(planned);
    expect(new Set(calls).size).toBe(calls.length);
    expect(run.state).toBe(Run_State.SUCCEEDED);
  });

  it("a plan from the offline provider (schema-shaped, not thought out) does not replace the router's", async () => {
    const plan = { plan: [{ agent: "market_intel", purpose: "[offline] purpose", depends_on: [], inputs: [] }] };
    const offline = orchestratorWith({ "agents/orchestrator": plan }, "offline");
    const run = await offline.orch.createRun({ input: complex, checks: Checks.OFF });
    expect(offline.calls[0]).toBe("agents/orchestrator");
    expect(offline.calls.slice(1)).not.toEqual(["agents/market_intel"]);
    expect(run.route?.reasons.join(" ")).toContain("the offline provider does not plan");
    // The same answer from a real model is followed.
    const real = orchestratorWith({ "agents/orchestrator": plan });
    await real.orch.createRun({ input: complex, checks: Checks.OFF });
    expect(real.calls).toEqual(["agents/orchestrator", "agents/market_intel"]);
  });
});

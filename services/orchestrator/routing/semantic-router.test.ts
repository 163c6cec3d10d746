import { toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AgentSystem, ModelTier } from "../../../gen/raptorflow/agent/v1/agent_pb.js";
import { RouteDecisionSchema, RouteMode, Target } from "../../../gen/raptorflow/v3/orchestrator_pb.js";
import { createPriceTable } from "../../../platform/llm/prices.js";
import { plannerAgent, plannerThreshold } from "../v2-planner.js";
import { estimatePlanCost } from "./plan-cost.js";
import { catalogAgents, inProcessOrchestrator } from "./route-eval.js";
import { createSemanticRouter, semanticRouterName } from "./semantic-router.js";
import { clauses, stem, tasks } from "./text-features.js";

const agents = catalogAgents();
const byName = new Map(agents.map((a) => [a.name, a]));
const router = createSemanticRouter(agents);
const route = (input: string, mode = RouteMode.UNSPECIFIED, named: string[] = []) => router.route({ input, mode, agents: named });
const priced = { prices: createPriceTable({}), models: { fast: "gpt-4o-mini", capable: "gpt-4o" } };

const requests = [
  ...agents.flatMap((a) => a.examples),
  "Who are our best customers, and what should we post on Instagram for them next week?",
  "Estimate the payback period of our enterprise plan then draft a pricing page",
  "???",
  "hello",
  "a".repeat(5000),
];

describe("semantic router", () => {
  it("only ever plans agents of the catalogs, with a complexity and a confidence in [0, 1] and reasons, for every mode", () => {
    for (const input of requests) {
      for (const mode of [RouteMode.UNSPECIFIED, RouteMode.V1, RouteMode.V2, RouteMode.HYBRID]) {
        const d = route(input, mode);
        expect(d.router).toBe(semanticRouterName);
        expect(d.steps.length).toBeGreaterThan(0);
        for (const s of d.steps) expect(byName.get(s.agent)?.system, `${s.agent} for "${input}"`).toBe(s.system);
        for (const x of [d.complexity, d.confidence]) {
          expect(x).toBeGreaterThanOrEqual(0);
          expect(x).toBeLessThanOrEqual(1);
        }
        expect(d.reasons.length).toBeGreaterThan(0);
        expect(d.steps.every((s) => s.modelTier === ModelTier.FAST || s.modelTier === ModelTier.CAPABLE)).toBe(true);
      }
    }
  });

  it("decides the same way every time, in every router built on the same catalog", () => {
    const other = createSemanticRouter(agents);
    for (const input of requests.slice(0, 40)) {
      expect(toBinary(RouteDecisionSchema, other.route({ input, mode: RouteMode.UNSPECIFIED, agents: [] }))).toEqual(toBinary(RouteDecisionSchema, route(input)));
    }
  });

  it("sends analysis to V1, production to V2, and requests that need both to a hybrid plan, V1 first", () => {
    expect(route("How did our churn rate move across customer cohorts this year?").target).toBe(Target.V1);
    expect(route("Write a friendly LinkedIn post announcing our new office in Lisbon").target).toBe(Target.V2);
    const d = route("Analyse our competitors, build our ICP, then position our new tier and write the landing page copy");
    expect(d.target).toBe(Target.HYBRID);
    const systems = d.steps.map((s) => s.system);
    expect(systems.indexOf(AgentSystem.V2)).toBeGreaterThan(systems.lastIndexOf(AgentSystem.V1));
    // One agent per task asked, where the catalog has one for it.
    expect(d.steps.map((s) => s.agent)).toEqual(expect.arrayContaining(["agents/competitor_surface", "agents/icp_builder", "agents/copywriter"]));
    expect(d.reasons.join(" ")).toContain("analysis");
  });

  it("honours a forced mode with agents of the forced system(s), and says what it would have chosen", () => {
    const input = "Analyse our competitors and write a launch email";
    expect(route(input, RouteMode.V1).steps.every((s) => s.system === AgentSystem.V1)).toBe(true);
    expect(route(input, RouteMode.V2).steps.every((s) => s.system === AgentSystem.V2)).toBe(true);
    const hybrid = route("Write a launch email", RouteMode.HYBRID);
    expect(hybrid.target).toBe(Target.HYBRID);
    expect(new Set(hybrid.steps.map((s) => s.system))).toEqual(new Set([AgentSystem.V1, AgentSystem.V2]));
    expect(hybrid.confidence).toBe(1);
    expect(hybrid.reasons[0]).toBe("the caller forced hybrid (the router would have chosen V2)");
  });

  it("runs explicitly named agents in order and rejects unknown ones naming the position", () => {
    const d = route("anything", RouteMode.UNSPECIFIED, ["agents/icp_builder", "agents/copywriter"]);
    expect(d.steps.map((s) => s.agent)).toEqual(["agents/icp_builder", "agents/copywriter"]);
    expect(d.target).toBe(Target.HYBRID);
    const err = (() => {
      try {
        route("anything", RouteMode.UNSPECIFIED, ["agents/icp_builder", "agents/ghost"]);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toContain("agents[1]");
  });

  it("gives a request with no words to V2's orchestration agent, with no confidence", () => {
    const d = route("???");
    expect(d.target).toBe(Target.V2);
    expect(d.steps.map((s) => s.agent)).toEqual([plannerAgent]);
    expect(d.confidence).toBe(0);
  });

  it("lets complexity set the plan's depth and each step's model tier", () => {
    const simple = route("Write a tagline for our bakery");
    expect(simple.complexity).toBeLessThan(0.3);
    expect(simple.steps).toHaveLength(1);
    expect(simple.steps[0].modelTier).toBe(ModelTier.FAST);
    const complex = route(
      "Plan our autumn launch end to end: design the funnel, then write the emails and the social posts and the ads, " +
        "then schedule everything across every channel for the next eight weeks",
    );
    expect(complex.complexity).toBeGreaterThanOrEqual(0.7);
    expect(complex.steps.length).toBeGreaterThan(1);
    expect(complex.steps.every((s) => s.modelTier === ModelTier.CAPABLE)).toBe(true);
    // The threshold is RouteLLM's knob: 0 sends every step to the capable model, above 1 none.
    const input = "Segment our customers by purchase recency and frequency";
    expect(createSemanticRouter(agents, { capableThreshold: 0 }).route({ input, mode: RouteMode.UNSPECIFIED, agents: [] }).steps.every((s) => s.modelTier === ModelTier.CAPABLE)).toBe(true);
    expect(createSemanticRouter(agents, { capableThreshold: 1.01 }).route({ input, mode: RouteMode.UNSPECIFIED, agents: [] }).steps.every((s) => s.modelTier === ModelTier.FAST)).toBe(true);
  });

  it("estimates the plan's cost from the price table and the tiers' models", () => {
    const input = "Find our most profitable segment and write a LinkedIn campaign for it";
    expect(route(input).estimatedCostUsd).toBe(0); // the offline models cost nothing
    const p = createSemanticRouter(agents, { pricing: priced });
    const d = p.route({ input, mode: RouteMode.UNSPECIFIED, agents: [] });
    expect(d.estimatedCostUsd).toBeGreaterThan(0);
    expect(d.estimatedCostUsd).toBe(estimatePlanCost(d.steps, byName, input, priced).usd);
    expect(d.reasons.join(" ")).toMatch(/estimated cost \$0\.\d{4}: about \d+ input and \d+ output tokens \(fast gpt-4o-mini, capable gpt-4o\)/);
    const allCapable = createSemanticRouter(agents, { pricing: priced, capableThreshold: 0 }).route({ input, mode: RouteMode.UNSPECIFIED, agents: [] });
    const allFast = createSemanticRouter(agents, { pricing: priced, capableThreshold: 1.01 }).route({ input, mode: RouteMode.UNSPECIFIED, agents: [] });
    expect(allCapable.estimatedCostUsd).toBeGreaterThan(allFast.estimatedCostUsd);
    // Steps added after routing (the checks) are priced too.
    expect(p.estimateCost!(d, input)).toBe(d.estimatedCostUsd);
  });

  it("through ExplainRoute: a complex V2 request is planned by the orchestration agent, and the checks are priced into the cost", async () => {
    const input =
      "Run our spring promotion end to end: design the funnel and then write the emails and the social posts and also the ads, " +
      "then schedule everything across channels for the next eight weeks";
    const d = await inProcessOrchestrator({ router: (a) => createSemanticRouter(a, { pricing: priced }) }).explainRoute({ input });
    expect(d.target).toBe(Target.V2);
    expect(d.complexity).toBeGreaterThanOrEqual(plannerThreshold);
    expect(d.steps[0].agent).toBe(plannerAgent);
    expect(d.steps.map((s) => s.agent)).toContain("agents/quality_rater");
    expect(d.estimatedCostUsd).toBe(estimatePlanCost(d.steps, byName, input, priced).usd);
  });
});

describe("text features", () => {
  it("fold spellings and forms onto one stem", () => {
    expect(new Set(["analyse", "analyze", "analysed", "analysis"].map(stem)).size).toBe(1);
    expect(new Set(["competitor", "competitive", "competition"].map(stem)).size).toBe(1);
    expect(stem("campaigns")).toBe(stem("campaign"));
    expect(stem("planning")).toBe(stem("plan"));
  });

  it("split a request into clauses where a new act starts, and into tasks more finely", () => {
    expect(clauses("Segment our customers by purchase recency, frequency and monetary value.")).toHaveLength(1);
    expect(clauses("Using our sales data, find the best-selling product and write a promo email for it.").map((c) => c.act)).toEqual(["analyze", "create"]);
    expect(tasks("Analyse our competitors, build our ICP, then position our new tier and write the landing page copy")).toHaveLength(4);
  });
});

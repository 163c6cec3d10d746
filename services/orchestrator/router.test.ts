import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AgentSystem } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { RouteMode, Target } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { toAgentMessage } from "../../platform/agents/agent-service.js";
import { loadCatalog } from "../../platform/agents/catalog.js";
import { createKeywordRouter } from "./router.js";

// The router sees the catalogs exactly as the orchestrator gets them over ListAgents.
const agents = [...loadCatalog("services/v1-agents").agents, ...loadCatalog("services/v2-agents").agents].map(toAgentMessage);
const names = new Set(agents.map((a) => a.name));
const router = createKeywordRouter(agents);
const route = (input: string, mode = RouteMode.UNSPECIFIED, named: string[] = []) => router.route({ input, mode, agents: named });

const requests = [
  ...agents.flatMap((a) => a.examples),
  "Who are our best customers, and what should we post on Instagram for them next week?",
  "Estimate the payback period of our enterprise plan then draft a pricing page",
  "???",
  "hello",
];

describe("keyword router", () => {
  it("only ever plans agents that exist in a catalog", () => {
    for (const input of requests) {
      for (const mode of [RouteMode.UNSPECIFIED, RouteMode.V1, RouteMode.V2, RouteMode.HYBRID]) {
        const d = route(input, mode);
        expect(d.steps.length).toBeGreaterThan(0);
        for (const s of d.steps) expect(names.has(s.agent), `${s.agent} for "${input}"`).toBe(true);
        expect(d.complexity).toBeGreaterThanOrEqual(0);
        expect(d.complexity).toBeLessThanOrEqual(1);
        expect(d.reasons.length).toBeGreaterThan(0);
      }
    }
  });

  it("honours a forced mode with agents of the forced system(s)", () => {
    const input = "Analyse our competitors and write a launch email";
    expect(route(input, RouteMode.V1).steps.every((s) => s.system === AgentSystem.V1)).toBe(true);
    expect(route(input, RouteMode.V2).steps.every((s) => s.system === AgentSystem.V2)).toBe(true);
    const hybrid = route(input, RouteMode.HYBRID);
    expect(hybrid.target).toBe(Target.HYBRID);
    expect(hybrid.steps.map((s) => s.system)).toEqual([AgentSystem.V1, AgentSystem.V2]);
  });

  it("runs explicitly named agents in order and rejects unknown ones naming the position", () => {
    const d = route("anything", RouteMode.UNSPECIFIED, ["agents/icp_builder", "agents/copywriter"]);
    expect(d.steps.map((s) => s.agent)).toEqual(["agents/icp_builder", "agents/copywriter"]);
    expect(d.target).toBe(Target.HYBRID);
    let err: unknown;
    try {
      route("anything", RouteMode.UNSPECIFIED, ["agents/icp_builder", "agents/ghost"]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toContain("agents[1]");
  });

  it("sends an agent's own example requests to that agent's system", () => {
    // Not an accuracy target (the routing issue sets one): a sanity check that
    // the catalog's words steer the router at all.
    let right = 0;
    const examples = agents.flatMap((a) => a.examples.map((e) => ({ e, system: a.system })));
    for (const { e, system } of examples) {
      const d = route(e);
      if (d.steps[0].system === system) right++;
    }
    expect(right / examples.length).toBeGreaterThan(0.8);
  });
});

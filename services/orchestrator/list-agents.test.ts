import { toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { AgentSystem } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { AgentView, ListAgentsResponseSchema } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { catalogAgents, inProcessOrchestrator } from "./routing/route-eval.js";

const agents = catalogAgents();
const orchestrator = () => inProcessOrchestrator({ agents });

describe("ListAgents views (AIP-157)", () => {
  it("lists agents without their schemas and examples by default, and with everything for AGENT_VIEW_FULL", async () => {
    const orch = orchestrator();
    const basic = await orch.listAgents({ pageSize: 1000 });
    const full = await orch.listAgents({ pageSize: 1000, view: AgentView.FULL });
    expect(basic.totalSize).toBe(70);
    expect(full.agents.map((a) => a.name)).toEqual(basic.agents.map((a) => a.name));
    const icp = (r: typeof basic) => r.agents.find((a) => a.name === "agents/icp_builder")!;
    expect(icp(full).inputSchema).toBeDefined();
    expect(icp(full).outputSchema).toBeDefined();
    expect(icp(full).examples.length).toBeGreaterThan(0);
    expect(icp(basic)).toMatchObject({ system: AgentSystem.V1, displayName: icp(full).displayName, tools: icp(full).tools, examples: [] });
    expect(icp(basic).inputSchema).toBeUndefined();
    expect(icp(basic).outputSchema).toBeUndefined();
    // What the view is for: the catalog's size on the wire.
    expect(toBinary(ListAgentsResponseSchema, basic).length).toBeLessThan(toBinary(ListAgentsResponseSchema, full).length / 3);
    // The catalog itself keeps its schemas (the router and the planner read them).
    expect(agents.find((a) => a.name === "agents/icp_builder")!.inputSchema).toBeDefined();
  });

  it("a page token is good only for the view it was made for", async () => {
    const orch = orchestrator();
    const first = await orch.listAgents({ pageSize: 10 });
    await expect(orch.listAgents({ pageSize: 10, pageToken: first.nextPageToken, view: AgentView.FULL })).rejects.toThrow(/page_token/);
  });
});

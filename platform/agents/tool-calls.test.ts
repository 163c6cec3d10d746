import { createClient, createRouterTransport } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { startLoopbackOpenAI, type LoopbackOpenAI } from "../../test/support/openai-loopback.js";
import { createOpenAIProvider } from "../llm/openai-provider.js";
import { llmTools } from "../tools/llm-tools.js";
import { createAgentServiceImpl } from "./agent-service.js";
import { loadCatalog } from "./catalog.js";

let server: LoopbackOpenAI;
beforeAll(async () => {
  server = await startLoopbackOpenAI();
});
afterAll(async () => {
  await server.close();
});

const client = () => {
  const provider = createOpenAIProvider({ apiKey: "k", baseURL: server.baseURL, models: { fast: "m", capable: "m" }, maxRetries: 0 });
  const impl = createAgentServiceImpl({ catalog: loadCatalog("services/v1-agents"), provider, tools: llmTools });
  return createClient(AgentService, createRouterTransport(({ service }) => service(AgentService, impl)));
};

type Sent = { tools?: { function: { name: string; parameters: { type: string } } }[]; messages: { role: string; content: string | null }[] };

describe("numeric tools called by the model", () => {
  it("offers an agent exactly its catalog's tools, runs the model's call, and gives the model the result", async () => {
    // monetization may call kpi_calculator (its catalog entry says so).
    server.script({ kind: "tool_call", name: "kpi_calculator", arguments: { calculations: [{ metric: "cac", spend: 12000, newCustomers: 40 }] } });
    const res = await client().runAgent({ name: "agents/monetization", input: "What is our CAC if we spent 12,000 for 40 customers?" });
    const first = server.requests.at(-2) as Sent;
    expect(first.tools?.map((t) => t.function.name)).toEqual(["kpi_calculator"]);
    expect(first.tools?.[0].function.parameters.type).toBe("object");
    const second = server.requests.at(-1) as Sent;
    const toolMessage = second.messages.find((m) => m.role === "tool");
    expect(JSON.parse(toolMessage!.content!)).toMatchObject({ results: [{ metric: "cac", value: 300 }] });
    expect(res.toolCalls).toHaveLength(1);
    expect(res.toolCalls[0].name).toBe("kpi_calculator");
    expect(JSON.parse(res.toolCalls[0].result)).toMatchObject({ results: [{ value: 300 }] });
    expect(res.usage?.calls).toBe(2);
  });

  it("sends a tool's error back to the model, which can answer anyway", async () => {
    server.script({ kind: "tool_call", name: "kpi_calculator", arguments: { calculations: [{ metric: "cac", spend: 100, newCustomers: 0 }] } });
    const res = await client().runAgent({ name: "agents/monetization", input: "CAC with no customers?" });
    expect(JSON.parse(res.toolCalls[0].result).error).toMatch(/newCustomers/);
    expect(Object.keys(res.output ?? {}).length).toBeGreaterThan(0);
  });

  it("offers no tools to an agent whose catalog names none", async () => {
    await client().runAgent({ name: "agents/muse", input: "Give me three hooks for a bakery" });
    expect((server.requests.at(-1) as Sent).tools).toBeUndefined();
  });
});

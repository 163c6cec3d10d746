import { readFileSync } from "node:fs";
import type { JsonObject } from "@bufbuild/protobuf";
import { createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { Ajv } from "ajv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { startLoopbackOpenAI, type LoopbackOpenAI } from "../../test/support/openai-loopback.js";
import { fillSchema } from "../llm/json-schema.js";
import { createOfflineProvider } from "../llm/offline-provider.js";
import { createOpenAIProvider } from "../llm/openai-provider.js";
import { createAgentServiceImpl } from "./agent-service.js";
import { loadCatalog, type Catalog } from "./catalog.js";

// Every agent of both catalogs runs end to end — the original V2 system listed
// 54 agents but could run 17 — through the offline provider and through the
// real `openai` client against a loopback Chat Completions server, and the
// answer of every agent with schemas satisfies its output schema.
const catalogs: [string, Catalog][] = [
  ["V1", loadCatalog("services/v1-agents")],
  ["V2", loadCatalog("services/v2-agents")],
];

/** declared holds the ids of agents whose catalog entry has both schemas (not derived from key lists). */
const declared = new Set(
  ["services/v1-agents", "services/v2-agents"].flatMap((dir) =>
    (JSON.parse(readFileSync(`${dir}/catalog.json`, "utf8")) as { agents: Record<string, unknown>[] }).agents
      .filter((a) => "input_schema" in a && "output_schema" in a)
      .map((a) => String(a.id)),
  ),
);

// An ajv of the test's own, apart from the runtime's, checks the answers.
const ajv = new Ajv({ allErrors: true, strict: true });

let server: LoopbackOpenAI;
beforeAll(async () => {
  server = await startLoopbackOpenAI();
});
afterAll(async () => {
  await server.close();
});

const clientOf = (catalog: Catalog, provider: "offline" | "openai"): Client<typeof AgentService> => {
  const p = provider === "offline" ? createOfflineProvider() : createOpenAIProvider({ apiKey: "k", baseURL: server.baseURL, models: { fast: "fast-m", capable: "capable-m" }, maxRetries: 0 });
  return createClient(AgentService, createRouterTransport(({ service }) => service(AgentService, createAgentServiceImpl({ catalog: catalog, provider: p }))));
};

describe.each(catalogs)("every %s agent", (_system, catalog) => {
  it("has the expected count", () => {
    expect(catalog.agents.length).toBe(_system === "V1" ? 16 : 54);
  });

  for (const provider of ["offline", "openai"] as const) {
    it.each(catalog.agents.map((a) => [a.id, a] as const))(`%s runs through the ${provider} provider and answers its output schema`, async (id, agent) => {
      const res = await clientOf(catalog, provider).runAgent({
        name: `agents/${id}`,
        input: `${agent.examples[0] ?? agent.description}`,
        // Parameters that fit the input schema: a value for every input field.
        parameters: fillSchema(agent.inputSchema, (label) => `sample ${label}`) as JsonObject,
      });
      expect(res.agent).toBe(`agents/${id}`);
      expect(res.provider).toBe(provider);
      expect(Object.keys(res.output ?? {})).toEqual(agent.outputs);
      expect(res.promptVersion).toBe(agent.promptVersion);
      // The first answer fitted: no repair was needed.
      expect(res.usage?.calls).toBe(1);
      if (declared.has(id)) {
        const validate = ajv.compile(agent.outputSchema);
        expect(validate(res.output), JSON.stringify(validate.errors)).toBe(true);
      }
    });
  }
});

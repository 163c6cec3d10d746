import { join } from "node:path";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AgentService, AgentSystem, ModelTier, type AgentEvent } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import type { JsonSchema } from "../llm/json-schema.js";
import type { LlmChunk, LlmProvider, LlmRequest, ToolCall } from "../llm/llm-provider.js";
import { createOfflineProvider } from "../llm/offline-provider.js";
import { llmTools } from "../tools/llm-tools.js";
import { createAgentServiceImpl } from "./agent-service.js";
import { loadCatalog } from "./catalog.js";

const catalog = loadCatalog(join(import.meta.dirname, "..", "..", "services", "v2-agents"));

/** recording wraps the offline provider and records every request it sees, from complete and stream alike. */
function recording(): LlmProvider & { requests: LlmRequest[] } {
  const inner = createOfflineProvider();
  const requests: LlmRequest[] = [];
  return {
    name: inner.name,
    requests,
    model: (tier) => inner.model(tier),
    complete(req) {
      requests.push(req);
      return inner.complete(req);
    },
    stream(req) {
      requests.push(req);
      return inner.stream(req);
    },
  };
}

/** setup serves the V2 catalog on an in-memory transport and returns a client and the recording provider. */
function setup(): { client: Client<typeof AgentService>; provider: ReturnType<typeof recording> } {
  const provider = recording();
  const transport = createRouterTransport((router) => {
    router.service(AgentService, createAgentServiceImpl({ catalog, provider }));
  });
  return { client: createClient(AgentService, transport), provider };
}

/** errorOf awaits p and returns the ConnectError it fails with. */
async function errorOf(p: Promise<unknown>): Promise<ConnectError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ConnectError);
  return e as ConnectError;
}

const adVariants = catalog.get("ad_variants")!;

/** enums lists the enum arrays of a schema and its subschemas. */
function enums(schema: JsonSchema): (readonly string[])[] {
  return [schema.enum ?? [], ...Object.values(schema.properties ?? {}).flatMap(enums), ...(schema.items ? enums(schema.items) : [])];
}

/** strings lists every string inside a JSON value. */
function strings(v: unknown): string[] {
  if (typeof v === "string") return [v];
  if (Array.isArray(v)) return v.flatMap(strings);
  if (v && typeof v === "object") return Object.values(v).flatMap(strings);
  return [];
}

describe("AgentService over the V2 catalog", () => {
  it("ListAgents returns a first page of the default size 50, then the remaining 4", async () => {
    const { client } = setup();
    const p1 = await client.listAgents({});
    expect(p1.agents).toHaveLength(50);
    expect(p1.totalSize).toBe(54);
    expect(p1.nextPageToken).not.toBe("");
    const p2 = await client.listAgents({ pageToken: p1.nextPageToken });
    expect(p2.agents).toHaveLength(4);
    expect(p2.nextPageToken).toBe("");
    const all = [...p1.agents, ...p2.agents];
    expect(all.map((a) => a.name)).toEqual(catalog.agents.map((a) => `agents/${a.id}`));
    expect(all.every((a) => a.system === AgentSystem.V2)).toBe(true);
  });

  it("ListAgents paginates through every agent once", async () => {
    const { client } = setup();
    const names: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const res = await client.listAgents({ pageSize: 20, pageToken });
      expect(res.agents.length).toBeLessThanOrEqual(20);
      expect(res.totalSize).toBe(54);
      names.push(...res.agents.map((a) => a.name));
      pageToken = res.nextPageToken;
      pages++;
    } while (pageToken !== "" && pages < 10);
    expect(pages).toBe(3);
    expect(names).toEqual(catalog.agents.map((a) => `agents/${a.id}`));
  });

  it("ListAgents filters by department: creative has 7", async () => {
    const { client } = setup();
    const res = await client.listAgents({ department: "creative" });
    expect(res.agents).toHaveLength(7);
    expect(res.totalSize).toBe(7);
    expect(res.agents.every((a) => a.department === "creative")).toBe(true);
    expect(res.agents.map((a) => a.name)).toContain("agents/ad_variants");
  });

  it("ListAgents pages within a department", async () => {
    const { client } = setup();
    const p1 = await client.listAgents({ department: "creative", pageSize: 5 });
    expect(p1.agents).toHaveLength(5);
    const p2 = await client.listAgents({ department: "creative", pageSize: 5, pageToken: p1.nextPageToken });
    expect(p2.agents).toHaveLength(2);
    expect(p2.nextPageToken).toBe("");
    expect(p2.agents.every((a) => a.department === "creative")).toBe(true);
  });

  it("ListAgents rejects a page token from another department with INVALID_ARGUMENT", async () => {
    const { client } = setup();
    const p1 = await client.listAgents({ department: "creative", pageSize: 5 });
    const err = await errorOf(client.listAgents({ department: "analytics", pageSize: 5, pageToken: p1.nextPageToken }));
    expect(err.code).toBe(Code.InvalidArgument);
  });

  it("ListAgents returns nothing for an unknown department", async () => {
    const { client } = setup();
    const res = await client.listAgents({ department: "no_such_department" });
    expect(res.agents).toHaveLength(0);
    expect(res.totalSize).toBe(0);
  });

  it("GetAgent returns the agent's resource", async () => {
    const { client } = setup();
    const a = await client.getAgent({ name: "agents/ad_variants" });
    expect(a.name).toBe("agents/ad_variants");
    expect(a.displayName).toBe(adVariants.displayName);
    expect(a.department).toBe("creative");
    expect(a.outputs).toEqual(adVariants.outputs);
    expect(a.defaultModelTier).toBe(adVariants.modelTier === "fast" ? ModelTier.FAST : ModelTier.CAPABLE);
    expect(a.inputSchema).toEqual(adVariants.inputSchema);
    expect(a.outputSchema).toEqual(adVariants.outputSchema);
    expect(Object.keys(a.outputSchema ?? {})).toContain("properties");
  });

  it("ListAgents gives every agent its input and output schemas", async () => {
    const { client } = setup();
    const res = await client.listAgents({ pageSize: 100 });
    for (const a of res.agents) {
      const def = catalog.get(a.name.slice("agents/".length))!;
      expect(a.inputSchema, a.name).toEqual(def.inputSchema);
      expect(a.outputSchema, a.name).toEqual(def.outputSchema);
    }
  });

  it("GetAgent insists on the agents/ prefix even without request validation", async () => {
    const { client } = setup();
    expect((await errorOf(client.getAgent({ name: "XXXXXXXad_variants" }))).code).toBe(Code.NotFound);
  });

  it("GetAgent of an unknown agent is NOT_FOUND", async () => {
    const { client } = setup();
    const err = await errorOf(client.getAgent({ name: "agents/no_such_agent" }));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toContain("agents/no_such_agent");
  });

  it("RunAgent of an unknown agent is NOT_FOUND and calls no model", async () => {
    const { client, provider } = setup();
    const err = await errorOf(client.runAgent({ name: "agents/no_such_agent", input: "hello" }));
    expect(err.code).toBe(Code.NotFound);
    expect(provider.requests).toHaveLength(0);
  });

  it("RunAgent returns exactly the agent's output keys from the offline provider, with usage", async () => {
    const { client, provider } = setup();
    const res = await client.runAgent({ name: "agents/ad_variants", input: "Write LinkedIn ads for our electric bike launch" });
    expect(res.agent).toBe("agents/ad_variants");
    expect(res.system).toBe(AgentSystem.V2);
    expect(Object.keys(res.output ?? {})).toEqual(adVariants.outputs);
    // Outputs are typed values (objects, arrays, numbers); every string in them is the offline provider's or an enum member.
    const members = new Set(strings(enums(adVariants.outputSchema)));
    for (const v of strings(res.output)) if (!members.has(v)) expect(v).toMatch(/^\[offline\]/);
    expect(res.provider).toBe("offline");
    expect(res.model).toMatch(/^offline-/);
    expect(res.promptVersion).toBe(adVariants.promptVersion);
    expect(res.usage?.calls).toBe(1);
    expect(res.usage?.inputTokens).toBeGreaterThan(0n);
    expect(res.usage?.outputTokens).toBeGreaterThan(0n);
    expect(provider.requests).toHaveLength(1);
    expect(provider.requests[0].system).toBe(adVariants.systemPrompt);
  });

  it("RunAgent uses the requested model tier over the agent's default", async () => {
    const { client, provider } = setup();
    const other = adVariants.modelTier === "fast" ? ModelTier.CAPABLE : ModelTier.FAST;
    const res = await client.runAgent({ name: "agents/ad_variants", input: "ads please", modelTier: other });
    expect(res.modelTier).toBe(other);
    expect(provider.requests[0].tier).toBe(other === ModelTier.FAST ? "fast" : "capable");
  });

  it("RunAgent passes the shared context and parameters to the model", async () => {
    const { client, provider } = setup();
    const context = { market_intel: { segments: ["urban commuters", "students"], note: "prices rising" } };
    const parameters = { platform: "linkedin", offer: "free helmet" };
    await client.runAgent({ name: "agents/ad_variants", input: "Write ads", context, parameters });
    const prompt = provider.requests[0].prompt;
    expect(prompt).toContain("## Shared context");
    expect(prompt).toContain("urban commuters");
    expect(prompt).toContain("prices rising");
    expect(prompt).toContain("market_intel");
    expect(prompt).toContain("free helmet");
  });

  it("StreamAgent yields started, then deltas, then the result last", async () => {
    const { client, provider } = setup();
    const context = { brand_memory: { voice: "playful but precise" } };
    const events: AgentEvent["event"][] = [];
    for await (const ev of client.streamAgent({ name: "agents/ad_variants", input: "Write LinkedIn ads for our bike launch", context })) {
      events.push(ev.event);
    }
    expect(events[0].case).toBe("started");
    expect(events[0].case === "started" && events[0].value).toMatchObject({ agent: "agents/ad_variants", provider: "offline" });
    const last = events.at(-1)!;
    expect(last.case).toBe("result");
    const middle = events.slice(1, -1);
    expect(middle.length).toBeGreaterThan(0);
    expect(middle.every((e) => e.case === "delta")).toBe(true);

    const text = middle.map((e) => (e.case === "delta" ? e.value : "")).join("");
    const result = last.case === "result" ? last.value : undefined;
    expect(JSON.parse(text)).toEqual(result?.output);
    expect(Object.keys(result?.output ?? {}).sort()).toEqual([...adVariants.outputs].sort());
    expect(result?.provider).toBe("offline");
    expect(result?.usage?.calls).toBe(1);
    expect(provider.requests).toHaveLength(1);
    expect(provider.requests[0].prompt).toContain("playful but precise");
  });

  it("StreamAgent reports each tool the model called as a toolCall event before the result, which lists it too", async () => {
    // A provider whose model calls the first tool it is offered, then answers as the offline provider does.
    const offline = createOfflineProvider();
    const calling: LlmProvider = {
      name: "calling",
      model: (tier) => offline.model(tier),
      complete: (req) => offline.complete(req),
      async *stream(req): AsyncIterable<LlmChunk> {
        const tool = req.tools?.[0];
        if (!tool) throw new Error("no tool was offered");
        const args = { calculations: [{ metric: "cac", spend: 12000, newCustomers: 40 }] };
        const call: ToolCall = { name: tool.name, arguments: JSON.stringify(args), result: await tool.invoke(args) };
        yield { tool: call };
        for await (const c of offline.stream(req)) {
          if ("done" in c) yield { done: { ...c.done, rounds: 2, toolCalls: [call] } };
          else yield c;
        }
      },
    };
    const transport = createRouterTransport((router) => {
      router.service(AgentService, createAgentServiceImpl({ catalog, provider: calling, tools: llmTools }));
    });
    const events: AgentEvent["event"][] = [];
    for await (const ev of createClient(AgentService, transport).streamAgent({ name: "agents/revenue_model", input: "What is our CAC at 12,000 spend for 40 customers?" })) {
      events.push(ev.event);
    }
    expect(events.map((e) => e.case).filter((c, i, all) => c !== all[i - 1])).toEqual(["started", "toolCall", "delta", "result"]);
    const toolCalls = events.flatMap((e) => (e.case === "toolCall" ? [e.value] : []));
    expect(toolCalls.map((c) => c.name)).toEqual(["kpi_calculator"]);
    expect(JSON.parse(toolCalls[0].result)).toMatchObject({ results: [{ metric: "cac", value: 300 }] });
    const last = events.at(-1)!;
    const result = last.case === "result" ? last.value : undefined;
    expect(result?.toolCalls).toEqual(toolCalls);
    expect(result?.usage?.calls).toBe(2);
  });

  it("StreamAgent of an unknown agent is NOT_FOUND", async () => {
    const { client } = setup();
    const err = await errorOf(
      (async () => {
        for await (const _ of client.streamAgent({ name: "agents/no_such_agent", input: "hi" })) void _;
      })(),
    );
    expect(err.code).toBe(Code.NotFound);
  });
});

describe("input validation over the V1 catalog", () => {
  const v1 = loadCatalog(join(import.meta.dirname, "..", "..", "services", "v1-agents"));
  const v1Setup = () => {
    const provider = recording();
    const transport = createRouterTransport((router) => router.service(AgentService, createAgentServiceImpl({ catalog: v1, provider })));
    return { client: createClient(AgentService, transport), provider };
  };

  it("RunAgent with parameters that break the input schema is INVALID_ARGUMENT naming the field, and calls no model", async () => {
    const { client, provider } = v1Setup();
    const err = await errorOf(
      client.runAgent({ name: "agents/plan_generator", input: "Plan our launch", parameters: { budget: "5000", timeline_weeks: 8, channels: ["email"] } }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("parameters.budget: must be number");
    expect(err.rawMessage).toContain("agents/plan_generator");
    expect(provider.requests).toHaveLength(0);
  });

  it("StreamAgent with bad parameters fails the same way before it starts", async () => {
    const { client, provider } = v1Setup();
    const events: AgentEvent["event"][] = [];
    const err = await errorOf(
      (async () => {
        for await (const ev of client.streamAgent({ name: "agents/plan_generator", input: "Plan our launch", parameters: { timeline_weeks: 0.5 } })) events.push(ev.event);
      })(),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("parameters.timeline_weeks: must be integer");
    expect(events).toHaveLength(0);
    expect(provider.requests).toHaveLength(0);
  });

  it("accepts parameters the schema does not name, since one run's parameters reach several agents", async () => {
    const { client } = v1Setup();
    const res = await client.runAgent({ name: "agents/plan_generator", input: "Plan our launch", parameters: { budget: 5000, region: "EU", brief: { any: "shape" } } });
    expect(res.output?.plan_summary).toMatchObject({ budget_usd: expect.any(Number) });
  });

  it("RunAgent and StreamAgent send the agent's output schema to the provider, and the answer is typed", async () => {
    const { client, provider } = v1Setup();
    const tags = v1.get("cohort_tag_generator")!;
    const res = await client.runAgent({ name: "agents/cohort_tag_generator", input: "Tag our trail-running cohort" });
    for await (const _ of client.streamAgent({ name: "agents/cohort_tag_generator", input: "Tag our trail-running cohort" })) void _;
    expect(provider.requests.map((r) => r.outputSchema)).toEqual([tags.outputSchema, tags.outputSchema]);
    expect(res.output?.interest_tags).toHaveLength(50);
    expect(res.summary).toContain("interest_tags");
  });
});

describe("the result cache", () => {
  it("serves an identical call from the cache, marked cached and with zero usage; no-cache opts out", async () => {
    const { createMemoryKeyValueStore } = await import("../kv/memory-kv-store.js");
    const { createResultCache } = await import("../kv/result-cache.js");
    const { createRouterTransport, createClient } = await import("@connectrpc/connect");
    const { AgentService } = await import("../../gen/raptorflow/agent/v1/agent_pb.js");
    const { loadCatalog } = await import("./catalog.js");
    const { createOfflineProvider } = await import("../llm/offline-provider.js");
    const base = createOfflineProvider();
    let calls = 0;
    const provider = { ...base, complete: (req: Parameters<typeof base.complete>[0]) => (calls++, base.complete(req)) };
    const impl = createAgentServiceImpl({
      catalog: loadCatalog("services/v2-agents"),
      provider,
      cache: createResultCache(createMemoryKeyValueStore(), 60_000),
    });
    const client = createClient(AgentService, createRouterTransport(({ service }) => service(AgentService, impl)));
    const first = await client.runAgent({ name: "agents/copywriter", input: "Write a tagline  for our bakery" });
    const second = await client.runAgent({ name: "agents/copywriter", input: "Write a tagline for our bakery" });
    expect(calls).toBe(1);
    expect(first.cached).toBe(false);
    expect(second.cached).toBe(true);
    expect(second.output).toEqual(first.output);
    expect(second.usage?.inputTokens ?? 0n).toBe(0n);
    const other = await client.runAgent({ name: "agents/copywriter", input: "Write a tagline for our bakery", context: { icp_builder: { icp: "families" } } });
    expect(other.cached).toBe(false);
    const bypass = await client.runAgent({ name: "agents/copywriter", input: "Write a tagline for our bakery" }, { headers: { "cache-control": "no-cache" } });
    expect(bypass.cached).toBe(false);
    expect(calls).toBe(3);
  });

  it("a failing store is a miss, not an error", async () => {
    const { createResultCache } = await import("../kv/result-cache.js");
    const { createRedisKeyValueStore } = await import("../kv/redis-kv-store.js");
    const kv = createRedisKeyValueStore("redis://127.0.0.1:1");
    const warnings: string[] = [];
    const cache = createResultCache(kv, 1000, (m) => warnings.push(m));
    expect(await cache.get("k")).toBeUndefined();
    await cache.set("k", "v");
    expect(warnings).toHaveLength(1);
    await kv.close();
  });
});

import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { AgentService } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { startLoopbackOpenAI, type LoopbackOpenAI } from "../../test/support/openai-loopback.js";
import { createAgentServiceImpl } from "../agents/agent-service.js";
import { loadCatalog } from "../agents/catalog.js";
import { llmTools } from "../tools/llm-tools.js";
import type { LlmChunk, LlmTool } from "./llm-provider.js";
import { createOpenAIProvider, type OpenAIProviderOptions } from "./openai-provider.js";
import { providerFromEnv } from "./provider-from-env.js";

let server: LoopbackOpenAI;
beforeAll(async () => {
  server = await startLoopbackOpenAI();
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => {
  server.requests.length = 0;
});

const provider = (o: Partial<OpenAIProviderOptions> = {}) =>
  createOpenAIProvider({ apiKey: "test", baseURL: server.baseURL, models: { fast: "small-model", capable: "big-model" }, timeoutMs: 1000, maxRetries: 1, ...o });
const req = { system: "You are a copywriter.", prompt: "## Request\nWrite a tagline", tier: "fast" as const, outputKeys: ["headline", "variants"] };

const errorOf = async (p: Promise<unknown>) => ConnectError.from(await p.then(() => undefined, (e: unknown) => e));
const drain = async (s: AsyncIterable<LlmChunk>) => {
  const chunks: LlmChunk[] = [];
  for await (const c of s) chunks.push(c);
  return chunks;
};
const kpiCalculator = llmTools.find((t) => t.name === "kpi_calculator")!;

/** Sent is the part of a Chat Completions request the tool-round tests read. */
type Sent = {
  stream?: boolean;
  tools?: { function: { name: string } }[];
  messages: { role: string; content: string | null; tool_call_id?: string; tool_calls?: { id: string; type: string; function: { name: string; arguments: string } }[] }[];
};

describe("the OpenAI provider against a loopback Chat Completions server", () => {
  it("sends the system prompt, the user turn, the tier's model and a JSON schema naming the output keys", async () => {
    const res = await provider().complete(req);
    expect(JSON.parse(res.text)).toEqual({ headline: "loopback headline", variants: "loopback variants" });
    expect(res.model).toBe("small-model");
    expect(res.usage.inputTokens).toBe(42);
    const sent = server.requests[0] as { model: string; messages: { role: string; content: string }[]; response_format: { json_schema: { schema: { required: string[] } } } };
    expect(sent.model).toBe("small-model");
    expect(sent.messages.map((m) => m.role)).toEqual(["system", "user"]);
    expect(sent.messages[0].content).toBe("You are a copywriter.");
    expect(sent.response_format.json_schema.schema.required).toEqual(["headline", "variants"]);
    expect((await provider().complete({ ...req, tier: "capable" })).model).toBe("big-model");
  });

  it("asks for a request's output schema, strict when it is in the strict subset, and not strict otherwise", async () => {
    const outputSchema = {
      type: "object",
      properties: { headline: { type: "string", description: "The headline.", maxLength: 60 }, score: { type: "integer", description: "1-10.", minimum: 1, maximum: 10 } },
      required: ["headline", "score"],
      additionalProperties: false,
    };
    const res = await provider().complete({ ...req, outputKeys: ["headline", "score"], outputSchema });
    type Format = { response_format: { json_schema: { schema: unknown; strict?: boolean } } };
    const strict = (server.requests.at(-1) as Format).response_format.json_schema;
    expect(strict.schema).toEqual(outputSchema);
    expect(strict.strict).toBe(true);
    expect(JSON.parse(res.text)).toEqual({ headline: "loopback headline", score: 10 });

    const open = { ...outputSchema, additionalProperties: true };
    await provider().complete({ ...req, outputKeys: ["headline", "score"], outputSchema: open });
    expect((server.requests.at(-1) as Format).response_format.json_schema).toMatchObject({ schema: open, strict: false });

    await provider().complete(req);
    const keysOnly = (server.requests.at(-1) as Format).response_format.json_schema;
    expect(keysOnly.strict).toBe(false);
    expect(keysOnly.schema).toMatchObject({ type: "object", required: ["headline", "variants"] });
  });

  it("streams deltas whose concatenation is the answer, then the usage", async () => {
    let text = "";
    let done;
    for await (const c of provider().stream(req)) {
      if ("delta" in c) text += c.delta;
      else if ("done" in c) done = c.done;
    }
    expect(JSON.parse(text)).toEqual({ headline: "loopback headline", variants: "loopback variants" });
    expect(done?.text).toBe(text);
    expect(done?.usage.inputTokens).toBe(42);
  });

  it("streams a call with tool rounds: the calls put together from their fragments, each tool's answer as it comes, then the answer's deltas, then the response", async () => {
    const cac = { calculations: [{ metric: "cac", spend: 12000, newCustomers: 40 }] };
    const roas = { calculations: [{ metric: "roas", revenue: 18000, adSpend: 4000 }] };
    server.script({ kind: "tool_calls", calls: [{ name: "kpi_calculator", arguments: cac }, { name: "kpi_calculator", arguments: roas }] });
    const chunks = await drain(provider().stream({ ...req, tools: [kpiCalculator] }));

    const kinds = chunks.map((c) => Object.keys(c)[0]);
    expect(kinds.filter((k, i) => k !== kinds[i - 1])).toEqual(["tool", "delta", "done"]);
    const tools = chunks.flatMap((c) => ("tool" in c ? [c.tool] : []));
    expect(tools.map((t) => [t.name, JSON.parse(t.arguments)])).toEqual([["kpi_calculator", cac], ["kpi_calculator", roas]]);
    expect(JSON.parse(tools[0].result)).toMatchObject({ results: [{ metric: "cac", value: 300 }] });
    expect(JSON.parse(tools[1].result)).toMatchObject({ results: [{ metric: "roas", value: 4.5 }] });
    const answerText = chunks.map((c) => ("delta" in c ? c.delta : "")).join("");
    expect(JSON.parse(answerText)).toEqual({ headline: "loopback headline", variants: "loopback variants" });

    const done = chunks.at(-1);
    expect(done && "done" in done && done.done).toMatchObject({ text: answerText, model: "small-model", rounds: 2, toolCalls: tools });
    expect(done && "done" in done && done.done.usage).toEqual({ inputTokens: 30 + 42, outputTokens: 10 + Math.ceil(answerText.length / 4) });

    const [first, second] = server.requests as Sent[];
    expect(first.stream).toBe(true);
    expect(second.stream).toBe(true);
    expect(first.tools?.map((t) => t.function.name)).toEqual(["kpi_calculator"]);
    expect(second.messages.map((m) => m.role)).toEqual(["system", "user", "assistant", "tool", "tool"]);
    expect(second.messages[2].content).toBeNull();
    expect(second.messages[2].tool_calls).toEqual([
      { id: "call_1_0", type: "function", function: { name: "kpi_calculator", arguments: JSON.stringify(cac) } },
      { id: "call_1_1", type: "function", function: { name: "kpi_calculator", arguments: JSON.stringify(roas) } },
    ]);
    expect(second.messages.slice(3).map((m) => [m.tool_call_id, m.content])).toEqual([["call_1_0", tools[0].result], ["call_1_1", tools[1].result]]);
  });

  it("in a stream, streams a tool round's own text, sends a tool's error and an unknown tool back to the model, and the last round offers no tools", async () => {
    const failing: LlmTool = { name: "flaky", description: "Fails.", parameters: { type: "object", properties: {} }, invoke: async () => Promise.reject(new Error("the index is down")) };
    server.script({ kind: "tool_calls", content: "Checking the index.", calls: [{ name: "flaky", arguments: {} }, { name: "missing", arguments: {} }] }, { kind: "tool_call", name: "flaky", arguments: {} });
    const chunks = await drain(provider({ maxToolRounds: 2 }).stream({ ...req, tools: [failing] }));
    expect(chunks.slice(0, 2)).toEqual([{ delta: "Checking t" }, { delta: "he index." }]);
    const tools = chunks.flatMap((c) => ("tool" in c ? [c.tool] : []));
    expect(tools.map((t) => [t.name, t.result])).toEqual([
      ["flaky", JSON.stringify({ error: "the index is down" })],
      ["missing", JSON.stringify({ error: 'there is no tool named "missing"' })],
      ["flaky", JSON.stringify({ error: "the index is down" })],
    ]);
    const sent = server.requests as Sent[];
    expect(sent).toHaveLength(3);
    expect(sent[1].messages.slice(2).map((m) => [m.role, m.content])).toEqual([["assistant", "Checking the index."], ["tool", tools[0].result], ["tool", tools[1].result]]);
    expect(sent[0].tools).toHaveLength(1);
    expect(sent[1].tools).toHaveLength(1);
    expect(sent[2].tools).toBeUndefined();
    const done = chunks.at(-1);
    expect(done && "done" in done && done.done.rounds).toBe(3);
    // The response's text is the last round's answer, as in complete.
    expect(JSON.parse(done && "done" in done ? done.done.text : "").headline).toBe("loopback headline");
  });

  it("complete runs the same rounds without streaming", async () => {
    server.script({ kind: "tool_calls", calls: [{ name: "kpi_calculator", arguments: { calculations: [{ metric: "cac", spend: 100, newCustomers: 4 }] } }] });
    const res = await provider().complete({ ...req, tools: [kpiCalculator] });
    expect(res.rounds).toBe(2);
    expect(res.usage.inputTokens).toBe(30 + 42);
    expect(JSON.parse(res.toolCalls?.[0].result ?? "")).toMatchObject({ results: [{ metric: "cac", value: 25 }] });
    const [first, second] = server.requests as Sent[];
    expect(first.stream).toBeUndefined();
    expect(second.messages.map((m) => m.role)).toEqual(["system", "user", "assistant", "tool"]);
  });

  it("a request that fails in a later round of a stream fails the stream with its code", async () => {
    server.script({ kind: "tool_call", name: "kpi_calculator", arguments: { calculations: [{ metric: "cac", spend: 100, newCustomers: 4 }] } }, { kind: "status", status: 400 });
    const failed = await errorOf(drain(provider().stream({ ...req, tools: [kpiCalculator] })));
    expect(failed.code).toBe(Code.InvalidArgument);
    expect(server.requests).toHaveLength(2);
  });

  it("retries a 429 after its Retry-After, then succeeds", async () => {
    server.script({ kind: "status", status: 429, retryAfter: "0" });
    const res = await provider().complete(req);
    expect(JSON.parse(res.text).headline).toBe("loopback headline");
    expect(server.requests).toHaveLength(2);
  });

  it("maps what still fails after retries to clear codes: 429 RESOURCE_EXHAUSTED, 5xx UNAVAILABLE, 401 FAILED_PRECONDITION, timeout DEADLINE_EXCEEDED", async () => {
    server.script({ kind: "status", status: 429, retryAfter: "0" }, { kind: "status", status: 429, retryAfter: "0" });
    expect((await errorOf(provider().complete(req))).code).toBe(Code.ResourceExhausted);
    server.script({ kind: "status", status: 503 }, { kind: "status", status: 503 });
    expect((await errorOf(provider().complete(req))).code).toBe(Code.Unavailable);
    server.script({ kind: "status", status: 401 });
    expect((await errorOf(provider().complete(req))).code).toBe(Code.FailedPrecondition);
    server.script({ kind: "delay", ms: 1500 }, { kind: "delay", ms: 1500 });
    expect((await errorOf(provider().complete(req))).code).toBe(Code.DeadlineExceeded);
  });

  it("runs a real agent end to end: malformed output is repaired once, twice-malformed fails clearly", async () => {
    const impl = createAgentServiceImpl({ catalog: loadCatalog("services/v2-agents"), provider: provider() });
    const client = createClient(AgentService, createRouterTransport(({ service }) => service(AgentService, impl)));
    const ok = await client.runAgent({ name: "agents/copywriter", input: "Write a tagline for our bakery" });
    expect(ok.provider).toBe("openai");
    expect(ok.model).toBe("big-model");
    expect(Object.keys(ok.output ?? {}).length).toBeGreaterThan(0);

    server.script({ kind: "ok", content: "Sure! Here is your copy: (no JSON)" });
    const repaired = await client.runAgent({ name: "agents/copywriter", input: "Write a tagline for our bakery" });
    expect(repaired.usage?.calls).toBe(2);
    const repairPrompt = (server.requests.at(-1) as { messages: { content: string }[] }).messages[1].content;
    expect(repairPrompt).toContain("Your previous answer was rejected");

    server.script({ kind: "ok", content: "not json" }, { kind: "ok", content: "{\"wrong\": 1}" });
    const failed = await errorOf(client.runAgent({ name: "agents/copywriter", input: "Write a tagline for our bakery" }));
    expect(failed.code).toBe(Code.Internal);
    expect(failed.rawMessage).toContain("invalid answer twice");
  });
});

describe("cost", () => {
  it("prices each call from the model's price table (published list prices for gpt-4o-mini)", async () => {
    const priced = createOpenAIProvider({ apiKey: "test", baseURL: server.baseURL, models: { fast: "gpt-4o-mini", capable: "gpt-4o-mini" }, maxRetries: 0 });
    const impl = createAgentServiceImpl({ catalog: loadCatalog("services/v2-agents"), provider: priced });
    const client = createClient(AgentService, createRouterTransport(({ service }) => service(AgentService, impl)));
    const res = await client.runAgent({ name: "agents/copywriter", input: "Write a tagline for our bakery" });
    const inTok = Number(res.usage?.inputTokens);
    const outTok = Number(res.usage?.outputTokens);
    expect(inTok).toBe(42);
    expect(res.usage?.costUsd).toBeCloseTo((inTok * 0.15 + outTok * 0.6) / 1_000_000, 12);
  });
});

describe("providerFromEnv", () => {
  it("chooses OpenAI by configuration alone, and an OpenAI-compatible local server by base URL", () => {
    expect(providerFromEnv({ LLM_PROVIDER: "openai", OPENAI_API_KEY: "k" }).name).toBe("openai");
    const local = providerFromEnv({ LLM_PROVIDER: "openai", OPENAI_BASE_URL: server.baseURL, OPENAI_MODEL_FAST: "llama3" });
    expect(local.name).toBe("openai-compatible");
    expect(local.model("fast")).toBe("llama3");
    expect(() => providerFromEnv({ LLM_PROVIDER: "openai" })).toThrow(/OPENAI_API_KEY/);
  });
});

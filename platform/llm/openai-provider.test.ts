import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { AgentService } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { startLoopbackOpenAI, type LoopbackOpenAI } from "../../test/support/openai-loopback.js";
import { createAgentServiceImpl } from "../agents/agent-service.js";
import { loadCatalog } from "../agents/catalog.js";
import { createOpenAIProvider } from "./openai-provider.js";
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

const provider = () => createOpenAIProvider({ apiKey: "test", baseURL: server.baseURL, models: { fast: "small-model", capable: "big-model" }, timeoutMs: 1000, maxRetries: 1 });
const req = { system: "You are a copywriter.", prompt: "## Request\nWrite a tagline", tier: "fast" as const, outputKeys: ["headline", "variants"] };

const errorOf = async (p: Promise<unknown>) => ConnectError.from(await p.then(() => undefined, (e: unknown) => e));

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
      else done = c.done;
    }
    expect(JSON.parse(text)).toEqual({ headline: "loopback headline", variants: "loopback variants" });
    expect(done?.text).toBe(text);
    expect(done?.usage.inputTokens).toBe(42);
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

import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startLoopbackBedrock, type LoopbackBedrock } from "../../test/support/bedrock-loopback.js";
import { createBedrockProvider, type BedrockProviderOptions } from "./bedrock-provider.js";
import type { LlmChunk, LlmTool } from "./llm-provider.js";

let server: LoopbackBedrock;
beforeAll(async () => {
  server = await startLoopbackBedrock();
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => {
  server.requests.length = 0;
});

const models = { fast: "global.anthropic.claude-haiku-4-5-20251001-v1:0", capable: "global.anthropic.claude-sonnet-4-5-20250929-v1:0" };
const provider = (o: Partial<BedrockProviderOptions> = {}) =>
  createBedrockProvider({
    region: "us-east-1",
    endpoint: server.endpoint,
    credentials: { accessKeyId: "AKIDLOOPBACK", secretAccessKey: "loopback-secret" },
    models,
    maxRetries: 1,
    timeoutMs: 2000,
    ...o,
  });
const req = { system: "You are a copywriter.", prompt: "## Request\nWrite a tagline", tier: "fast" as const, outputKeys: ["headline", "variants"] };
const errorOf = async (p: Promise<unknown>) => ConnectError.from(await p.then(() => undefined, (e: unknown) => e));
const drain = async (s: AsyncIterable<LlmChunk>) => {
  const chunks: LlmChunk[] = [];
  for await (const c of s) chunks.push(c);
  return chunks;
};
const lookup: LlmTool = {
  name: "lookup_brand",
  description: "Looks up the brand's voice.",
  parameters: { type: "object", properties: { brand: { type: "string" } }, required: ["brand"] },
  invoke: async (args) => JSON.stringify({ voice: `warm for ${(args as { brand: string }).brand}` }),
};

describe("the Bedrock provider against a loopback Bedrock Runtime (Converse over HTTP/2)", () => {
  it("sends the system prompt with the answer's schema, the user turn and the tier's model, signed for bedrock in the region; answers with usage", async () => {
    const res = await provider().complete(req);
    expect(JSON.parse(res.text)).toEqual({ headline: "loopback headline", variants: "loopback variants" });
    expect(res.model).toBe(models.fast);
    expect(res.usage.inputTokens).toBe(42);
    expect(res.usage.outputTokens).toBeGreaterThan(0);
    expect(res.rounds).toBe(1);
    const sent = server.requests[0];
    expect(sent.modelId).toBe(models.fast);
    expect(sent.stream).toBe(false);
    expect(sent.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDLOOPBACK\/\d{8}\/us-east-1\/bedrock\/aws4_request/);
    expect(sent.body.system?.[0].text).toContain("You are a copywriter.");
    expect(sent.body.system?.[0].text).toContain('"required":["headline","variants"]');
    expect(sent.body.messages).toEqual([{ role: "user", content: [{ text: "## Request\nWrite a tagline" }] }]);
    expect(sent.body.toolConfig).toBeUndefined();
    await provider().complete({ ...req, tier: "capable" });
    expect(server.requests[1].modelId).toBe(models.capable);
  });

  it("uses the request's outputSchema when it has one", async () => {
    const outputSchema = { type: "object", properties: { headline: { type: "string" } }, required: ["headline"], additionalProperties: false };
    const res = await provider().complete({ ...req, outputSchema });
    expect(JSON.parse(res.text)).toEqual({ headline: "loopback headline" });
    expect(server.requests[0].body.system?.[0].text).toContain(JSON.stringify(outputSchema));
  });

  it("runs a tool round: toolUse blocks, the tools' answers as toolResults in one user turn, then the answer; usage is summed over both requests", async () => {
    const seen: unknown[] = [];
    const lookup: LlmTool = {
      name: "lookup_brand",
      description: "Looks up the brand's voice.",
      parameters: { type: "object", properties: { brand: { type: "string" } }, required: ["brand"] },
      invoke: async (args) => {
        seen.push(args);
        return JSON.stringify({ voice: `warm for ${(args as { brand: string }).brand}` });
      },
    };
    server.script({ kind: "tool_use", calls: [{ name: "lookup_brand", input: { brand: "Crumb" } }, { name: "lookup_brand", input: { brand: "Loaf" } }] });
    const res = await provider().complete({ ...req, tools: [lookup] });
    expect(seen).toEqual([{ brand: "Crumb" }, { brand: "Loaf" }]);
    expect(res.rounds).toBe(2);
    expect(res.toolCalls).toEqual([
      { name: "lookup_brand", arguments: '{"brand":"Crumb"}', result: '{"voice":"warm for Crumb"}' },
      { name: "lookup_brand", arguments: '{"brand":"Loaf"}', result: '{"voice":"warm for Loaf"}' },
    ]);
    expect(res.usage.inputTokens).toBe(30 + 42);
    const [first, second] = server.requests;
    expect(first.body.toolConfig?.tools[0].toolSpec).toMatchObject({ name: "lookup_brand", inputSchema: { json: lookup.parameters } });
    expect(second.body.messages.map((m) => m.role)).toEqual(["user", "assistant", "user"]);
    expect(second.body.messages[1].content.map((c) => (c.toolUse as { toolUseId: string }).toolUseId)).toEqual(["tooluse_1_0", "tooluse_1_1"]);
    const results = second.body.messages[2].content as { toolResult: { toolUseId: string } }[];
    expect(results.map((c) => c.toolResult.toolUseId)).toEqual(["tooluse_1_0", "tooluse_1_1"]);
    expect(JSON.stringify(results[1])).toContain("warm for Loaf");
  });

  it("sends a tool's error back to the model, and after the last tool round asks without tools (Bedrock accepts that history)", async () => {
    const failing: LlmTool = { name: "flaky", description: "Fails.", parameters: { type: "object", properties: {} }, invoke: async () => Promise.reject(new Error("the index is down")) };
    server.script({ kind: "tool_use", calls: [{ name: "flaky", input: {} }] }, { kind: "tool_use", calls: [{ name: "flaky", input: {} }] });
    const res = await provider({ maxToolRounds: 2 }).complete({ ...req, tools: [failing] });
    expect(res.rounds).toBe(3);
    expect(res.toolCalls?.map((c) => c.result)).toEqual([JSON.stringify({ error: "the index is down" }), JSON.stringify({ error: "the index is down" })]);
    expect(JSON.stringify(server.requests[1].body.messages.at(-1))).toContain("the index is down");
    const last = server.requests[2].body;
    expect(last.toolConfig).toBeUndefined();
    expect(JSON.stringify(last.messages)).not.toMatch(/toolUse|toolResult/);
    expect(JSON.stringify(last.messages.at(-1))).toContain("No more tools can be called");
    expect(JSON.parse(res.text).headline).toBe("loopback headline");
  });

  it("streams through ConverseStream (event-stream framing): deltas whose concatenation is the answer, then the usage", async () => {
    let text = "";
    let done;
    for await (const c of provider().stream(req)) {
      if ("delta" in c) text += c.delta;
      else if ("done" in c) done = c.done;
    }
    expect(server.requests[0].stream).toBe(true);
    expect(JSON.parse(text)).toEqual({ headline: "loopback headline", variants: "loopback variants" });
    expect(done?.text).toBe(text);
    expect(done?.usage.inputTokens).toBe(42);
    expect(done?.usage.outputTokens).toBe(Math.ceil(text.length / 4));
  });

  it("streams a tool round through ConverseStream: toolUse blocks put together from their input pieces, each tool call as its tool answered, then the answer", async () => {
    server.script({ kind: "tool_use", text: "Let me check both.", calls: [{ name: "lookup_brand", input: { brand: "Crumb" } }, { name: "lookup_brand", input: { brand: "Loaf" } }] });
    const chunks = await drain(provider().stream({ ...req, tools: [lookup] }));
    const kinds = chunks.map((c) => Object.keys(c)[0]);
    expect(kinds.filter((k, i) => k !== kinds[i - 1])).toEqual(["delta", "tool", "delta", "done"]);
    expect(chunks[0]).toEqual({ delta: "Let me check both." });
    const tools = chunks.flatMap((c) => ("tool" in c ? [c.tool] : []));
    expect(tools).toEqual([
      { name: "lookup_brand", arguments: '{"brand":"Crumb"}', result: '{"voice":"warm for Crumb"}' },
      { name: "lookup_brand", arguments: '{"brand":"Loaf"}', result: '{"voice":"warm for Loaf"}' },
    ]);
    const answerText = chunks.slice(kinds.lastIndexOf("tool") + 1, -1).map((c) => ("delta" in c ? c.delta : "")).join("");
    const done = chunks.at(-1) as { done: { text: string; rounds: number; usage: unknown; toolCalls: unknown } };
    expect(JSON.parse(done.done.text)).toEqual({ headline: "loopback headline", variants: "loopback variants" });
    expect(done.done.text).toBe(answerText);
    expect(done.done.rounds).toBe(2);
    expect(done.done.toolCalls).toEqual(tools);
    expect(done.done.usage).toEqual({ inputTokens: 30 + 42, outputTokens: 10 + Math.ceil(answerText.length / 4) });

    const [first, second] = server.requests;
    expect([first.stream, second.stream]).toEqual([true, true]);
    expect(first.body.toolConfig?.tools[0].toolSpec.name).toBe("lookup_brand");
    expect(second.body.messages.map((m) => m.role)).toEqual(["user", "assistant", "user"]);
    const said = second.body.messages[1].content;
    expect(said.find((c) => "text" in c)).toEqual({ text: "Let me check both." });
    expect(said.filter((c) => "toolUse" in c).map((c) => c.toolUse)).toEqual([
      { toolUseId: "tooluse_1_0", name: "lookup_brand", input: { brand: "Crumb" } },
      { toolUseId: "tooluse_1_1", name: "lookup_brand", input: { brand: "Loaf" } },
    ]);
    const results = second.body.messages[2].content as { toolResult: { toolUseId: string } }[];
    expect(results.map((c) => c.toolResult.toolUseId)).toEqual(["tooluse_1_0", "tooluse_1_1"]);
    expect(JSON.stringify(results[1])).toContain("warm for Loaf");
  });

  it("in a stream, sends a tool's error back, and after the last tool round asks without tools and without tool blocks", async () => {
    const failing: LlmTool = { name: "flaky", description: "Fails.", parameters: { type: "object", properties: {} }, invoke: async () => Promise.reject(new Error("the index is down")) };
    server.script({ kind: "tool_use", calls: [{ name: "flaky", input: {} }] }, { kind: "tool_use", calls: [{ name: "flaky", input: {} }] });
    const chunks = await drain(provider({ maxToolRounds: 2 }).stream({ ...req, tools: [failing] }));
    expect(chunks.flatMap((c) => ("tool" in c ? [c.tool.result] : []))).toEqual([JSON.stringify({ error: "the index is down" }), JSON.stringify({ error: "the index is down" })]);
    expect(chunks.at(-1)).toMatchObject({ done: { rounds: 3 } });
    expect(JSON.stringify(server.requests[1].body.messages.at(-1))).toContain("the index is down");
    const last = server.requests[2].body;
    expect(last.toolConfig).toBeUndefined();
    expect(JSON.stringify(last.messages)).not.toMatch(/toolUse|toolResult/);
    expect(JSON.stringify(last.messages.at(-1))).toContain("No more tools can be called");
  });

  it("retries a ThrottlingException, and maps one that persists to RESOURCE_EXHAUSTED", async () => {
    server.script({ kind: "error", status: 429, type: "ThrottlingException", message: "Too many requests, please wait before trying again." });
    expect(JSON.parse((await provider().complete(req)).text).headline).toBe("loopback headline");
    expect(server.requests).toHaveLength(2);
    server.requests.length = 0;
    server.script({ kind: "error", status: 429, type: "ThrottlingException" }, { kind: "error", status: 429, type: "ThrottlingException" });
    const err = await errorOf(provider().complete(req));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toMatch(/^bedrock: /);
    expect((err.cause as Error).name).toBe("ThrottlingException");
    expect(server.requests).toHaveLength(2);
  });

  it("maps a ValidationException to INVALID_ARGUMENT without retrying, AccessDenied to FAILED_PRECONDITION, ServiceUnavailable to UNAVAILABLE", async () => {
    server.script({ kind: "error", status: 400, type: "ValidationException", message: "messages: field required" });
    const invalid = await errorOf(provider().complete(req));
    expect(invalid.code).toBe(Code.InvalidArgument);
    expect(invalid.rawMessage).toContain("messages: field required");
    expect(server.requests).toHaveLength(1);
    server.script({ kind: "error", status: 403, type: "AccessDeniedException" });
    expect((await errorOf(provider().complete(req))).code).toBe(Code.FailedPrecondition);
    server.script({ kind: "error", status: 503, type: "ServiceUnavailableException" }, { kind: "error", status: 503, type: "ServiceUnavailableException" });
    expect((await errorOf(provider().complete(req))).code).toBe(Code.Unavailable);
  });

  it("gives up on a server that stalls with DEADLINE_EXCEEDED, in a call and in a stream", async () => {
    server.script({ kind: "stall" }, { kind: "stall" });
    const err = await errorOf(provider({ timeoutMs: 300, maxRetries: 0 }).complete(req));
    expect(err.code).toBe(Code.DeadlineExceeded);
    expect(err.rawMessage).toContain("300 ms");
    server.script({ kind: "stall" });
    const streamed = await errorOf((async () => {
      for await (const _ of provider({ timeoutMs: 300, maxRetries: 0 }).stream(req)) void _;
    })());
    expect(streamed.code).toBe(Code.DeadlineExceeded);
  });

  it("cancels the call when the request's signal aborts", async () => {
    server.script({ kind: "stall" });
    const controller = new AbortController();
    const call = provider().complete({ ...req, signal: controller.signal });
    await server.nextRequest();
    controller.abort();
    expect((await errorOf(call)).code).toBe(Code.Canceled);
  });

  it("cannot reach a server that is not there: UNAVAILABLE", async () => {
    const gone = await startLoopbackBedrock();
    const endpoint = gone.endpoint;
    await gone.close();
    expect((await errorOf(provider({ endpoint, maxRetries: 0 }).complete(req))).code).toBe(Code.Unavailable);
  });
});

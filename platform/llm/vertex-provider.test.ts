import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startLoopbackVertex, type LoopbackVertex } from "../../test/support/vertex-loopback.js";
import type { LlmChunk, LlmTool } from "./llm-provider.js";
import { createVertexProvider, vertexErrorCode, type VertexProviderOptions } from "./vertex-provider.js";

let server: LoopbackVertex;
beforeAll(async () => {
  server = await startLoopbackVertex();
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => {
  server.requests.length = 0;
});

const models = { fast: "gemini-2.5-flash", capable: "gemini-2.5-pro" };
const provider = (o: Partial<VertexProviderOptions> = {}) =>
  createVertexProvider({
    project: "raptor-test",
    location: "europe-west4",
    models,
    apiEndpoint: server.apiEndpoint,
    authOptions: server.authOptions,
    maxRetries: 0,
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

describe("the Vertex AI provider against a loopback generateContent server", () => {
  it("calls the tier's model in the project and location, with the system instruction, the user turn and JSON mode; answers with usage", async () => {
    const res = await provider().complete(req);
    expect(JSON.parse(res.text)).toEqual({ headline: "loopback headline", variants: "loopback variants" });
    expect(res.model).toBe("gemini-2.5-flash");
    expect(res.usage).toEqual({ inputTokens: 42, outputTokens: Math.ceil(res.text.length / 4) });
    const sent = server.requests[0];
    expect(sent.path).toBe("/v1/projects/raptor-test/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent");
    expect(sent.apiKey).toBe("loopback-key");
    expect(sent.body.systemInstruction?.parts[0].text).toContain("You are a copywriter.");
    expect(sent.body.systemInstruction?.parts[0].text).toContain('"required":["headline","variants"]');
    expect(sent.body.contents).toEqual([{ role: "user", parts: [{ text: "## Request\nWrite a tagline" }] }]);
    expect(sent.body.generationConfig?.responseMimeType).toBe("application/json");
    await provider().complete({ ...req, tier: "capable" });
    expect(server.requests[1].path).toContain("/models/gemini-2.5-pro:generateContent");
  });

  it("runs a tool round: functionCall, the tool's answer as functionResponse, then the answer; JSON mode only when no tools are offered", async () => {
    const lookup: LlmTool = {
      name: "lookup_brand",
      description: "Looks up the brand's voice.",
      parameters: { type: "object", properties: { brand: { type: "string" } }, required: ["brand"] },
      invoke: async (args) => JSON.stringify({ voice: `warm for ${(args as { brand: string }).brand}` }),
    };
    server.script({ kind: "function_call", name: "lookup_brand", args: { brand: "Crumb" } });
    const res = await provider().complete({ ...req, tools: [lookup] });
    expect(res.rounds).toBe(2);
    expect(res.toolCalls).toEqual([{ name: "lookup_brand", arguments: '{"brand":"Crumb"}', result: '{"voice":"warm for Crumb"}' }]);
    expect(res.usage.inputTokens).toBe(30 + 42);
    const [first, second] = server.requests;
    expect(first.body.tools?.[0].functionDeclarations?.[0].name).toBe("lookup_brand");
    expect(first.body.generationConfig?.responseMimeType).toBeUndefined();
    expect(second.body.contents.map((c) => c.role).slice(0, 2)).toEqual(["user", "model"]);
    expect(second.body.contents[1].parts[0]).toMatchObject({ functionCall: { name: "lookup_brand", args: { brand: "Crumb" } } });
    expect(second.body.contents[2].parts[0]).toMatchObject({ functionResponse: { name: "lookup_brand" } });
    expect(JSON.stringify(second.body.contents[2])).toContain("warm for Crumb");
  });

  it("streams through streamGenerateContent: deltas whose concatenation is the answer, then the usage", async () => {
    let text = "";
    let done;
    for await (const c of provider().stream(req)) {
      if ("delta" in c) text += c.delta;
      else if ("done" in c) done = c.done;
    }
    expect(server.requests[0].stream).toBe(true);
    expect(JSON.parse(text)).toEqual({ headline: "loopback headline", variants: "loopback variants" });
    expect(done?.text).toBe(text);
    expect(done?.usage).toEqual({ inputTokens: 42, outputTokens: Math.ceil(text.length / 4) });
  });

  it("streams a tool round through streamGenerateContent: the functionCall, its answer as a functionResponse, then the answer in JSON mode; usage summed", async () => {
    const lookup: LlmTool = {
      name: "lookup_brand",
      description: "Looks up the brand's voice.",
      parameters: { type: "object", properties: { brand: { type: "string" } }, required: ["brand"] },
      invoke: async (args) => JSON.stringify({ voice: `warm for ${(args as { brand: string }).brand}` }),
    };
    server.script({ kind: "function_call", text: "Checking the brand.", name: "lookup_brand", args: { brand: "Crumb" } });
    const chunks = await drain(provider({ maxToolRounds: 1 }).stream({ ...req, tools: [lookup] }));
    const kinds = chunks.map((c) => Object.keys(c)[0]);
    expect(kinds.filter((k, i) => k !== kinds[i - 1])).toEqual(["delta", "tool", "delta", "done"]);
    expect(chunks[0]).toEqual({ delta: "Checking the brand." });
    const tools = chunks.flatMap((c) => ("tool" in c ? [c.tool] : []));
    expect(tools).toEqual([{ name: "lookup_brand", arguments: '{"brand":"Crumb"}', result: '{"voice":"warm for Crumb"}' }]);
    const answerText = chunks.slice(kinds.indexOf("tool") + 1, -1).map((c) => ("delta" in c ? c.delta : "")).join("");
    expect(chunks.at(-1)).toEqual({
      done: { text: answerText, model: "gemini-2.5-flash", usage: { inputTokens: 30 + 42, outputTokens: 10 + Math.ceil(answerText.length / 4) }, rounds: 2, toolCalls: tools },
    });
    expect(JSON.parse(answerText)).toEqual({ headline: "loopback headline", variants: "loopback variants" });

    const [first, second] = server.requests;
    expect([first.stream, second.stream]).toEqual([true, true]);
    expect(first.body.tools?.[0].functionDeclarations?.[0].name).toBe("lookup_brand");
    expect(first.body.generationConfig?.responseMimeType).toBeUndefined();
    // With maxToolRounds 1 the second request offers no tools: JSON mode, and the round replayed as text.
    expect(second.body.tools ?? []).toEqual([]);
    expect(second.body.generationConfig?.responseMimeType).toBe("application/json");
    expect(JSON.stringify(second.body.contents)).not.toMatch(/functionCall|functionResponse/);
    expect(JSON.stringify(second.body.contents)).toContain("warm for Crumb");
  });

  it("in a stream, sends a tool's error back as the functionResponse to the replayed functionCall", async () => {
    const failing: LlmTool = { name: "lookup_brand", description: "Fails.", parameters: { type: "object", properties: {} }, invoke: async () => Promise.reject(new Error("the index is down")) };
    server.script({ kind: "function_call", name: "lookup_brand", args: { brand: "Crumb" } });
    const chunks = await drain(provider().stream({ ...req, tools: [failing] }));
    expect(chunks.flatMap((c) => ("tool" in c ? [c.tool.result] : []))).toEqual([JSON.stringify({ error: "the index is down" })]);
    const second = server.requests[1];
    expect(second.body.contents.map((c) => c.role).slice(0, 2)).toEqual(["user", "model"]);
    expect(second.body.contents[1].parts[0]).toMatchObject({ functionCall: { name: "lookup_brand", args: { brand: "Crumb" } } });
    expect(second.body.contents[2].parts[0]).toMatchObject({ functionResponse: { name: "lookup_brand" } });
    expect(JSON.stringify(second.body.contents[2])).toContain("the index is down");
  });

  it("maps Google errors by HTTP status: 429 RESOURCE_EXHAUSTED, 400 INVALID_ARGUMENT (not retried), 403 FAILED_PRECONDITION", async () => {
    server.script({ kind: "error", status: 429, googleStatus: "RESOURCE_EXHAUSTED", message: "Quota exceeded for aiplatform.googleapis.com/generate_content_requests_per_minute" });
    const exhausted = await errorOf(provider().complete(req));
    expect(exhausted.code).toBe(Code.ResourceExhausted);
    expect(exhausted.rawMessage).toMatch(/^vertex: the model server answered 429/);
    server.script({ kind: "error", status: 400, googleStatus: "INVALID_ARGUMENT" });
    server.requests.length = 0;
    expect((await errorOf(provider({ maxRetries: 1 }).complete(req))).code).toBe(Code.InvalidArgument);
    expect(server.requests).toHaveLength(1);
    server.script({ kind: "error", status: 403, googleStatus: "PERMISSION_DENIED" });
    expect((await errorOf(provider().complete(req))).code).toBe(Code.FailedPrecondition);
  });

  it("retries a 503 and answers", async () => {
    server.script({ kind: "error", status: 503, googleStatus: "UNAVAILABLE" });
    const res = await provider({ maxRetries: 1 }).complete(req);
    expect(JSON.parse(res.text).headline).toBe("loopback headline");
    expect(server.requests).toHaveLength(2);
  });

  it("gives up on a server that stalls with DEADLINE_EXCEEDED, and cancels when the request's signal aborts", async () => {
    server.script({ kind: "stall" });
    const err = await errorOf(provider({ timeoutMs: 300 }).complete(req));
    expect(err.code).toBe(Code.DeadlineExceeded);
    server.script({ kind: "stall" });
    const controller = new AbortController();
    const call = provider().complete({ ...req, signal: controller.signal });
    await server.nextRequest();
    controller.abort();
    expect((await errorOf(call)).code).toBe(Code.Canceled);
  });

  it("treats missing Google credentials as FAILED_PRECONDITION", () => {
    expect(vertexErrorCode(new Error("Could not load the default credentials. Browse to https://cloud.google.com/docs/authentication/getting-started"))).toBe(Code.FailedPrecondition);
    expect(vertexErrorCode(new Error("something else"))).toBeUndefined();
  });
});

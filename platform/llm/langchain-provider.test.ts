import { Code, ConnectError } from "@connectrpc/connect";
import { BaseChatModel, type BaseChatModelCallOptions } from "@langchain/core/language_models/chat_models";
import type { BindToolsInput } from "@langchain/core/language_models/chat_models";
import { AIMessage, AIMessageChunk, type BaseMessage, type ToolCallChunk } from "@langchain/core/messages";
import { ChatGenerationChunk, type ChatResult } from "@langchain/core/outputs";
import { FakeListChatModel } from "@langchain/core/utils/testing";
import { describe, expect, it } from "vitest";
import { createLangChainProvider, type LangChainProviderOptions } from "./langchain-provider.js";
import type { LlmChunk, LlmTool } from "./llm-provider.js";

/** A step is what the scripted model does on its next request: answer, fail, or never answer (ignoring its signal). */
type Step = AIMessage | Error | "hang";

interface ScriptedCallOptions extends BaseChatModelCallOptions {
  readonly tools?: unknown[];
  readonly responseMimeType?: string;
}

/**
 * ScriptedChatModel is a LangChain chat model that plays a script of answers
 * (tool calls and usage_metadata included, which LangChain's own fakes do not
 * emit) and records every request.
 */
class ScriptedChatModel extends BaseChatModel<ScriptedCallOptions> {
  readonly steps: Step[];
  readonly requests: { messages: BaseMessage[]; options: ScriptedCallOptions }[] = [];
  constructor(steps: Step[]) {
    super({});
    this.steps = steps;
  }
  _llmType(): string {
    return "scripted";
  }
  override bindTools(tools: BindToolsInput[]) {
    return this.withConfig({ tools });
  }
  private async next(messages: BaseMessage[], options: ScriptedCallOptions): Promise<AIMessage> {
    this.requests.push({ messages, options });
    const step = this.steps.shift() ?? answer("{}", 1, 1);
    if (step === "hang") return new Promise<never>(() => undefined);
    if (step instanceof Error) throw step;
    return step;
  }
  async _generate(messages: BaseMessage[], options: this["ParsedCallOptions"]): Promise<ChatResult> {
    const message = await this.next(messages, options);
    return { generations: [{ message, text: message.text }] };
  }
  /**
   * _streamResponseChunks streams an answer as chat models do: its text in
   * pieces, then each tool call as a first chunk with its id and name and its
   * arguments in pieces (tool_call_chunks, put together by index when the
   * chunks are concatenated), the usage on the last chunk.
   */
  override async *_streamResponseChunks(messages: BaseMessage[], options: this["ParsedCallOptions"]): AsyncGenerator<ChatGenerationChunk> {
    const message = await this.next(messages, options);
    const text = message.text;
    const pieces: { content: string; tool_call_chunks?: ToolCallChunk[] }[] = [];
    for (let i = 0; i < text.length; i += 3) pieces.push({ content: text.slice(i, i + 3) });
    const calls = [
      ...(message.tool_calls ?? []).map((c) => ({ id: c.id, name: c.name, args: JSON.stringify(c.args) })),
      ...(message.invalid_tool_calls ?? []).map((c) => ({ id: c.id, name: c.name, args: c.args ?? "" })),
    ];
    calls.forEach((c, index) => {
      pieces.push({ content: "", tool_call_chunks: [{ type: "tool_call_chunk", index, id: c.id, name: c.name, args: "" }] });
      for (let i = 0; i < c.args.length; i += 4) pieces.push({ content: "", tool_call_chunks: [{ type: "tool_call_chunk", index, args: c.args.slice(i, i + 4) }] });
    });
    for (const [i, piece] of pieces.entries()) {
      const usage_metadata = i === pieces.length - 1 ? message.usage_metadata : undefined;
      yield new ChatGenerationChunk({ text: piece.content, message: new AIMessageChunk({ ...piece, usage_metadata }) });
    }
  }
}

const usage = (input: number, output: number) => ({ input_tokens: input, output_tokens: output, total_tokens: input + output });
const answer = (text: string, input = 10, output = 5) => new AIMessage({ content: text, usage_metadata: usage(input, output) });
const callTools = (calls: { id?: string; name: string; args: Record<string, unknown> }[], input = 10, output = 5) =>
  new AIMessage({ content: "", tool_calls: calls.map((c) => ({ ...c, type: "tool_call" as const })), usage_metadata: usage(input, output) });

const provider = (fast: BaseChatModel, o: Partial<LangChainProviderOptions> = {}) =>
  createLangChainProvider({ name: "scripted", models: { fast, capable: fast }, modelNames: { fast: "small-1", capable: "big-1" }, ...o });
const req = { system: "You are a copywriter.", prompt: "## Request\nWrite a tagline", tier: "fast" as const, outputKeys: ["headline"] };
const errorOf = async (p: Promise<unknown>) => {
  const e = await p.then(() => undefined, (e: unknown) => e);
  expect(e).toBeInstanceOf(ConnectError);
  return e as ConnectError;
};
const drain = async (s: AsyncIterable<LlmChunk>) => {
  const chunks: LlmChunk[] = [];
  for await (const c of s) chunks.push(c);
  return chunks;
};

const lookup = (seen: unknown[] = []): LlmTool => ({
  name: "lookup",
  description: "Looks a word up.",
  parameters: { type: "object", properties: { word: { type: "string" } }, required: ["word"] },
  invoke: async (args) => {
    seen.push(args);
    if ((args as { word: string }).word === "boom") throw new Error("the dictionary is closed");
    return JSON.stringify({ meaning: `meaning of ${(args as { word: string }).word}` });
  },
});

describe("the LangChain provider adapter (with scripted chat models)", () => {
  it("sends a system and a human message, asks for JSON naming the answer's schema, and reports the tier's model name and usage", async () => {
    const model = new ScriptedChatModel([answer('{"headline":"Fresh"}', 12, 7)]);
    const res = await provider(model).complete(req);
    expect(res).toEqual({ text: '{"headline":"Fresh"}', model: "small-1", usage: { inputTokens: 12, outputTokens: 7 }, rounds: 1, toolCalls: [] });
    const [system, human] = model.requests[0].messages;
    expect(system.type).toBe("system");
    expect(system.text).toMatch(/^You are a copywriter\.\n\nAnswer with a single JSON object/);
    expect(system.text).toContain('{"type":"object","properties":{"headline":{}},"required":["headline"]}');
    expect(human.type).toBe("human");
    expect(human.text).toBe(req.prompt);
    const outputSchema = { type: "object", properties: { headline: { type: "string", maxLength: 60 } }, required: ["headline"] };
    await provider(model).complete({ ...req, outputSchema });
    expect(model.requests[1].messages[0].text).toContain(JSON.stringify(outputSchema));
    await provider(model).complete({ ...req, outputKeys: [] });
    expect(model.requests[2].messages[0].text).toBe("You are a copywriter.");
  });

  it("passes the provider's JSON mode only to requests that offer no tools, and the caller's signal to every request", async () => {
    const model = new ScriptedChatModel([callTools([{ id: "c1", name: "lookup", args: { word: "a" } }]), answer("{}")]);
    const controller = new AbortController();
    await provider(model, { jsonMode: { responseMimeType: "application/json" } }).complete({ ...req, tools: [lookup()], signal: controller.signal });
    expect(model.requests[0].options.tools).toHaveLength(1);
    expect(model.requests[0].options.responseMimeType).toBeUndefined();
    expect(model.requests[1].options.responseMimeType).toBeUndefined();
    await provider(model, { jsonMode: { responseMimeType: "application/json" } }).complete(req);
    expect(model.requests[2].options.responseMimeType).toBe("application/json");
    for (const r of model.requests) expect(r.options.signal).toBeInstanceOf(AbortSignal);
    controller.abort();
    expect(model.requests[0].options.signal?.aborted).toBe(true);
  });

  it("runs tool rounds: binds the tools' JSON Schemas, answers each call with a ToolMessage (errors included), sums usage over the rounds", async () => {
    const seen: unknown[] = [];
    const model = new ScriptedChatModel([
      callTools([{ id: "c1", name: "lookup", args: { word: "crumb" } }, { id: "c2", name: "missing", args: {} }], 10, 2),
      callTools([{ id: "c3", name: "lookup", args: { word: "boom" } }], 20, 3),
      answer('{"headline":"Crumbs!"}', 30, 4),
    ]);
    const res = await provider(model).complete({ ...req, tools: [lookup(seen)] });
    expect(res.text).toBe('{"headline":"Crumbs!"}');
    expect(res.rounds).toBe(3);
    expect(res.usage).toEqual({ inputTokens: 60, outputTokens: 9 });
    expect(seen).toEqual([{ word: "crumb" }, { word: "boom" }]);
    expect(res.toolCalls).toEqual([
      { name: "lookup", arguments: '{"word":"crumb"}', result: '{"meaning":"meaning of crumb"}' },
      { name: "missing", arguments: "{}", result: JSON.stringify({ error: 'there is no tool named "missing"' }) },
      { name: "lookup", arguments: '{"word":"boom"}', result: JSON.stringify({ error: "the dictionary is closed" }) },
    ]);
    expect(model.requests[0].options.tools).toEqual([{ type: "function", function: { name: "lookup", description: "Looks a word up.", parameters: lookup().parameters } }]);
    const third = model.requests[2].messages;
    expect(third.map((m) => m.type)).toEqual(["system", "human", "ai", "tool", "tool", "ai", "tool"]);
    expect(third.filter((m) => m.type === "tool").map((m) => (m as unknown as { tool_call_id: string }).tool_call_id)).toEqual(["c1", "c2", "c3"]);
    expect(third[6].text).toContain("the dictionary is closed");
  });

  it("sends arguments that did not parse back to the model as an error", async () => {
    const model = new ScriptedChatModel([
      new AIMessage({ content: "", invalid_tool_calls: [{ id: "bad", name: "lookup", args: "{word:", error: "Unexpected token", type: "invalid_tool_call" }] }),
      answer("{}"),
    ]);
    const res = await provider(model).complete({ ...req, tools: [lookup()] });
    expect(res.toolCalls?.[0].arguments).toBe("{word:");
    expect(res.toolCalls?.[0].result).toContain("the arguments are not valid JSON");
  });

  it("stops offering tools after maxToolRounds: the last request binds none and replays the calls as text", async () => {
    const again = () => callTools([{ id: "c", name: "lookup", args: { word: "more" } }]);
    const model = new ScriptedChatModel([again(), again(), answer('{"headline":"Done"}')]);
    const res = await provider(model, { maxToolRounds: 2 }).complete({ ...req, tools: [lookup()] });
    expect(res.rounds).toBe(3);
    expect(res.toolCalls).toHaveLength(2);
    const last = model.requests[2];
    expect(last.options.tools).toBeUndefined();
    expect(last.messages.map((m) => m.type)).toEqual(["system", "human", "ai", "human", "ai", "human"]);
    expect(last.messages.some((m) => (m as AIMessage).tool_calls?.length)).toBe(false);
    expect(last.messages[2].text).toContain('lookup({"word":"more"})');
    expect(last.messages[5].text).toContain("meaning of more");
    expect(last.messages[5].text).toContain("No more tools can be called");
  });

  it("builds a tier's model from its factory once, on first use", async () => {
    let built = 0;
    const factory = () => {
      built++;
      return new ScriptedChatModel([answer("{}"), answer("{}")]);
    };
    const p = createLangChainProvider({ name: "lazy", models: { fast: factory, capable: () => { throw new Error("never built"); } }, modelNames: { fast: "f", capable: "c" } });
    expect(built).toBe(0);
    await p.complete(req);
    await p.complete(req);
    expect(built).toBe(1);
    expect(p.model("capable")).toBe("c");
  });

  it("refuses tools for a model that cannot bind them", async () => {
    const model = new ScriptedChatModel([]);
    Object.assign(model, { bindTools: undefined });
    expect((await errorOf(provider(model).complete({ ...req, tools: [lookup()] }))).code).toBe(Code.Unimplemented);
  });

  it("works with any LangChain chat model (FakeListChatModel), in calls and streams", async () => {
    const model = new FakeListChatModel({ responses: ['{"headline":"A"}', '{"headline":"B"}'] });
    expect((await provider(model).complete(req)).text).toBe('{"headline":"A"}');
    const chunks = await drain(provider(model).stream(req));
    expect(chunks.filter((c) => "delta" in c).map((c) => (c as { delta: string }).delta).join("")).toBe('{"headline":"B"}');
  });

  it("streams text deltas, then the answer with the usage the model reported", async () => {
    const model = new ScriptedChatModel([answer('{"headline":"Streamed"}', 40, 8)]);
    const chunks = await drain(provider(model, { jsonMode: { responseMimeType: "application/json" } }).stream(req));
    const deltas = chunks.filter((c): c is { delta: string } => "delta" in c).map((c) => c.delta);
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.join("")).toBe('{"headline":"Streamed"}');
    expect(chunks.at(-1)).toEqual({ done: { text: '{"headline":"Streamed"}', model: "small-1", usage: { inputTokens: 40, outputTokens: 8 }, rounds: 1, toolCalls: [] } });
    expect(model.requests[0].options.responseMimeType).toBe("application/json");
    expect(model.requests[0].messages.map((m) => m.type)).toEqual(["system", "human"]);
  });

  it("streams tool rounds: each tool call as soon as its tool answered, then the answer's deltas, then the response, like complete", async () => {
    const script = () => [
      callTools([{ id: "c1", name: "lookup", args: { word: "crumb" } }, { id: "c2", name: "missing", args: {} }], 10, 2),
      callTools([{ id: "c3", name: "lookup", args: { word: "boom" } }], 20, 3),
      answer('{"headline":"Crumbs!"}', 30, 4),
    ];
    const seen: unknown[] = [];
    const model = new ScriptedChatModel(script());
    const chunks = await drain(provider(model, { jsonMode: { responseMimeType: "application/json" } }).stream({ ...req, tools: [lookup(seen)] }));
    const kinds = chunks.map((c) => Object.keys(c)[0]);
    expect(kinds.filter((k, i) => k !== kinds[i - 1])).toEqual(["tool", "delta", "done"]);
    expect(chunks.filter((c) => "delta" in c).map((c) => (c as { delta: string }).delta).join("")).toBe('{"headline":"Crumbs!"}');
    const tools = chunks.flatMap((c) => ("tool" in c ? [c.tool] : []));
    expect(tools).toEqual([
      { name: "lookup", arguments: '{"word":"crumb"}', result: '{"meaning":"meaning of crumb"}' },
      { name: "missing", arguments: "{}", result: JSON.stringify({ error: 'there is no tool named "missing"' }) },
      { name: "lookup", arguments: '{"word":"boom"}', result: JSON.stringify({ error: "the dictionary is closed" }) },
    ]);
    expect(seen).toEqual([{ word: "crumb" }, { word: "boom" }]);
    const done = (chunks.at(-1) as { done: unknown }).done;
    expect(done).toEqual({ text: '{"headline":"Crumbs!"}', model: "small-1", usage: { inputTokens: 60, outputTokens: 9 }, rounds: 3, toolCalls: tools });
    expect(done).toEqual(await provider(new ScriptedChatModel(script()), { jsonMode: { responseMimeType: "application/json" } }).complete({ ...req, tools: [lookup()] }));

    expect(model.requests.map((r) => r.options.tools?.length)).toEqual([1, 1, 1]);
    expect(model.requests.map((r) => r.options.responseMimeType)).toEqual([undefined, undefined, undefined]);
    const third = model.requests[2].messages;
    expect(third.map((m) => m.type)).toEqual(["system", "human", "ai", "tool", "tool", "ai", "tool"]);
    // The streamed answer's tool_call_chunks were put together into the calls it replays.
    expect((third[2] as AIMessage).tool_calls?.map((c) => [c.id, c.name, c.args])).toEqual([["c1", "lookup", { word: "crumb" }], ["c2", "missing", {}]]);
    expect(third.filter((m) => m.type === "tool").map((m) => (m as unknown as { tool_call_id: string }).tool_call_id)).toEqual(["c1", "c2", "c3"]);
    expect(third[6].text).toContain("the dictionary is closed");
  });

  it("in a stream, sends arguments that did not parse back as an error, and after maxToolRounds asks without tools (in JSON mode), replaying the calls as text", async () => {
    const model = new ScriptedChatModel([
      new AIMessage({ content: "", invalid_tool_calls: [{ id: "bad", name: "lookup", args: "{word:", error: "Unexpected token", type: "invalid_tool_call" }] }),
      callTools([{ id: "c", name: "lookup", args: { word: "more" } }]),
      answer('{"headline":"Done"}'),
    ]);
    const chunks = await drain(provider(model, { maxToolRounds: 2, jsonMode: { responseMimeType: "application/json" } }).stream({ ...req, tools: [lookup()] }));
    const tools = chunks.flatMap((c) => ("tool" in c ? [c.tool] : []));
    expect(tools[0].arguments).toBe("{word:");
    expect(tools[0].result).toContain("the arguments are not valid JSON");
    expect(tools[1].result).toContain("meaning of more");
    expect(chunks.at(-1)).toMatchObject({ done: { text: '{"headline":"Done"}', rounds: 3 } });
    const last = model.requests[2];
    expect(last.options.tools).toBeUndefined();
    expect(last.options.responseMimeType).toBe("application/json");
    expect(last.messages.map((m) => m.type)).toEqual(["system", "human", "ai", "human", "ai", "human"]);
    expect(last.messages[5].text).toContain("No more tools can be called");
  });

  it("in a stream, the wait for each chunk is bounded in every round, the time tools take is not, and a caller that stops after a tool call ends the call", async () => {
    const slow: LlmTool = { ...lookup(), invoke: async () => new Promise((r) => setTimeout(() => r('"slow but fine"'), 120)) };
    const patient = await drain(provider(new ScriptedChatModel([callTools([{ id: "c", name: "lookup", args: { word: "a" } }]), answer("{}")]), { timeoutMs: 50 }).stream({ ...req, tools: [slow] }));
    expect(patient.at(-1)).toMatchObject({ done: { rounds: 2, toolCalls: [{ result: '"slow but fine"' }] } });

    const stalled = provider(new ScriptedChatModel([callTools([{ id: "c", name: "lookup", args: { word: "a" } }]), "hang"]), { timeoutMs: 50 });
    const err = await errorOf(drain(stalled.stream({ ...req, tools: [lookup()] })));
    expect(err.code).toBe(Code.DeadlineExceeded);

    const model = new ScriptedChatModel([callTools([{ id: "c", name: "lookup", args: { word: "a" } }]), answer("{}")]);
    for await (const c of provider(model).stream({ ...req, tools: [lookup()] })) if ("tool" in c) break;
    expect(model.requests).toHaveLength(1);

    const controller = new AbortController();
    const cancelling: LlmTool = { ...lookup(), invoke: async () => (controller.abort(), '"ok"') };
    const cancelled = await errorOf(drain(provider(new ScriptedChatModel([callTools([{ id: "c", name: "lookup", args: {} }]), answer("{}")])).stream({ ...req, tools: [cancelling], signal: controller.signal })));
    expect(cancelled.code).toBe(Code.Canceled);
  });

  it("a stream refuses tools for a model that cannot bind them", async () => {
    const model = new ScriptedChatModel([]);
    Object.assign(model, { bindTools: undefined });
    expect((await errorOf(drain(provider(model).stream({ ...req, tools: [lookup()] })))).code).toBe(Code.Unimplemented);
  });

  it("maps errors to codes: the provider's mapper first, then the HTTP status wherever the client put it, connection failures, the rest UNKNOWN; the cause is kept", async () => {
    const fail = async (e: unknown, o: Partial<LangChainProviderOptions> = {}) => errorOf(provider(new ScriptedChatModel([e as Error]), o).complete(req));
    const throttled = Object.assign(new Error("Rate exceeded"), { name: "ThrottlingException", $metadata: { httpStatusCode: 400 } });
    const mapped = await fail(throttled, { mapError: (e) => ((e as Error).name === "ThrottlingException" ? Code.ResourceExhausted : undefined) });
    expect(mapped.code).toBe(Code.ResourceExhausted);
    expect(mapped.rawMessage).toBe("scripted: Rate exceeded");
    expect(mapped.cause).toBe(throttled);
    expect((await fail(Object.assign(new Error("x"), { $metadata: { httpStatusCode: 403 } }))).code).toBe(Code.FailedPrecondition);
    expect((await fail(Object.assign(new Error("x"), { response: { status: 429 } }))).code).toBe(Code.ResourceExhausted);
    expect((await fail(Object.assign(new Error("x"), { status: 404 }))).code).toBe(Code.InvalidArgument);
    expect((await fail(Object.assign(new Error("x"), { statusCode: 502 }))).code).toBe(Code.Unavailable);
    expect((await fail(new TypeError("fetch failed", { cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }) }))).code).toBe(Code.Unavailable);
    expect((await fail(new Error("something odd"))).code).toBe(Code.Unknown);
    const passed = new ConnectError("already mapped", Code.PermissionDenied);
    expect(await fail(passed)).toBe(passed);
    const streamed = await errorOf(drain(provider(new ScriptedChatModel([Object.assign(new Error("x"), { status: 503 })])).stream(req)));
    expect(streamed.code).toBe(Code.Unavailable);
  });

  it("cancels with the request's signal and times out a model that never answers, even one that ignores its signal", async () => {
    const controller = new AbortController();
    const call = provider(new ScriptedChatModel(["hang"])).complete({ ...req, signal: controller.signal });
    controller.abort();
    expect((await errorOf(call)).code).toBe(Code.Canceled);
    const late = await errorOf(provider(new ScriptedChatModel(["hang"]), { timeoutMs: 50 }).complete(req));
    expect(late.code).toBe(Code.DeadlineExceeded);
    expect(late.rawMessage).toBe("scripted: the model did not answer within 50 ms");
    expect((await errorOf(drain(provider(new ScriptedChatModel(["hang"]), { timeoutMs: 50 }).stream(req)))).code).toBe(Code.DeadlineExceeded);
    const aborted = new AbortController();
    aborted.abort();
    expect((await errorOf(drain(provider(new ScriptedChatModel([answer("{}")])).stream({ ...req, signal: aborted.signal })))).code).toBe(Code.Canceled);
  });
});

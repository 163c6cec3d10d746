import OpenAI from "openai";
import { Code, ConnectError } from "@connectrpc/connect";
import { isStrictSchema, keysSchema } from "./json-schema.js";
import { invokeTool, returnValue } from "./tool-rounds.js";
import type { LlmChunk, LlmProvider, LlmRequest, LlmResponse, LlmUsage, ModelTierName, ToolCall } from "./llm-provider.js";

/** OpenAIProviderOptions configure OpenAI or any server that speaks its Chat Completions API (Ollama, vLLM, llama.cpp). */
export interface OpenAIProviderOptions {
  /** apiKey authenticates; local servers accept any value. */
  readonly apiKey: string;
  /** baseURL points at an OpenAI-compatible server; OpenAI's when undefined. */
  readonly baseURL?: string;
  /** models maps the two tiers to model names. */
  readonly models: Readonly<Record<ModelTierName, string>>;
  /** timeoutMs bounds one request (default 60 s). */
  readonly timeoutMs?: number;
  /** maxRetries on 429, 5xx, timeouts and connection errors, with backoff honouring Retry-After (default 2). */
  readonly maxRetries?: number;
  /** name labels outputs (default `openai`). */
  readonly name?: string;
  /** maxToolRounds bounds the rounds of tool calls in one call (default 4). */
  readonly maxToolRounds?: number;
}

/** ChatParams are the parameters of one model request of a call. */
type ChatParams = OpenAI.Chat.Completions.ChatCompletionCreateParamsNonStreaming;

/** RoundAnswer is what one model request of a call answered. */
interface RoundAnswer {
  /** content is the text the model wrote, null when none. */
  readonly content: string | null;
  /** calls are the function calls it made, in order. */
  readonly calls: readonly OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall[];
  /** model that answered, as the server named it ("" when it did not). */
  readonly model: string;
  /** usage of this request. */
  readonly usage: LlmUsage;
}

/** Ask sends one model request; a streaming one yields the text as it comes, then returns the whole answer. */
type Ask = (params: ChatParams, signal: AbortSignal | undefined) => AsyncGenerator<LlmChunk, RoundAnswer>;

/**
 * createOpenAIProvider answers model calls through the official `openai`
 * client: Chat Completions with a JSON-schema response format (the agent's
 * output schema, strict when it is in the strict subset), streaming with
 * usage. A request's tools are offered in rounds, streamed or not: the model's
 * calls are answered by {@link invokeTool}, and after `maxToolRounds` rounds
 * one more request offers none, so the model must answer. The client retries
 * 429s (with Retry-After), 5xx, timeouts and connection errors; what still
 * fails becomes a ConnectError with the matching code, never a raw exception.
 */
export function createOpenAIProvider(options: OpenAIProviderOptions): LlmProvider {
  const client = new OpenAI({
    apiKey: options.apiKey,
    baseURL: options.baseURL,
    timeout: options.timeoutMs ?? 60_000,
    maxRetries: options.maxRetries ?? 2,
  });
  const name = options.name ?? "openai";
  const maxRounds = options.maxToolRounds ?? 4;

  /** askOnce is one Chat Completions request, answered whole. */
  const askOnce: Ask = async function* (params, signal) {
    const res = await client.chat.completions.create(params, { signal });
    const message = res.choices[0]?.message;
    return {
      content: message?.content ?? null,
      calls: (message?.tool_calls ?? []).filter((c) => c.type === "function"),
      model: res.model,
      usage: { inputTokens: res.usage?.prompt_tokens ?? 0, outputTokens: res.usage?.completion_tokens ?? 0 },
    };
  };

  /**
   * askStreaming is one streamed request: text deltas are yielded as they
   * come; tool calls arrive in fragments by index (the id and name once,
   * the arguments in pieces) and are put together as the SDK's own stream
   * helper does; the usage comes in a last chunk.
   */
  const askStreaming: Ask = async function* (params, signal) {
    const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } }, { signal });
    let content = "";
    let model = "";
    let usage: LlmUsage = { inputTokens: 0, outputTokens: 0 };
    const parts = new Map<number, { id: string; name: string; arguments: string }>();
    for await (const chunk of stream) {
      model = chunk.model || model;
      const delta = chunk.choices[0]?.delta;
      if (delta?.content) {
        content += delta.content;
        yield { delta: delta.content };
      }
      for (const f of delta?.tool_calls ?? []) {
        if (f.type === "custom" || f.custom) continue;
        const part = parts.get(f.index) ?? { id: "", name: "", arguments: "" };
        parts.set(f.index, part);
        if (f.id) part.id = f.id;
        if (f.function?.name) part.name = f.function.name;
        part.arguments += f.function?.arguments ?? "";
      }
      if (chunk.usage) usage = { inputTokens: chunk.usage.prompt_tokens, outputTokens: chunk.usage.completion_tokens };
    }
    const calls = [...parts.entries()]
      .sort(([a], [b]) => a - b)
      .map(([i, p]) => ({ id: p.id || `call_${i}`, type: "function" as const, function: { name: p.name, arguments: p.arguments } }));
    return { content: content || null, calls, model, usage };
  };

  /**
   * rounds runs one call: a request per round through ask, the model's tool
   * calls answered in order (each yielded as soon as its tool answered) and
   * sent back with the assistant's message, until the model answers without
   * calls; it returns the response, usage summed over the rounds.
   */
  const rounds = async function* (req: LlmRequest, ask: Ask): AsyncGenerator<LlmChunk, LlmResponse> {
    const tools = req.tools ?? [];
    const offered = tools.map((t) => ({ type: "function" as const, function: { name: t.name, description: t.description, parameters: t.parameters } }));
    const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
      { role: "system", content: req.system },
      { role: "user", content: req.prompt },
    ];
    const toolCalls: ToolCall[] = [];
    const usage = { inputTokens: 0, outputTokens: 0 };
    for (let round = 1; ; round++) {
      // The last round offers no tools, so the model must answer.
      const offer = tools.length > 0 && round <= maxRounds;
      const params: ChatParams = { model: options.models[req.tier], messages: [...messages], response_format: responseFormat(req), ...(offer ? { tools: offered } : {}) };
      const answer = yield* ask(params, req.signal);
      usage.inputTokens += answer.usage.inputTokens;
      usage.outputTokens += answer.usage.outputTokens;
      const calls = offer ? answer.calls : [];
      if (calls.length === 0) {
        return { text: answer.content ?? "", model: answer.model || options.models[req.tier], usage, rounds: round, toolCalls };
      }
      messages.push({ role: "assistant", content: answer.content, tool_calls: [...calls] });
      for (const call of calls) {
        const result = await invokeTool(tools, call.function.name, () => JSON.parse(call.function.arguments || "{}"));
        const answered: ToolCall = { name: call.function.name, arguments: call.function.arguments, result };
        toolCalls.push(answered);
        messages.push({ role: "tool", tool_call_id: call.id, content: result });
        yield { tool: answered };
      }
    }
  };

  return {
    name,
    model: (tier) => options.models[tier],
    async complete(req): Promise<LlmResponse> {
      try {
        return await returnValue(rounds(req, askOnce));
      } catch (e) {
        throw providerError(name, e);
      }
    },
    async *stream(req): AsyncIterable<LlmChunk> {
      try {
        yield { done: yield* rounds(req, askStreaming) };
      } catch (e) {
        throw providerError(name, e);
      }
    },
  };
}

/**
 * responseFormat asks for the request's output schema, with `strict: true`
 * when it is in the strict subset (every object closed, every property
 * required), so the model cannot answer another shape; a request without a
 * schema gets one naming its output keys, each of any value, not strict.
 */
export function responseFormat(req: LlmRequest): OpenAI.ResponseFormatJSONSchema {
  const schema = req.outputSchema ?? keysSchema(req.outputKeys, "output");
  return {
    type: "json_schema",
    json_schema: { name: "agent_output", schema: { ...schema }, strict: req.outputSchema ? isStrictSchema(req.outputSchema) : false },
  };
}

/** providerError maps what the client threw to a ConnectError a caller can act on, keeping the cause. */
function providerError(name: string, e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  if (e instanceof OpenAI.APIUserAbortError) return new ConnectError(`${name}: the call was cancelled`, Code.Canceled, undefined, undefined, e);
  if (e instanceof OpenAI.APIConnectionTimeoutError) return new ConnectError(`${name}: the model did not answer in time`, Code.DeadlineExceeded, undefined, undefined, e);
  if (e instanceof OpenAI.APIConnectionError) return new ConnectError(`${name}: cannot reach the model server`, Code.Unavailable, undefined, undefined, e);
  if (e instanceof OpenAI.APIError) {
    const status = e.status ?? 0;
    const code =
      status === 429 ? Code.ResourceExhausted
      : status === 401 || status === 403 ? Code.FailedPrecondition
      : status === 400 || status === 404 || status === 422 ? Code.InvalidArgument
      : status >= 500 ? Code.Unavailable
      : Code.Unknown;
    return new ConnectError(`${name}: the model server answered ${status}: ${e.message}`, code, undefined, undefined, e);
  }
  return new ConnectError(`${name}: ${(e as Error).message}`, Code.Unknown, undefined, undefined, e);
}

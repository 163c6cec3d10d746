import { Code, ConnectError } from "@connectrpc/connect";
import type { BaseChatModel } from "@langchain/core/language_models/chat_models";
import type { ToolDefinition } from "@langchain/core/language_models/base";
import { AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage, type BaseMessage } from "@langchain/core/messages";
import type { LlmChunk, LlmProvider, LlmRequest, LlmResponse, ModelTierName, ToolCall } from "./llm-provider.js";
import { invokeTool, returnValue } from "./tool-rounds.js";

/** ChatModelSource is a LangChain chat model, or a factory that builds it the first time its tier is used. */
export type ChatModelSource = BaseChatModel | (() => BaseChatModel);

/**
 * ProviderErrorMapper names the code a provider-specific error deserves, or
 * undefined to leave it to the HTTP status on the error (then `Unknown`).
 */
export type ProviderErrorMapper = (e: unknown) => Code | undefined;

/** LangChainProviderOptions configure an LlmProvider over LangChain chat models. */
export interface LangChainProviderOptions {
  /** name labels outputs and error messages, for example `bedrock`. */
  readonly name: string;
  /** models maps the two tiers to chat models (or factories, built once on first use). */
  readonly models: Readonly<Record<ModelTierName, ChatModelSource>>;
  /** modelNames are the model ids the tiers map to, reported in every response. */
  readonly modelNames: Readonly<Record<ModelTierName, string>>;
  /** maxToolRounds bounds the rounds of tool calls in one call (default 4); one more round, without tools, makes the model answer. */
  readonly maxToolRounds?: number;
  /** timeoutMs bounds one model request, the client's retries included; for a stream, the wait for each chunk (default 60 s). */
  readonly timeoutMs?: number;
  /** mapError gives provider-specific errors their code (throttling, validation, credentials). */
  readonly mapError?: ProviderErrorMapper;
  /**
   * jsonMode are call options that make the model answer JSON (Gemini's
   * `responseMimeType`), used when the request has an output schema and the
   * model request offers no tools: Gemini rejects JSON mode with function calling.
   */
  readonly jsonMode?: Readonly<Record<string, unknown>>;
}

/** ExecutedCall is one tool call of a round and what the tool answered. */
interface ExecutedCall {
  readonly id: string;
  readonly name: string;
  readonly arguments: string;
  readonly result: string;
}

/** Round is a model answer that called tools, and the calls as the tools answered them. */
interface Round {
  readonly ai: AIMessageChunk;
  readonly calls: readonly ExecutedCall[];
}

/** Ask sends one model request of a call; a streaming one yields the text as it comes, then returns the whole answer. */
type Ask = (
  model: Pick<BaseChatModel, "invoke" | "stream">,
  messages: BaseMessage[],
  req: LlmRequest,
  callOptions: Readonly<Record<string, unknown>>,
) => AsyncGenerator<LlmChunk, AIMessageChunk>;

/**
 * createLangChainProvider adapts LangChain chat models (ChatVertexAI,
 * ChatBedrockConverse, or any BaseChatModel) to LlmProvider: a system and a
 * user message; tools bound with `bindTools` from their JSON Schemas, run in
 * rounds like the OpenAI provider (tool errors go back to the model, the last
 * round offers no tools); usage summed from `usage_metadata` over the rounds.
 * A stream runs the same rounds through `.stream()`, yielding text as it
 * comes and each tool call as soon as its tool answered. The request's signal
 * and a per-request deadline (for a stream, a per-chunk one) cancel the model
 * call; whatever fails becomes a ConnectError with a code a caller (and the
 * fallback chain) can act on, the cause kept.
 */
export function createLangChainProvider(options: LangChainProviderOptions): LlmProvider {
  const { name } = options;
  const maxRounds = options.maxToolRounds ?? 4;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const built = new Map<ModelTierName, BaseChatModel>();
  const chatModel = (tier: ModelTierName): BaseChatModel => {
    let model = built.get(tier);
    if (!model) {
      const source = options.models[tier];
      model = typeof source === "function" ? source() : source;
      built.set(tier, model);
    }
    return model;
  };
  const jsonOptions = (req: LlmRequest) => (answerSchema(req) && options.jsonMode ? options.jsonMode : {});

  /** askOnce is one model request, answered whole, under the caller's signal and its own deadline. */
  const askOnce: Ask = async function* (model, messages, req, callOptions) {
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, deadline]) : deadline;
    try {
      return await untilAborted(model.invoke(messages, { ...callOptions, signal }), signal);
    } catch (e) {
      throw providerError(name, e, { cancelled: req.signal?.aborted === true, timedOut: deadline.aborted, timeoutMs, mapError: options.mapError });
    }
  };

  /**
   * askStreaming is one streamed model request: text deltas are yielded as
   * they come, and the chunks are concatenated into the whole answer (that is
   * how LangChain puts together tool_call_chunks and sums usage, which
   * Bedrock sends once, at the end).
   */
  const askStreaming: Ask = async function* (model, messages, req, callOptions) {
    const idle = new AbortController();
    const signal = req.signal ? AbortSignal.any([req.signal, idle.signal]) : idle.signal;
    let answer: AIMessageChunk | undefined;
    let iterator: AsyncIterator<AIMessageChunk> | undefined;
    // The model has timeoutMs to send each chunk; time the caller spends between chunks, or tools between rounds, does not count.
    const step = async <T>(p: () => Promise<T>): Promise<T> => {
      const timer = setTimeout(() => idle.abort(), timeoutMs);
      try {
        return await untilAborted(p(), signal);
      } catch (e) {
        throw providerError(name, e, { cancelled: req.signal?.aborted === true, timedOut: idle.signal.aborted, timeoutMs, mapError: options.mapError });
      } finally {
        clearTimeout(timer);
      }
    };
    try {
      const stream = await step(() => model.stream(messages, { ...callOptions, signal }));
      iterator = stream[Symbol.asyncIterator]();
      for (;;) {
        const next = await step(() => iterator!.next());
        if (next.done) break;
        answer = answer ? answer.concat(next.value) : next.value;
        const delta = next.value.text;
        if (delta) yield { delta };
      }
    } finally {
      // A caller that stops early, or a failure, ends the model's stream too.
      if (!idle.signal.aborted) idle.abort();
      void iterator?.return?.().catch(() => undefined);
    }
    return answer ?? new AIMessageChunk({ content: "" });
  };

  /**
   * rounds runs one call: a request per round through ask, the model's tool
   * calls answered in order (each yielded as soon as its tool answered), until
   * the model answers without calls; it returns the response, usage summed
   * from `usage_metadata` over the rounds.
   */
  const rounds = async function* (req: LlmRequest, ask: Ask): AsyncGenerator<LlmChunk, LlmResponse> {
    const model = chatModel(req.tier);
    const tools = req.tools ?? [];
    if (tools.length > 0 && !model.bindTools) {
      throw new ConnectError(`${name}: the ${req.tier} model (${options.modelNames[req.tier]}) cannot call tools`, Code.Unimplemented);
    }
    const withTools = tools.length > 0 ? model.bindTools!(tools.map(toolDefinition)) : model;
    const head = [new SystemMessage(systemPrompt(req)), new HumanMessage(req.prompt)];
    const history: Round[] = [];
    const usage = { inputTokens: 0, outputTokens: 0 };
    for (let round = 1; ; round++) {
      // The last round offers no tools, so the model must answer.
      const offer = tools.length > 0 && round <= maxRounds;
      const messages = offer || history.length === 0 ? [...head, ...history.flatMap(structuredRound)] : [...head, ...history.flatMap(textRound)];
      const ai = yield* ask(offer ? withTools : model, messages, req, offer ? {} : jsonOptions(req));
      usage.inputTokens += ai.usage_metadata?.input_tokens ?? 0;
      usage.outputTokens += ai.usage_metadata?.output_tokens ?? 0;
      const requested = offer ? requestedCalls(ai, round) : [];
      if (requested.length === 0) {
        const toolCalls: ToolCall[] = history.flatMap((r) => r.calls.map((c) => ({ name: c.name, arguments: c.arguments, result: c.result })));
        return { text: ai.text, model: options.modelNames[req.tier], usage, rounds: round, toolCalls };
      }
      const calls: ExecutedCall[] = [];
      for (const call of requested) {
        const result = await invokeTool(tools, call.name, () => {
          if (call.error) throw new Error(call.error);
          return call.args;
        });
        calls.push({ id: call.id, name: call.name, arguments: call.arguments, result });
        yield { tool: { name: call.name, arguments: call.arguments, result } };
      }
      history.push({ ai, calls });
    }
  };

  return {
    name,
    model: (tier) => options.modelNames[tier],
    complete: (req) => returnValue(rounds(req, askOnce)),
    async *stream(req): AsyncIterable<LlmChunk> {
      yield { done: yield* rounds(req, askStreaming) };
    },
  };
}

/**
 * answerSchema is the JSON Schema the answer must satisfy: the request's
 * outputSchema, or an object requiring the output keys (as the OpenAI provider
 * builds it), or none when the request expects no keys.
 */
function answerSchema(req: LlmRequest): Readonly<Record<string, unknown>> | undefined {
  if (req.outputSchema) return req.outputSchema;
  if (req.outputKeys.length === 0) return undefined;
  return { type: "object", properties: Object.fromEntries(req.outputKeys.map((k) => [k, {}])), required: [...req.outputKeys] };
}

/**
 * systemPrompt asks for JSON in the system message, which every chat model
 * honours, with or without tools. withStructuredOutput is not used: it returns
 * the parsed object and drops usage_metadata (unless includeRaw), on Bedrock it
 * is a forced tool call that would fight the agent's own tools and rounds, and
 * Gemini cannot combine it with function calling. The agent runtime validates
 * the JSON and repairs a bad answer once, so a prompt-level contract suffices;
 * Gemini also gets its JSON mode where no tools are offered (`jsonMode`).
 */
function systemPrompt(req: LlmRequest): string {
  const schema = answerSchema(req);
  if (!schema) return req.system;
  return `${req.system}\n\nAnswer with a single JSON object and nothing else (no prose, no code fences). It must satisfy this JSON Schema:\n${JSON.stringify(schema)}`;
}

/** toolDefinition gives an LlmTool to `bindTools` in the OpenAI tool format, which every LangChain chat model accepts. */
function toolDefinition(tool: { readonly name: string; readonly description: string; readonly parameters: Record<string, unknown> }): ToolDefinition {
  return { type: "function", function: { name: tool.name, description: tool.description, parameters: tool.parameters } };
}

/** requestedCalls lists the tool calls of an answer; calls whose arguments did not parse carry the error for the model. */
function requestedCalls(ai: AIMessageChunk, round: number): { id: string; name: string; args: unknown; arguments: string; error?: string }[] {
  const valid = (ai.tool_calls ?? []).map((c, i) => ({ id: c.id ?? `call_${round}_${i}`, name: c.name, args: c.args, arguments: JSON.stringify(c.args ?? {}) }));
  const invalid = (ai.invalid_tool_calls ?? []).map((c, i) => ({
    id: c.id ?? `call_${round}_invalid_${i}`,
    name: c.name ?? "",
    args: undefined,
    arguments: c.args ?? "",
    error: `the arguments are not valid JSON${c.error ? `: ${c.error}` : ""}`,
  }));
  return [...valid, ...invalid];
}

/** structuredRound replays a round as the model's tool calls and one ToolMessage per result. */
function structuredRound(r: Round): BaseMessage[] {
  return [r.ai, ...r.calls.map((c) => new ToolMessage({ tool_call_id: c.id, name: c.name, content: c.result }))];
}

/**
 * textRound replays a round as plain text, for the last round that offers no
 * tools: Bedrock rejects toolUse and toolResult blocks in a request that
 * declares no tools, and text is understood by every model.
 */
function textRound(r: Round, i: number, all: readonly unknown[]): BaseMessage[] {
  const said = r.ai.text ? `${r.ai.text}\n\n` : "";
  const last = i === all.length - 1 ? "\n\nNo more tools can be called: answer now." : "";
  return [
    new AIMessage(`${said}I called these tools:\n${r.calls.map((c) => `- ${c.name}(${c.arguments})`).join("\n")}`),
    new HumanMessage(`The tools answered:\n${r.calls.map((c) => `- ${c.name}: ${c.result}`).join("\n")}${last}`),
  ];
}

/** untilAborted settles with p, or rejects as soon as signal aborts: a model that ignores its signal cannot outlive the call. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** httpStatusOf finds the HTTP status on an error: AWS SDK `$metadata.httpStatusCode`, `response.status`, `status`, `statusCode`. */
export function httpStatusOf(e: unknown): number | undefined {
  const o = e as { $metadata?: { httpStatusCode?: unknown }; response?: { status?: unknown }; status?: unknown; statusCode?: unknown } | null | undefined;
  for (const v of [o?.$metadata?.httpStatusCode, o?.response?.status, o?.status, o?.statusCode]) {
    if (typeof v === "number" && v >= 100) return v;
  }
  return undefined;
}

/** codeForHttpStatus maps a model server's HTTP status as the OpenAI provider does. */
export function codeForHttpStatus(status: number): Code {
  return status === 429 ? Code.ResourceExhausted
    : status === 401 || status === 403 ? Code.FailedPrecondition
    : status === 400 || status === 404 || status === 422 ? Code.InvalidArgument
    : status >= 500 ? Code.Unavailable
    : Code.Unknown;
}

const connectionErrorCodes = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "EPIPE", "ETIMEDOUT", "UND_ERR_SOCKET", "UND_ERR_CONNECT_TIMEOUT"]);

/** isConnectionError tells whether an error (or its cause) is a failure to reach the server. */
export function isConnectionError(e: unknown): boolean {
  for (let c = e, depth = 0; c && typeof c === "object" && depth < 4; c = (c as { cause?: unknown }).cause, depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === "string" && connectionErrorCodes.has(code)) return true;
  }
  return false;
}

/** providerError turns what a model call threw into a ConnectError, keeping the cause for logs. */
function providerError(
  name: string,
  e: unknown,
  how: { readonly cancelled: boolean; readonly timedOut: boolean; readonly timeoutMs: number; readonly mapError?: ProviderErrorMapper },
): ConnectError {
  if (e instanceof ConnectError) return e;
  // Our own signals say best what happened: clients report aborts in many shapes.
  if (how.cancelled) return new ConnectError(`${name}: the call was cancelled`, Code.Canceled, undefined, undefined, e);
  if (how.timedOut) return new ConnectError(`${name}: the model did not answer within ${how.timeoutMs} ms`, Code.DeadlineExceeded, undefined, undefined, e);
  const message = e instanceof Error ? e.message : String(e);
  const mapped = how.mapError?.(e);
  if (mapped !== undefined) return new ConnectError(`${name}: ${message}`, mapped, undefined, undefined, e);
  const status = httpStatusOf(e);
  if (status !== undefined) return new ConnectError(`${name}: the model server answered ${status}: ${message}`, codeForHttpStatus(status), undefined, undefined, e);
  if (isConnectionError(e)) return new ConnectError(`${name}: cannot reach the model server: ${message}`, Code.Unavailable, undefined, undefined, e);
  return new ConnectError(`${name}: ${message}`, Code.Unknown, undefined, undefined, e);
}

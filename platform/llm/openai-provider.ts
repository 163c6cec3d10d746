import OpenAI from "openai";
import { Code, ConnectError } from "@connectrpc/connect";
import { isStrictSchema, keysSchema } from "./json-schema.js";
import type { LlmChunk, LlmProvider, LlmRequest, LlmResponse, ModelTierName } from "./llm-provider.js";

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

/**
 * createOpenAIProvider answers model calls through the official `openai`
 * client: Chat Completions with a JSON-schema response format (the agent's
 * output schema, strict when it is in the strict subset), streaming with
 * usage. The client retries 429s (with Retry-After), 5xx, timeouts and
 * connection errors; what still fails becomes a ConnectError with the
 * matching code, never a raw exception.
 */
export function createOpenAIProvider(options: OpenAIProviderOptions): LlmProvider {
  const client = new OpenAI({
    apiKey: options.apiKey,
    baseURL: options.baseURL,
    timeout: options.timeoutMs ?? 60_000,
    maxRetries: options.maxRetries ?? 2,
  });
  const name = options.name ?? "openai";
  const body = (req: LlmRequest) => ({
    model: options.models[req.tier],
    messages: [
      { role: "system" as const, content: req.system },
      { role: "user" as const, content: req.prompt },
    ],
    response_format: responseFormat(req),
  });
  return {
    name,
    model: (tier) => options.models[tier],
    async complete(req): Promise<LlmResponse> {
      const tools = req.tools ?? [];
      const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [...body(req).messages];
      const toolCalls: { name: string; arguments: string; result: string }[] = [];
      const usage = { inputTokens: 0, outputTokens: 0 };
      const maxRounds = options.maxToolRounds ?? 4;
      try {
        for (let round = 1; ; round++) {
          // The last round offers no tools, so the model must answer.
          const offer = tools.length > 0 && round <= maxRounds;
          const res = await client.chat.completions.create(
            {
              ...body(req),
              messages,
              ...(offer
                ? { tools: tools.map((t) => ({ type: "function" as const, function: { name: t.name, description: t.description, parameters: t.parameters } })) }
                : {}),
            },
            { signal: req.signal },
          );
          usage.inputTokens += res.usage?.prompt_tokens ?? 0;
          usage.outputTokens += res.usage?.completion_tokens ?? 0;
          const message = res.choices[0]?.message;
          const calls = offer ? (message?.tool_calls ?? []).filter((c) => c.type === "function") : [];
          if (calls.length === 0) {
            return { text: message?.content ?? "", model: res.model || options.models[req.tier], usage, rounds: round, toolCalls };
          }
          messages.push({ role: "assistant", content: message?.content ?? null, tool_calls: calls });
          for (const call of calls) {
            const tool = tools.find((t) => t.name === call.function.name);
            let result: string;
            try {
              if (!tool) throw new Error(`there is no tool named "${call.function.name}"`);
              result = await tool.invoke(JSON.parse(call.function.arguments || "{}"));
            } catch (e) {
              // The model sees the error and can correct its arguments.
              result = JSON.stringify({ error: (e as Error).message });
            }
            toolCalls.push({ name: call.function.name, arguments: call.function.arguments, result });
            messages.push({ role: "tool", tool_call_id: call.id, content: result });
          }
        }
      } catch (e) {
        throw providerError(name, e);
      }
    },
    async *stream(req): AsyncIterable<LlmChunk> {
      let text = "";
      let model = options.models[req.tier];
      let usage = { inputTokens: 0, outputTokens: 0 };
      try {
        const stream = await client.chat.completions.create({ ...body(req), stream: true, stream_options: { include_usage: true } }, { signal: req.signal });
        for await (const chunk of stream) {
          model = chunk.model || model;
          const delta = chunk.choices[0]?.delta?.content;
          if (delta) {
            text += delta;
            yield { delta };
          }
          if (chunk.usage) usage = { inputTokens: chunk.usage.prompt_tokens, outputTokens: chunk.usage.completion_tokens };
        }
      } catch (e) {
        throw providerError(name, e);
      }
      yield { done: { text, model, usage } };
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

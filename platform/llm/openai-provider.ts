import OpenAI from "openai";
import { Code, ConnectError } from "@connectrpc/connect";
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
}

/**
 * createOpenAIProvider answers model calls through the official `openai`
 * client: Chat Completions with a JSON-schema response format that names the
 * agent's output keys, streaming with usage. The client retries 429s (with
 * Retry-After), 5xx, timeouts and connection errors; what still fails becomes
 * a ConnectError with the matching code, never a raw exception.
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
    response_format: {
      type: "json_schema" as const,
      json_schema: {
        name: "agent_output",
        schema: {
          type: "object",
          properties: Object.fromEntries(req.outputKeys.map((k) => [k, {}])),
          required: [...req.outputKeys],
        },
      },
    },
  });
  return {
    name,
    model: (tier) => options.models[tier],
    async complete(req): Promise<LlmResponse> {
      try {
        const res = await client.chat.completions.create(body(req), { signal: req.signal });
        const text = res.choices[0]?.message?.content ?? "";
        return {
          text,
          model: res.model || options.models[req.tier],
          usage: { inputTokens: res.usage?.prompt_tokens ?? 0, outputTokens: res.usage?.completion_tokens ?? 0 },
        };
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

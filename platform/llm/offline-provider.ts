import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { fillSchema, keysSchema, type JsonSchema } from "./json-schema.js";
import type { LlmChunk, LlmProvider, LlmRequest, LlmResponse, ModelTierName } from "./llm-provider.js";

/** OfflineProviderOptions configure the offline provider. */
export interface OfflineProviderOptions {
  /**
   * latencyMs makes every call take this long, as a real model would; for
   * load and resilience tests (`OFFLINE_LLM_LATENCY_MS`). Default 0.
   */
  readonly latencyMs?: number;
}

/**
 * createOfflineProvider returns the embedded default model: deterministic,
 * needing no network and no keys, so the whole mesh runs and tests on one
 * machine. It is not a language model and says so: every answer carries
 * `"provider": "offline"`, and every string it writes starts with
 * `[offline]`. It answers with a JSON object that has exactly the requested
 * output keys, filled from the request's own words; with an output schema,
 * the answer conforms to it (fillSchema: strings within their lengths, an
 * enum's first member, numbers at their maximum, booleans true, arrays of
 * their least non-zero length). So the agent runtime's parsing, validation,
 * context sharing and accounting run on every call exactly as with a real
 * model. It calls no tools: a request's `tools` are ignored, so its answers
 * have one round and no tool calls, and its streams yield no tool chunks.
 */
export function createOfflineProvider(options: OfflineProviderOptions = {}): LlmProvider {
  const latencyMs = options.latencyMs ?? 0;
  const models: Record<ModelTierName, string> = { fast: "offline-fast-1", capable: "offline-capable-1" };
  const complete = (req: LlmRequest): LlmResponse => {
    req.signal?.throwIfAborted();
    const text = JSON.stringify(answer(req));
    return {
      text,
      model: models[req.tier],
      usage: { inputTokens: countTokens(req.system) + countTokens(req.prompt), outputTokens: countTokens(text) },
    };
  };
  return {
    name: "offline",
    model: (tier) => models[tier],
    async complete(req) {
      if (latencyMs > 0) await sleep(latencyMs, undefined, { signal: req.signal });
      return complete(req);
    },
    async *stream(req): AsyncIterable<LlmChunk> {
      if (latencyMs > 0) await sleep(latencyMs, undefined, { signal: req.signal });
      const res = complete(req);
      // Chunks of a fixed size keep the stream deterministic, like the rest.
      for (let i = 0; i < res.text.length; i += 48) {
        req.signal?.throwIfAborted();
        yield { delta: res.text.slice(i, i + 48) };
      }
      yield { done: res };
    },
  };
}

/** countTokens estimates tokens as OpenAI's rule of thumb does: about four characters each. */
export function countTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

const stopWords = new Set(
  "a an and are as at be by can do for from how i in is it its me my of on or our should so that the their them this to us we what when which who why will with you your".split(
    " ",
  ),
);

/**
 * answer fills the request's output schema, or one naming its output keys,
 * with `[offline] <what> focused on <keywords>` strings drawn from the
 * request's own words.
 */
function answer(req: LlmRequest): unknown {
  const request = between(req.prompt, "<user_request>\n", "\n</user_request>") ?? between(req.prompt, "## Request\n", "\n## ") ?? req.prompt;
  const keywords = [...new Set(request.toLowerCase().match(/[a-z][a-z0-9-]{2,}/g) ?? [])].filter((w) => !stopWords.has(w));
  const digest = createHash("sha256").update(req.system).update("\0").update(req.prompt).digest();
  const schema = (req.outputSchema as JsonSchema | undefined) ?? keysSchema(req.outputKeys, "output");
  return fillSchema(schema, (label, i) => {
    // Rotate the keywords per string so different outputs stress different words, deterministically.
    const start = keywords.length ? digest[i % digest.length] % keywords.length : 0;
    const focus = [...keywords.slice(start), ...keywords.slice(0, start)].slice(0, 3);
    return `[offline] ${label}${focus.length ? ` focused on ${focus.join(", ")}` : ""}`;
  });
}

function between(text: string, start: string, end: string): string | undefined {
  const i = text.indexOf(start);
  if (i < 0) return undefined;
  const j = text.indexOf(end, i + start.length);
  return text.slice(i + start.length, j < 0 ? undefined : j).trim();
}

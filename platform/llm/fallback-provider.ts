import { Code, ConnectError } from "@connectrpc/connect";
import type { LlmChunk, LlmProvider, LlmResponse } from "./llm-provider.js";

/** fallbackCodes are the failures after which the next provider is tried: the provider is down or saturated, not the request wrong. */
const fallbackCodes = new Set([Code.Unavailable, Code.ResourceExhausted, Code.DeadlineExceeded]);

/**
 * createFallbackProvider tries providers in order: each already retries
 * 429s, 5xx and timeouts with backoff; when one still fails that way, the
 * next answers. A request the provider rejects (bad request, bad key) or a
 * cancelled call does not fall through, and neither does a stream that has
 * yielded anything (text or a tool call). Every answer names the provider
 * that gave it.
 */
export function createFallbackProvider(providers: readonly LlmProvider[], warn: (m: string) => void = console.warn): LlmProvider {
  if (providers.length === 0) throw new Error("a fallback chain needs at least one provider");
  const [first] = providers;
  const shouldFall = (e: unknown, i: number) => i < providers.length - 1 && e instanceof ConnectError && fallbackCodes.has(e.code);
  return {
    name: providers.map((p) => p.name).join(">"),
    model: (tier) => first.model(tier),
    async complete(req): Promise<LlmResponse> {
      for (let i = 0; ; i++) {
        const p = providers[i];
        try {
          const res = await p.complete(req);
          return { ...res, provider: res.provider ?? p.name };
        } catch (e) {
          if (!shouldFall(e, i)) throw e;
          warn(`${p.name} failed (${(e as ConnectError).rawMessage}); trying ${providers[i + 1].name}`);
        }
      }
    },
    async *stream(req): AsyncIterable<LlmChunk> {
      for (let i = 0; ; i++) {
        const p = providers[i];
        let started = false;
        try {
          for await (const c of p.stream(req)) {
            started = true;
            yield "done" in c ? { done: { ...c.done, provider: c.done.provider ?? p.name } } : c;
          }
          return;
        } catch (e) {
          // Once text or a tool call has been streamed, switching providers would mix two answers (and run tools twice).
          if (started || !shouldFall(e, i)) throw e;
          warn(`${p.name} failed (${(e as ConnectError).rawMessage}); trying ${providers[i + 1].name}`);
        }
      }
    },
  };
}

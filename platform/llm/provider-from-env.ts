import type { LlmProvider } from "./llm-provider.js";
import { createOfflineProvider } from "./offline-provider.js";
import { createOpenAIProvider } from "./openai-provider.js";
import { createFallbackProvider } from "./fallback-provider.js";

/**
 * providerFromEnv picks the LLM provider from `LLM_PROVIDER`. The embedded
 * default, `offline`, needs no keys. A provider that is named but not
 * available fails at start-up with a message, never at the first request.
 */
export function providerFromEnv(env: Record<string, string | undefined> = process.env): LlmProvider {
  // "openai,offline" is a fallback chain: the next answers when one is down.
  const names = (env.LLM_PROVIDER || "offline").split(",").map((n) => n.trim()).filter(Boolean);
  if (names.length > 1) return createFallbackProvider(names.map((n) => providerFromEnv({ ...env, LLM_PROVIDER: n })));
  const name = names[0] ?? "offline";
  switch (name) {
    case "offline": {
      // An empty value means unset, as for every other setting.
      const raw = env.OFFLINE_LLM_LATENCY_MS || "0";
      const latencyMs = Number(raw);
      if (!/^\d+$/.test(raw)) {
        throw new Error(`OFFLINE_LLM_LATENCY_MS must be a whole number of milliseconds, got "${raw}"`);
      }
      return createOfflineProvider({ latencyMs });
    }
    case "openai": {
      // OpenAI, or any OpenAI-compatible server (Ollama, vLLM, llama.cpp) at OPENAI_BASE_URL.
      const baseURL = env.OPENAI_BASE_URL || undefined;
      const apiKey = env.OPENAI_API_KEY || (baseURL ? "not-needed" : undefined);
      if (!apiKey) throw new Error("LLM_PROVIDER=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local OpenAI-compatible server)");
      return createOpenAIProvider({
        apiKey,
        baseURL,
        models: { fast: env.OPENAI_MODEL_FAST || "gpt-4o-mini", capable: env.OPENAI_MODEL_CAPABLE || "gpt-4o" },
        timeoutMs: env.OPENAI_TIMEOUT_MS ? Number(env.OPENAI_TIMEOUT_MS) : undefined,
        name: baseURL ? "openai-compatible" : "openai",
      });
    }
    default:
      throw new Error(`LLM_PROVIDER="${name}" is not supported; supported: offline, openai`);
  }
}

import type { LlmProvider } from "./llm-provider.js";
import { createOfflineProvider } from "./offline-provider.js";

/**
 * providerFromEnv picks the LLM provider from `LLM_PROVIDER`. The embedded
 * default, `offline`, needs no keys. A provider that is named but not
 * available fails at start-up with a message, never at the first request.
 */
export function providerFromEnv(env: Record<string, string | undefined> = process.env): LlmProvider {
  const name = env.LLM_PROVIDER ?? "offline";
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
    default:
      throw new Error(`LLM_PROVIDER="${name}" is not supported; supported: offline`);
  }
}

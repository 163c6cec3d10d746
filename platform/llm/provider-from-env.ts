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
    case "offline":
      return createOfflineProvider();
    default:
      throw new Error(`LLM_PROVIDER="${name}" is not supported; supported: offline`);
  }
}

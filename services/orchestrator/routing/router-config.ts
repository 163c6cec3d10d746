import type { LlmProvider } from "../../../platform/llm/llm-provider.js";
import { createPriceTable } from "../../../platform/llm/prices.js";
import { providerFromEnv } from "../../../platform/llm/provider-from-env.js";
import type { ModelAssistOptions } from "./model-assist.js";
import type { Pricing } from "./plan-cost.js";
import { offlinePricing } from "./semantic-router.js";

/** RouterConfig is what the orchestrator's router takes from the environment. */
export interface RouterConfig {
  /** pricing prices plans at the models the agent services will use. */
  readonly pricing: Pricing;
  /** assist asks a model when the router is unsure; undefined when no model is configured or it is turned off. */
  readonly assist?: ModelAssistOptions;
}

/** wholeNumber reads a non-negative whole number setting, failing at start-up on anything else. */
function wholeNumber(env: Record<string, string | undefined>, name: string, fallback: number): number {
  const raw = env[name] || String(fallback);
  if (!/^\d+$/.test(raw)) throw new Error(`${name} must be a whole number, got "${raw}"`);
  return Number(raw);
}

/**
 * routerConfigFromEnv reads the router's configuration. Plans are priced at
 * the models of the provider `LLM_PROVIDER` names (the variables the agent
 * services read) with the price table (`MODEL_PRICES` over the defaults);
 * without a usable provider configuration here, at the offline models, which
 * cost nothing. When that provider is a real model (not `offline`), the
 * router asks its fast model about requests it is unsure of (confidence
 * under `ROUTER_MODEL_THRESHOLD` percent, default 50) and waits at most
 * `ROUTER_MODEL_BUDGET_MS` (default 300; 0 turns asking off).
 */
export function routerConfigFromEnv(env: Record<string, string | undefined>): RouterConfig {
  const prices = createPriceTable(env);
  const budgetMs = wholeNumber(env, "ROUTER_MODEL_BUDGET_MS", 300);
  const threshold = wholeNumber(env, "ROUTER_MODEL_THRESHOLD", 50) / 100;
  let provider: LlmProvider;
  try {
    provider = providerFromEnv(env);
  } catch {
    return { pricing: { prices, models: offlinePricing.models } };
  }
  const pricing = { prices, models: { fast: provider.model("fast"), capable: provider.model("capable") } };
  const real = provider.name !== "offline" && budgetMs > 0;
  return { pricing, assist: real ? { provider, budgetMs, threshold } : undefined };
}

/** ModelPrice is what a model charges, in US dollars per million tokens. */
export interface ModelPrice {
  /** input is the price of a million prompt tokens. */
  readonly input: number;
  /** output is the price of a million completion tokens. */
  readonly output: number;
}

/**
 * defaultPrices are list prices in USD per million tokens (OpenAI's
 * published prices for its models; Google Cloud's Vertex AI pricing page for
 * Gemini, standard tier, text, prompts up to 200K tokens; Amazon Bedrock's
 * pricing page for Anthropic's models on demand through the `global.`
 * cross-region inference profiles, prompts up to 200K tokens; the offline
 * models cost nothing). MODEL_PRICES (JSON: {"model": {"input": n,
 * "output": n}}) adds or overrides entries, for other models, regional
 * inference profiles and negotiated prices.
 */
export const defaultPrices: Readonly<Record<string, ModelPrice>> = {
  "offline-fast-1": { input: 0, output: 0 },
  "offline-capable-1": { input: 0, output: 0 },
  "gpt-4o-mini": { input: 0.15, output: 0.6 },
  "gpt-4o": { input: 2.5, output: 10 },
  "gemini-2.5-flash": { input: 0.3, output: 2.5 },
  // Listed so that the family match does not price Flash-Lite as Flash.
  "gemini-2.5-flash-lite": { input: 0.1, output: 0.4 },
  "gemini-2.5-pro": { input: 1.25, output: 10 },
  "global.anthropic.claude-haiku-4-5-20251001-v1:0": { input: 1, output: 5 },
  "global.anthropic.claude-sonnet-4-5-20250929-v1:0": { input: 3, output: 15 },
};

/** PriceTable gives the cost of a call. */
export interface PriceTable {
  /** cost is the USD cost of a call; a model without a price costs 0 and is reported by `unpriced`. */
  cost(model: string, inputTokens: number, outputTokens: number): number;
  /** unpriced tells whether a model has no price (its cost is unknown, not free). */
  unpriced(model: string): boolean;
}

/** createPriceTable reads MODEL_PRICES over the defaults; a malformed value fails at start-up naming it. */
export function createPriceTable(env: Record<string, string | undefined> = process.env): PriceTable {
  const prices: Record<string, ModelPrice> = { ...defaultPrices };
  if (env.MODEL_PRICES) {
    let extra: unknown;
    try {
      extra = JSON.parse(env.MODEL_PRICES);
    } catch (e) {
      throw new Error(`MODEL_PRICES is not JSON: ${(e as Error).message}`);
    }
    for (const [model, p] of Object.entries(extra as Record<string, Partial<ModelPrice>>)) {
      if (typeof p?.input !== "number" || typeof p?.output !== "number" || p.input < 0 || p.output < 0) {
        throw new Error(`MODEL_PRICES["${model}"] must be {"input": <USD per 1M tokens>, "output": <USD per 1M tokens>}`);
      }
      prices[model] = { input: p.input, output: p.output };
    }
  }
  // Providers answer with dated model names (gpt-4o-mini-2024-07-18): price them by their family.
  const find = (model: string): ModelPrice | undefined =>
    prices[model] ?? prices[Object.keys(prices).filter((k) => model.startsWith(`${k}-`)).sort((a, b) => b.length - a.length)[0] ?? ""];
  return {
    cost(model, inputTokens, outputTokens) {
      const p = find(model);
      return p ? (inputTokens * p.input + outputTokens * p.output) / 1_000_000 : 0;
    },
    unpriced: (model) => find(model) === undefined,
  };
}

import { ModelTier, type Agent } from "../../../gen/raptorflow/agent/v1/agent_pb.js";
import type { PlannedStep } from "../../../gen/raptorflow/v3/orchestrator_pb.js";
import type { ModelTierName } from "../../../platform/llm/llm-provider.js";
import type { PriceTable } from "../../../platform/llm/prices.js";

/** Pricing is what the router prices a plan with: the price table and the model each tier runs on. */
export interface Pricing {
  /** prices gives the cost of a call. */
  readonly prices: PriceTable;
  /** models names the model of each tier, as the agent services' provider does. */
  readonly models: Readonly<Record<ModelTierName, string>>;
}

/**
 * Token estimates for one agent step. The orchestrator does not see the
 * agents' prompts, so these are rough, documented constants: a system prompt
 * and the instructions around the request, the request itself (about four
 * characters a token), the outputs of the steps before (the shared context)
 * and an answer whose length grows with the agent's output keys.
 */
export const tokenEstimate = {
  /** promptTokens is a system prompt and the framing around the request. */
  promptTokens: 700,
  /** charsPerToken converts the request's length into tokens. */
  charsPerToken: 4,
  /** answerBaseTokens plus answerTokensPerOutput per output key make an answer. */
  answerBaseTokens: 150,
  answerTokensPerOutput: 110,
} as const;

/** tierOf is the tier a step runs on: its own, else the agent's default. */
function tierOf(step: PlannedStep, agent: Agent | undefined): ModelTierName {
  const t = step.modelTier !== ModelTier.UNSPECIFIED ? step.modelTier : (agent?.defaultModelTier ?? ModelTier.CAPABLE);
  return t === ModelTier.FAST ? "fast" : "capable";
}

/** PlanCost is a plan's estimated tokens and cost. */
export interface PlanCost {
  /** inputTokens and outputTokens are summed over the steps. */
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** usd is the estimated cost in US dollars. */
  readonly usd: number;
}

/**
 * estimatePlanCost estimates what a plan will cost: for each step, the
 * prompt, the request and the context the steps before it wrote, and the
 * answer, priced at the model of the step's tier.
 */
export function estimatePlanCost(steps: readonly PlannedStep[], agents: ReadonlyMap<string, Agent>, input: string, pricing: Pricing): PlanCost {
  const t = tokenEstimate;
  const requestTokens = Math.ceil(input.length / t.charsPerToken);
  let context = 0;
  let inputTokens = 0;
  let outputTokens = 0;
  let usd = 0;
  for (const step of steps) {
    const agent = agents.get(step.agent);
    const stepIn = t.promptTokens + requestTokens + context;
    const stepOut = t.answerBaseTokens + t.answerTokensPerOutput * Math.max(1, agent?.outputs.length ?? 3);
    usd += pricing.prices.cost(pricing.models[tierOf(step, agent)], stepIn, stepOut);
    inputTokens += stepIn;
    outputTokens += stepOut;
    context += stepOut;
  }
  return { inputTokens, outputTokens, usd };
}

/** ModelTierName is the class of model a step runs on. */
export type ModelTierName = "fast" | "capable";

/** LlmRequest is one model call: a system prompt and the user's turn. */
export interface LlmRequest {
  /** system is the agent's system prompt. */
  readonly system: string;
  /** prompt is the user turn: the request, its inputs and the shared context. */
  readonly prompt: string;
  /** tier picks the model. */
  readonly tier: ModelTierName;
  /** outputKeys are the keys the JSON answer must have (used by providers that can constrain output). */
  readonly outputKeys: readonly string[];
  /** signal cancels the call. */
  readonly signal?: AbortSignal;
}

/** LlmUsage counts tokens of one call. */
export interface LlmUsage {
  /** inputTokens sent to the model. */
  readonly inputTokens: number;
  /** outputTokens produced by the model. */
  readonly outputTokens: number;
}

/** LlmResponse is a finished model call. */
export interface LlmResponse {
  /** text is the model's answer. */
  readonly text: string;
  /** model is the model that answered. */
  readonly model: string;
  /** usage is what the call consumed. */
  readonly usage: LlmUsage;
}

/** LlmChunk is one piece of a streamed answer; the last one carries the usage. */
export type LlmChunk = { readonly delta: string } | { readonly done: LlmResponse };

/**
 * LlmProvider is the one interface every model provider implements: the
 * offline default, OpenAI-compatible servers, Vertex AI, Bedrock.
 */
export interface LlmProvider {
  /** name labels every output the provider produces, for example `offline`. */
  readonly name: string;
  /** model is the model a tier maps to. */
  model(tier: ModelTierName): string;
  /** complete runs one call to the end. */
  complete(req: LlmRequest): Promise<LlmResponse>;
  /** stream runs one call and yields its text as it comes, then the response. */
  stream(req: LlmRequest): AsyncIterable<LlmChunk>;
}

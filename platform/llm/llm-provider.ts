/** ModelTierName is the class of model a step runs on. */
export type ModelTierName = "fast" | "capable";

/**
 * LlmTool is deterministic code the model may call: a name, a description,
 * JSON Schema parameters, and the function that answers (a JSON string).
 */
export interface LlmTool {
  /** name the model calls it by. */
  readonly name: string;
  /** description tells the model when to use it. */
  readonly description: string;
  /** parameters is the JSON Schema of its arguments. */
  readonly parameters: Record<string, unknown>;
  /** invoke runs it; a thrown error goes back to the model as the tool's answer. */
  invoke(args: unknown): Promise<string>;
}

/** ToolCall records one tool the model called during a call, for the run's audit. */
export interface ToolCall {
  /** name of the tool. */
  readonly name: string;
  /** arguments as the model sent them. */
  readonly arguments: string;
  /** result the tool returned (or its error). */
  readonly result: string;
}

/** LlmRequest is one model call: a system prompt and the user's turn. */
export interface LlmRequest {
  /** tools the model may call; the provider runs the rounds of calls. */
  readonly tools?: readonly LlmTool[];
  /** system is the agent's system prompt. */
  readonly system: string;
  /** prompt is the user turn: the request, its inputs and the shared context. */
  readonly prompt: string;
  /** tier picks the model. */
  readonly tier: ModelTierName;
  /** outputKeys are the keys the JSON answer must have (used by providers that can constrain output). */
  readonly outputKeys: readonly string[];
  /**
   * outputSchema is the JSON Schema the answer must satisfy (an object whose
   * properties are outputKeys), for providers that can constrain output.
   */
  readonly outputSchema?: Readonly<Record<string, unknown>>;
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
  /** provider names who answered, when it is not the provider called (a fallback chain). */
  readonly provider?: string;
  /** usage is what the call consumed, over every round of tool calls. */
  readonly usage: LlmUsage;
  /** rounds is the number of model requests the call made (1 without tool calls). */
  readonly rounds?: number;
  /** toolCalls are the tools the model called, in order. */
  readonly toolCalls?: readonly ToolCall[];
}

/**
 * LlmChunk is one piece of a streamed answer: text as it comes, a tool call
 * as soon as the tool answered (when the request offers tools), and last the
 * response, which carries the usage and every tool call again.
 */
export type LlmChunk = { readonly delta: string } | { readonly tool: ToolCall } | { readonly done: LlmResponse };

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
  /** stream runs one call, tool rounds included, and yields its text and tool calls as they come, then the response. */
  stream(req: LlmRequest): AsyncIterable<LlmChunk>;
}

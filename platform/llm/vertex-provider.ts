import { Code } from "@connectrpc/connect";
import { ChatVertexAI, type ChatVertexAIInput } from "@langchain/google-vertexai";
import { createLangChainProvider, httpStatusOf, isConnectionError } from "./langchain-provider.js";
import type { LlmProvider, ModelTierName } from "./llm-provider.js";

/** VertexProviderOptions configure Google Vertex AI (Gemini models). */
export interface VertexProviderOptions {
  /** project is the Google Cloud project billed for the calls. */
  readonly project: string;
  /** location of the model endpoint (default `us-central1`; `global` for the global endpoint). */
  readonly location?: string;
  /** models maps the two tiers to Gemini model ids. */
  readonly models: Readonly<Record<ModelTierName, string>>;
  /** apiEndpoint is the API host (`host[:port]`, HTTPS) when not the location's, for example a Private Service Connect endpoint. */
  readonly apiEndpoint?: string;
  /**
   * authOptions are google-auth-library's options; by default Application
   * Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's login, the
   * metadata server of GCE, GKE and Cloud Run).
   */
  readonly authOptions?: ChatVertexAIInput["authOptions"];
  /** timeoutMs bounds one model request, retries included, and each streamed chunk (default 60 s). */
  readonly timeoutMs?: number;
  /** maxRetries on 429, 5xx and connection errors, with LangChain's exponential backoff (default 2). */
  readonly maxRetries?: number;
  /** maxToolRounds bounds the rounds of tool calls in one call (default 4). */
  readonly maxToolRounds?: number;
  /** name labels outputs (default `vertex`). */
  readonly name?: string;
}

/**
 * createVertexProvider answers model calls through LangChain's ChatVertexAI
 * (generateContent and streamGenerateContent on
 * `projects/{project}/locations/{location}/publishers/google/models/{model}`),
 * with Gemini's JSON mode when an answer schema is set and no tools are
 * offered. LangChain retries 429, 5xx and connection errors; what still fails
 * becomes a ConnectError with the code its HTTP status deserves.
 */
export function createVertexProvider(options: VertexProviderOptions): LlmProvider {
  const build = (tier: ModelTierName) => () =>
    new ChatVertexAI({
      model: options.models[tier],
      location: options.location ?? "us-central1",
      endpoint: options.apiEndpoint,
      // An empty key keeps LangChain from switching to Vertex AI express mode
      // (no project, no location) when GOOGLE_API_KEY happens to be set.
      apiKey: "",
      authOptions: { ...options.authOptions, projectId: options.project },
      maxRetries: options.maxRetries ?? 2,
      onFailedAttempt: retryOnlyTransient,
    });
  return createLangChainProvider({
    name: options.name ?? "vertex",
    models: { fast: build("fast"), capable: build("capable") },
    modelNames: options.models,
    maxToolRounds: options.maxToolRounds,
    timeoutMs: options.timeoutMs,
    mapError: vertexErrorCode,
    jsonMode: { responseMimeType: "application/json" },
  });
}

/**
 * retryOnlyTransient is LangChain's failed-attempt hook: returning retries,
 * throwing stops. Only 408, 429, 5xx and connection failures are retried; an
 * abort or a rejected request is final (and nothing is logged, unlike the
 * package's default hook).
 */
function retryOnlyTransient(error: unknown): void {
  const status = httpStatusOf(error);
  if (status === undefined ? isConnectionError(error) : status === 408 || status === 429 || status >= 500) return;
  throw error;
}

/**
 * vertexErrorCode names the code of Google errors that carry no HTTP status:
 * missing or unusable credentials are FailedPrecondition (a deployment
 * problem, not a request problem). HTTP errors are left to their status.
 */
export function vertexErrorCode(e: unknown): Code | undefined {
  const message = e instanceof Error ? e.message : String(e);
  if (httpStatusOf(e) === undefined && /default credentials|refresh access token|invalid_grant|Project Id/i.test(message)) {
    return Code.FailedPrecondition;
  }
  return undefined;
}

import { Code } from "@connectrpc/connect";
import { ChatBedrockConverse } from "@langchain/aws";
import { createLangChainProvider } from "./langchain-provider.js";
import type { LlmProvider, ModelTierName } from "./llm-provider.js";

/** BedrockCredentials are static AWS credentials; without them the standard AWS chain finds them. */
export interface BedrockCredentials {
  /** accessKeyId of the IAM user or role session. */
  readonly accessKeyId: string;
  /** secretAccessKey that signs requests (SigV4). */
  readonly secretAccessKey: string;
  /** sessionToken of temporary credentials. */
  readonly sessionToken?: string;
}

/** BedrockProviderOptions configure Amazon Bedrock through its Converse API. */
export interface BedrockProviderOptions {
  /** region of the Bedrock Runtime endpoint, for example `us-east-1`. */
  readonly region: string;
  /** models maps the two tiers to Bedrock model ids or inference profile ids. */
  readonly models: Readonly<Record<ModelTierName, string>>;
  /** endpoint overrides the Bedrock Runtime URL (a VPC endpoint, a proxy, a test server); the region's when undefined. */
  readonly endpoint?: string;
  /** credentials sign requests; when undefined, the standard AWS chain (environment, profile, SSO, web identity, ECS or EC2 role). */
  readonly credentials?: BedrockCredentials;
  /** timeoutMs bounds one model request, retries included, and each streamed chunk (default 60 s). */
  readonly timeoutMs?: number;
  /** maxRetries on throttling, 5xx and connection errors, with the AWS SDK's backoff (default 2). */
  readonly maxRetries?: number;
  /** maxToolRounds bounds the rounds of tool calls in one call (default 4). */
  readonly maxToolRounds?: number;
  /** name labels outputs (default `bedrock`). */
  readonly name?: string;
}

/**
 * createBedrockProvider answers model calls through LangChain's
 * ChatBedrockConverse (Converse and ConverseStream), so every Bedrock model
 * with tool use works the same way. The AWS SDK retries throttling and 5xx;
 * what still fails becomes a ConnectError named by {@link bedrockErrorCode}.
 */
export function createBedrockProvider(options: BedrockProviderOptions): LlmProvider {
  const timeoutMs = options.timeoutMs ?? 60_000;
  // Parsed here so that a malformed endpoint fails at start-up, not at the first call.
  const endpoint = options.endpoint ? new URL(options.endpoint).href : undefined;
  const build = (tier: ModelTierName) => () =>
    new ChatBedrockConverse({
      model: options.models[tier],
      region: options.region,
      credentials: options.credentials,
      streamIdleTimeout: timeoutMs,
      clientOptions: {
        maxAttempts: (options.maxRetries ?? 2) + 1,
        // ChatBedrockConverse overwrites clientOptions.endpoint (its endpointHost
        // is https-only), so a custom endpoint replaces the endpoint resolver.
        ...(endpoint ? { endpointProvider: () => ({ url: new URL(endpoint) }) } : {}),
      },
    });
  return createLangChainProvider({
    name: options.name ?? "bedrock",
    models: { fast: build("fast"), capable: build("capable") },
    modelNames: options.models,
    maxToolRounds: options.maxToolRounds,
    timeoutMs,
    mapError: bedrockErrorCode,
  });
}

/**
 * bedrockErrorCode maps Bedrock Runtime's exceptions (by name) to codes:
 * throttling and quotas are ResourceExhausted, a rejected request or unknown
 * model InvalidArgument, refused credentials FailedPrecondition, an
 * unavailable service or model Unavailable, a model timeout DeadlineExceeded.
 * Other errors are left to their HTTP status (`$metadata.httpStatusCode`).
 */
export function bedrockErrorCode(e: unknown): Code | undefined {
  const err = e as { name?: unknown; lc_error_code?: unknown } | null | undefined;
  switch (err?.name) {
    case "ThrottlingException":
    case "TooManyRequestsException":
    case "ServiceQuotaExceededException":
      return Code.ResourceExhausted;
    case "ValidationException":
    case "ResourceNotFoundException":
      return Code.InvalidArgument;
    case "AccessDeniedException":
    case "UnrecognizedClientException":
    case "InvalidSignatureException":
    case "ExpiredTokenException":
    case "CredentialsProviderError":
      return Code.FailedPrecondition;
    case "ServiceUnavailableException":
    case "InternalServerException":
    case "ModelNotReadyException":
    case "ModelErrorException":
    case "ModelStreamErrorException":
      return Code.Unavailable;
    case "ModelTimeoutException":
    case "TimeoutError":
      return Code.DeadlineExceeded;
  }
  // ChatBedrockConverse's own stream idle watchdog.
  if (err?.lc_error_code === "MODEL_STREAM_TIMEOUT") return Code.DeadlineExceeded;
  return undefined;
}

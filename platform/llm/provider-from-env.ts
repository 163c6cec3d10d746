import type { LlmProvider } from "./llm-provider.js";
import { createOfflineProvider } from "./offline-provider.js";
import { createOpenAIProvider } from "./openai-provider.js";
import { createFallbackProvider } from "./fallback-provider.js";
import { createVertexProvider } from "./vertex-provider.js";
import { createBedrockProvider } from "./bedrock-provider.js";

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
    case "vertex": {
      // Google Vertex AI with Application Default Credentials (a service account, gcloud's login, the metadata server).
      const project = env.GOOGLE_CLOUD_PROJECT;
      if (!project) throw new Error("LLM_PROVIDER=vertex needs GOOGLE_CLOUD_PROJECT (the Google Cloud project that runs the models)");
      if (env.VERTEX_API_ENDPOINT?.includes("://")) {
        throw new Error(`VERTEX_API_ENDPOINT is a host name (host or host:port, always HTTPS), got "${env.VERTEX_API_ENDPOINT}"`);
      }
      return createVertexProvider({
        project,
        location: env.VERTEX_LOCATION || "us-central1",
        models: { fast: env.VERTEX_MODEL_FAST || "gemini-2.5-flash", capable: env.VERTEX_MODEL_CAPABLE || "gemini-2.5-pro" },
        apiEndpoint: env.VERTEX_API_ENDPOINT || undefined,
        timeoutMs: milliseconds(env, "VERTEX_TIMEOUT_MS"),
      });
    }
    case "bedrock": {
      // Amazon Bedrock with the standard AWS credential chain (environment, profile, SSO, web identity, ECS or EC2 role).
      const region = env.AWS_REGION || env.AWS_DEFAULT_REGION;
      if (!region) throw new Error("LLM_PROVIDER=bedrock needs AWS_REGION (or AWS_DEFAULT_REGION), the region of the Bedrock models");
      if (env.BEDROCK_ENDPOINT && !URL.canParse(env.BEDROCK_ENDPOINT)) {
        throw new Error(`BEDROCK_ENDPOINT must be a URL such as https://bedrock-runtime.us-east-1.amazonaws.com, got "${env.BEDROCK_ENDPOINT}"`);
      }
      return createBedrockProvider({
        region,
        // Claude 4.5 models are served on demand through inference profiles; `global.` routes to any region with capacity.
        models: {
          fast: env.BEDROCK_MODEL_FAST || "global.anthropic.claude-haiku-4-5-20251001-v1:0",
          capable: env.BEDROCK_MODEL_CAPABLE || "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        },
        endpoint: env.BEDROCK_ENDPOINT || undefined,
        timeoutMs: milliseconds(env, "BEDROCK_TIMEOUT_MS"),
      });
    }
    default:
      throw new Error(`LLM_PROVIDER="${name}" is not supported; supported: offline, openai, vertex, bedrock`);
  }
}

/** milliseconds reads an optional positive whole number of milliseconds, failing at start-up naming the variable. */
function milliseconds(env: Record<string, string | undefined>, variable: string): number | undefined {
  const raw = env[variable];
  if (!raw) return undefined;
  if (!/^\d+$/.test(raw) || Number(raw) === 0) throw new Error(`${variable} must be a positive whole number of milliseconds, got "${raw}"`);
  return Number(raw);
}

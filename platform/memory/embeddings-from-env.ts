import type { EmbeddingsInterface } from "@langchain/core/embeddings";
import { LocalEmbeddings } from "./local-embeddings.js";
import { OpenAIEmbeddings } from "./openai-embeddings.js";

/**
 * embeddingsFromEnv picks the embeddings of vector memory from
 * `EMBEDDINGS_PROVIDER`: `local` (the default: deterministic, no network) or
 * `openai` (OpenAI, or an OpenAI-compatible server at OPENAI_BASE_URL, with
 * EMBEDDINGS_MODEL, default `text-embedding-3-small`). Vectors always have
 * `dimensions` entries, the length of the memories tables. A provider that
 * is named but not configured fails at start-up with a message.
 */
export function embeddingsFromEnv(dimensions: number, env: Record<string, string | undefined> = process.env): EmbeddingsInterface {
  const name = env.EMBEDDINGS_PROVIDER || "local";
  switch (name) {
    case "local":
      return new LocalEmbeddings({ dimensions });
    case "openai": {
      const baseURL = env.OPENAI_BASE_URL || undefined;
      const apiKey = env.OPENAI_API_KEY || (baseURL ? "not-needed" : undefined);
      if (!apiKey) throw new Error("EMBEDDINGS_PROVIDER=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local OpenAI-compatible server)");
      return new OpenAIEmbeddings({ apiKey, baseURL, model: env.EMBEDDINGS_MODEL || "text-embedding-3-small", dimensions });
    }
    default:
      throw new Error(`EMBEDDINGS_PROVIDER="${name}" is not supported; supported: local, openai`);
  }
}

import OpenAI from "openai";
import { Embeddings, type EmbeddingsParams } from "@langchain/core/embeddings";

/** OpenAIEmbeddingsOptions configure embeddings from OpenAI or an OpenAI-compatible server. */
export interface OpenAIEmbeddingsOptions extends EmbeddingsParams {
  /** apiKey authenticates; local servers accept any value. */
  readonly apiKey: string;
  /** baseURL points at an OpenAI-compatible server (Ollama, vLLM, llama.cpp); OpenAI's when undefined. */
  readonly baseURL?: string;
  /** model is the embedding model, for example `text-embedding-3-small`. */
  readonly model: string;
  /** dimensions is the vector length asked for; it must match the memories table's. */
  readonly dimensions: number;
  /** timeoutMs bounds one request (default 30 s). */
  readonly timeoutMs?: number;
}

/**
 * OpenAIEmbeddings is a LangChain Embeddings over the official `openai`
 * client's embeddings endpoint, asking for the memories table's vector
 * length (text-embedding-3 models shorten their vectors on request) and
 * refusing an answer of another length rather than storing it. (LangChain's
 * own @langchain/openai would add a second OpenAI client to the project for
 * one call.)
 */
export class OpenAIEmbeddings extends Embeddings {
  /** dimensions is the vector length. */
  readonly dimensions: number;
  private readonly client: OpenAI;
  private readonly model: string;

  constructor(options: OpenAIEmbeddingsOptions) {
    // The openai client retries (429, 5xx, timeouts); LangChain's caller must not retry on top of it.
    super({ maxRetries: 0, ...options });
    this.dimensions = options.dimensions;
    this.model = options.model;
    this.client = new OpenAI({ apiKey: options.apiKey, baseURL: options.baseURL, timeout: options.timeoutMs ?? 30_000, maxRetries: 2 });
  }

  /** embedDocuments embeds texts in batches of 64, in order. */
  async embedDocuments(texts: string[]): Promise<number[][]> {
    const out: number[][] = [];
    for (let i = 0; i < texts.length; i += 64) out.push(...(await this.embed(texts.slice(i, i + 64))));
    return out;
  }

  /** embedQuery embeds one text. */
  async embedQuery(text: string): Promise<number[]> {
    return (await this.embed([text]))[0];
  }

  private async embed(input: string[]): Promise<number[][]> {
    const res = await this.caller.call(() => this.client.embeddings.create({ model: this.model, input, dimensions: this.dimensions, encoding_format: "float" }));
    const vectors = [...res.data].sort((a, b) => a.index - b.index).map((d) => d.embedding);
    for (const v of vectors) {
      if (v.length !== this.dimensions) {
        throw new Error(`${this.model} returned ${v.length}-dimensional embeddings; the memories table holds ${this.dimensions} (set a model that supports "dimensions")`);
      }
    }
    if (vectors.length !== input.length) throw new Error(`${this.model} returned ${vectors.length} embeddings for ${input.length} texts`);
    return vectors;
  }
}

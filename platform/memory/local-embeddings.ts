import { createHash } from "node:crypto";
import { Embeddings, type EmbeddingsParams } from "@langchain/core/embeddings";

/**
 * LocalEmbeddings is the offline default embedding: deterministic, no
 * network, no keys. It hashes word unigrams and bigrams into a fixed number
 * of signed buckets (the "hashing trick") and L2-normalises the result, so
 * texts that share words are close in cosine distance. It is a real,
 * if modest, embedding — not a stand-in that returns constants.
 */
export class LocalEmbeddings extends Embeddings {
  /** dimensions is the vector length. */
  readonly dimensions: number;

  constructor(params: EmbeddingsParams & { dimensions?: number } = {}) {
    super(params);
    this.dimensions = params.dimensions ?? 256;
  }

  /** embedDocuments embeds each text. */
  async embedDocuments(texts: string[]): Promise<number[][]> {
    return texts.map((t) => this.embed(t));
  }

  /** embedQuery embeds one text. */
  async embedQuery(text: string): Promise<number[]> {
    return this.embed(text);
  }

  private embed(text: string): number[] {
    const v = new Array<number>(this.dimensions).fill(0);
    const words = text.toLowerCase().match(/[a-z0-9]+/g) ?? [];
    const features = [...words, ...words.slice(1).map((w, i) => `${words[i]} ${w}`)];
    for (const f of features) {
      const h = createHash("sha256").update(f).digest();
      const bucket = h.readUInt32BE(0) % this.dimensions;
      v[bucket] += h[4] & 1 ? 1 : -1;
    }
    const norm = Math.hypot(...v);
    return norm === 0 ? v : v.map((x) => x / norm);
  }
}

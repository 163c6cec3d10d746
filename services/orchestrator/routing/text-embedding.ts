import { isQuestion, tag, type Concept } from "./text-features.js";

/** SparseVector is an L2-normalised vector kept as its non-zero entries (in no particular order). */
export interface SparseVector {
  readonly idx: Uint32Array;
  readonly val: Float32Array;
}

/** FeatureWeights weigh the kinds of feature a text is embedded with. */
export interface FeatureWeights {
  /** word weighs a stem (times its inverse document frequency). */
  readonly word: number;
  /** bigram weighs two neighbouring stems. */
  readonly bigram: number;
  /** chars weighs a stem's character 4-grams, together (they share the stem's weight). */
  readonly chars: number;
  /** concept weighs each concept a word or phrase carries (analysis act, metric, content …). */
  readonly concept: number;
  /** question weighs a request that asks a question. */
  readonly question: number;
}

/** defaultFeatureWeights were chosen on the tuning part of the labelled requests (docs/routing.md). */
export const defaultFeatureWeights: FeatureWeights = { word: 1, bigram: 0.5, chars: 0.35, concept: 2.5, question: 2.5 };

/** TextEmbedderOptions configure createTextEmbedder. */
export interface TextEmbedderOptions {
  /** corpus gives the word statistics (inverse document frequency); usually every example text. */
  readonly corpus: readonly string[];
  /** dimensions is the number of hash buckets (default 4096). */
  readonly dimensions?: number;
  /** weights weigh the kinds of feature (default defaultFeatureWeights). */
  readonly weights?: Partial<FeatureWeights>;
}

/** TextEmbedder turns text into a deterministic sparse vector; similar requests get close vectors. */
export interface TextEmbedder {
  /** dimensions is the vector length. */
  readonly dimensions: number;
  /** embed embeds one text. */
  embed(text: string): SparseVector;
}

/** fnv1a is the 32-bit FNV-1a hash of a string: fast and the same on every machine. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const concepts: readonly Concept[] = ["analyze", "create", "metric", "data", "asset", "channel", "strategy"];

/**
 * createTextEmbedder builds the router's local embedding: stems weighted by
 * their rarity in the corpus, stem bigrams, character 4-grams of each stem
 * (so "retain" and "retention" still share something), the concepts of the
 * lexicon and whether the text is a question, hashed into signed buckets
 * (the hashing trick) and L2-normalised. Same text, same vector, anywhere.
 */
export function createTextEmbedder(options: TextEmbedderOptions): TextEmbedder {
  const dimensions = options.dimensions ?? 4096;
  const w = { ...defaultFeatureWeights, ...options.weights };
  const df = new Map<string, number>();
  for (const text of options.corpus) {
    for (const s of new Set(tag(text).filter((t) => !t.stop).map((t) => t.stem))) df.set(s, (df.get(s) ?? 0) + 1);
  }
  const n = options.corpus.length;
  const idf = (s: string): number => Math.log((n + 1) / ((df.get(s) ?? 0) + 1)) + 1;
  // Scratch space for one embedding at a time (embedding is synchronous): no map, no garbage per feature.
  const scratch = new Float64Array(dimensions);
  const touched: number[] = [];
  const add = (feature: string, weight: number): void => {
    if (weight === 0) return;
    const h = fnv1a(feature);
    const i = h % dimensions;
    if (scratch[i] === 0) touched.push(i);
    // The sign comes from the hash's top bit, so colliding features tend to cancel rather than pile up.
    scratch[i] += h >>> 31 ? -weight : weight;
  };

  return {
    dimensions,
    embed(text) {
      const tagged = tag(text);
      const content = tagged.filter((t) => !t.stop);
      const counts = new Map<Concept, number>();
      for (const [i, t] of content.entries()) {
        const wi = idf(t.stem);
        add(`w:${t.stem}`, w.word * wi);
        if (i > 0) add(`b:${content[i - 1].stem} ${t.stem}`, (w.bigram * (wi + idf(content[i - 1].stem))) / 2);
        if (w.chars > 0 && t.stem.length > 3) {
          const padded = `^${t.stem}$`;
          const grams = padded.length - 3;
          for (let j = 0; j < grams; j++) add(`c:${padded.slice(j, j + 4)}`, (w.chars * wi) / grams);
        }
      }
      for (const t of tagged) for (const c of t.concepts) counts.set(c, (counts.get(c) ?? 0) + 1);
      // Concepts count with a square root: three metric words are more metric than one, not three times.
      for (const c of concepts) add(`k:${c}`, w.concept * Math.sqrt(counts.get(c) ?? 0) * 2);
      if (isQuestion(text)) add("q:question", w.question * 2);
      const idx = new Uint32Array(touched.length);
      const val = new Float32Array(touched.length);
      let norm = 0;
      for (const [k, i] of touched.entries()) {
        idx[k] = i;
        val[k] = scratch[i];
        norm += scratch[i] * scratch[i];
        scratch[i] = 0;
      }
      touched.length = 0;
      norm = Math.sqrt(norm) || 1;
      for (let k = 0; k < val.length; k++) val[k] /= norm;
      return { idx, val };
    },
  };
}

/** DenseQuery holds one query vector densely, so it can be compared with many sparse vectors fast. */
export class DenseQuery {
  private readonly dense: Float32Array;
  private current: SparseVector | undefined;

  constructor(dimensions: number) {
    this.dense = new Float32Array(dimensions);
  }

  /** load makes `v` the query (and clears the previous one). */
  load(v: SparseVector): this {
    if (this.current) for (const i of this.current.idx) this.dense[i] = 0;
    for (let k = 0; k < v.idx.length; k++) this.dense[v.idx[k]] = v.val[k];
    this.current = v;
    return this;
  }

  /** cosine is the cosine similarity of the query and `v` (both are normalised). */
  cosine(v: SparseVector): number {
    let s = 0;
    const d = this.dense;
    for (let k = 0; k < v.idx.length; k++) s += v.val[k] * d[v.idx[k]];
    return s;
  }
}

import { Target } from "../../../gen/raptorflow/v3/orchestrator_pb.js";
import type { LearnedExamples } from "./learned-examples.js";
import type { RouteExamples } from "./route-examples.js";
import { DenseQuery, type SparseVector, type TextEmbedder } from "./text-embedding.js";
import { clauses, type Clause } from "./text-features.js";

/** ClassifierParams are the classifier's knobs, chosen on the tuning part of the labelled requests. */
export interface ClassifierParams {
  /** k is how many of a route's nearest examples its score averages. */
  readonly k: number;
  /** clauseMargin is how much nearer one side's examples a clause must be to count as analysis or as production. */
  readonly clauseMargin: number;
  /** actPrior is how much a clause's opening verb (analysis or production) leans it to that side. */
  readonly actPrior: number;
  /** hybridBonus is added to the hybrid route's score when the clauses ask for both analysis and production. */
  readonly hybridBonus: number;
  /** singlePenalty is taken from the hybrid route's score when they do not. */
  readonly singlePenalty: number;
  /** temperature turns score differences into the confidence (softmax over routes). */
  readonly temperature: number;
  /** learnedBoost multiplies the similarity of a learned (feedback) example. */
  readonly learnedBoost: number;
  /** learnedMatch is the similarity at which a learned example decides the route on its own. */
  readonly learnedMatch: number;
  /** familiar is the route score from which a request counts as like the examples; below it, confidence shrinks. */
  readonly familiar: number;
}

/** defaultClassifierParams were chosen on the tuning part of routing-dev.jsonl and on the examples themselves (docs/routing.md). */
export const defaultClassifierParams: ClassifierParams = {
  k: 5,
  clauseMargin: 0.02,
  actPrior: 0.15,
  hybridBonus: 0.15,
  singlePenalty: 0.1,
  temperature: 0.04,
  learnedBoost: 1.1,
  learnedMatch: 0.8,
  familiar: 0.25,
};

/** ScoredClause is a clause of the request and which side it leans to. */
export interface ScoredClause extends Clause {
  /** lean is > 0 toward analysis (V1), < 0 toward production (V2). */
  readonly lean: number;
}

/** Classification is the route the classifier picked, with its evidence. */
export interface Classification {
  /** target is the route. */
  readonly target: Target.V1 | Target.V2 | Target.HYBRID;
  /** confidence is the softmax probability of the chosen route, from 0 to 1. */
  readonly confidence: number;
  /** scores are each route's score. */
  readonly scores: Readonly<Record<"v1" | "v2" | "hybrid", number>>;
  /** clauses are the request's clauses and their leans. */
  readonly clauses: readonly ScoredClause[];
  /** nearest is the example most like the request, and its route. */
  readonly nearest?: { readonly text: string; readonly target: Target; readonly similarity: number; readonly learned: boolean };
  /** learned says a learned example decided the route on its own. */
  readonly learned: boolean;
}

interface Indexed {
  readonly text: string;
  readonly target: Target;
  readonly vector: SparseVector;
}

/** RouteClassifier picks V1, V2 or hybrid for a request. */
export interface RouteClassifier {
  /**
   * classify routes a request; organization selects the examples learned
   * from that organization's feedback; parts are the request's clauses when
   * the caller has them already.
   */
  classify(text: string, organization?: string, parts?: readonly Clause[]): Classification;
  /** leanOf scores one text's lean (> 0 analysis, < 0 production), as a clause is scored. */
  leanOf(text: string, act?: "analyze" | "create"): number;
}

/** RouteClassifierOptions configure createRouteClassifier. */
export interface RouteClassifierOptions {
  /** embedder embeds requests and examples. */
  readonly embedder: TextEmbedder;
  /** examples are the routes' built-in example utterances. */
  readonly examples: readonly RouteExamples[];
  /** learned are the examples learned from feedback, when there are any. */
  readonly learned?: LearnedExamples;
  /** params override defaultClassifierParams. */
  readonly params?: Partial<ClassifierParams>;
}

const keyOf = { [Target.V1]: "v1", [Target.V2]: "v2", [Target.HYBRID]: "hybrid" } as const;

/** TopK keeps the k largest values seen, for their mean, without sorting everything. */
class TopK {
  private readonly top: number[] = [];
  constructor(private readonly k: number) {}

  /** add offers a value. */
  add(v: number): void {
    const t = this.top;
    if (t.length === this.k && v <= t[t.length - 1]) return;
    let i = t.length === this.k ? t.length - 1 : t.length;
    while (i > 0 && t[i - 1] < v) {
      t[i] = t[i - 1];
      i--;
    }
    t[i] = v;
  }

  /** mean is the mean of the kept values (0 when none). */
  mean(): number {
    return this.top.length ? this.top.reduce((a, b) => a + b, 0) / this.top.length : 0;
  }
}

/**
 * createRouteClassifier is semantic-router's idea on a local embedding: each
 * route has example utterances, and a request's score for a route is the
 * mean similarity of the route's k nearest examples. Two features sharpen
 * it. The request is cut into clauses, and each clause leans to analysis or
 * to production by its nearest V1 and V2 examples and its opening verb: a
 * request with an analysis clause and a production clause is hybrid. And
 * examples learned from an organization's feedback join the routes for that
 * organization, deciding on their own when a request is nearly the same.
 */
export function createRouteClassifier(options: RouteClassifierOptions): RouteClassifier {
  const p = { ...defaultClassifierParams, ...options.params };
  const { embedder } = options;
  const indexed: Indexed[] = options.examples.flatMap((r) => r.utterances.map((text) => ({ text, target: r.target, vector: embedder.embed(text) })));
  const v1 = indexed.filter((e) => e.target === Target.V1);
  const v2 = indexed.filter((e) => e.target === Target.V2);
  const query = new DenseQuery(embedder.dimensions);
  // Learned inputs are embedded once, when first needed.
  const learnedVectors = new Map<string, SparseVector>();
  const vectorOf = (text: string): SparseVector => {
    let v = learnedVectors.get(text);
    if (!v) {
      v = embedder.embed(text);
      learnedVectors.set(text, v);
    }
    return v;
  };

  const sideScore = (side: readonly Indexed[]): number => {
    const top = new TopK(p.k);
    for (const e of side) top.add(query.cosine(e.vector));
    return top.mean();
  };

  const leanOf = (text: string, act?: "analyze" | "create"): number => {
    query.load(embedder.embed(text));
    const prior = act === "analyze" ? p.actPrior : act === "create" ? -p.actPrior : 0;
    return sideScore(v1) - sideScore(v2) + prior;
  };

  return {
    leanOf,
    classify(text, organization, parts = clauses(text)) {
      const scored: ScoredClause[] = parts.map((c) => ({ ...c, lean: leanOf(c.text, c.act) }));
      query.load(embedder.embed(text));
      const sims = { v1: new TopK(p.k), v2: new TopK(p.k), hybrid: new TopK(p.k) };
      let best: Indexed | undefined;
      let bestSim = -Infinity;
      for (const e of indexed) {
        const s = query.cosine(e.vector);
        sims[keyOf[e.target as Target.V1 | Target.V2 | Target.HYBRID]].add(s);
        if (s > bestSim) [best, bestSim] = [e, s];
      }
      let nearest: Classification["nearest"] = best && { text: best.text, target: best.target, similarity: bestSim, learned: false };
      let learnedNearest: Classification["nearest"];
      for (const l of organization !== undefined && options.learned ? options.learned.of(organization) : []) {
        const s = query.cosine(vectorOf(l.input));
        sims[keyOf[l.target as Target.V1 | Target.V2 | Target.HYBRID]].add(Math.min(1, s * p.learnedBoost));
        if (!learnedNearest || s >= learnedNearest.similarity) learnedNearest = { text: l.input, target: l.target, similarity: s, learned: true };
      }
      const scores = { v1: sims.v1.mean(), v2: sims.v2.mean(), hybrid: sims.hybrid.mean() };
      const likeness = Math.max(scores.v1, scores.v2, scores.hybrid);
      // Clauses that clearly ask for analysis and clauses that clearly ask for production make a hybrid request.
      const analysis = Math.max(0, ...scored.map((c) => c.lean - p.clauseMargin));
      const production = Math.max(0, ...scored.map((c) => -c.lean - p.clauseMargin));
      const both = scored.length > 1 && analysis > 0 && production > 0;
      scores.hybrid += both ? p.hybridBonus + Math.min(analysis, production) : -p.singlePenalty;
      let target: Classification["target"] = scores.v1 >= scores.v2 ? Target.V1 : Target.V2;
      if (scores.hybrid > Math.max(scores.v1, scores.v2)) target = Target.HYBRID;
      let learned = false;
      if (learnedNearest && learnedNearest.similarity >= p.learnedMatch) {
        target = learnedNearest.target as Classification["target"];
        learned = true;
        nearest = learnedNearest;
      } else if (learnedNearest && nearest && learnedNearest.similarity > nearest.similarity) {
        nearest = learnedNearest;
      }
      // Confidence: the chosen route's softmax share, shrunk when the request is like none of the examples.
      const order = [scores.v1, scores.v2, scores.hybrid];
      const top = Math.max(...order);
      const z = order.map((s) => Math.exp((s - top) / p.temperature));
      const share = z[[Target.V1, Target.V2, Target.HYBRID].indexOf(target)] / (z[0] + z[1] + z[2]);
      const confidence = learned ? learnedNearest!.similarity : share * Math.min(1, Math.max(0, likeness) / p.familiar);
      return { target, confidence: Math.min(1, Math.max(0, confidence)), scores, clauses: scored, nearest, learned };
    },
  };
}

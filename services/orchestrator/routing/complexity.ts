import { tag, type Clause } from "./text-features.js";

/** Complexity is how hard a request looks, from 0 (trivial) to 1 (very complex), and why. */
export interface Complexity {
  /** score is in [0, 1]. */
  readonly score: number;
  /** parts name what raised the score, for the decision's reasons. */
  readonly parts: readonly string[];
}

/** breadthWords ask for a wide piece of work: end to end, every channel, a full plan. */
const breadthWords = new Set(["end", "full", "complete", "entire", "everything", "integrated", "multichannel", "omnichannel", "across", "all", "whole", "comprehensive", "strategy", "roadmap", "program", "programme", "quarter", "months", "weeks"]);
/** reasoningWords ask for reasoning beyond a lookup: causes, comparisons, projections. */
const reasoningWords = new Set(["why", "driver", "drive", "cause", "correlat", "compar", "versu", "vs", "forecast", "predict", "project", "scenario", "model", "impact", "tradeoff", "trade", "sensitiv", "relationship"]);

/**
 * complexityOf scores a request from what it asks: how many acts (clauses
 * with their own verb), whether it needs both analysis and production, how
 * long it is, how broad (end to end, across channels, a quarter) and how much
 * reasoning it wants (why, compare, forecast). The weights are simple and
 * documented; they decide the plan's depth and each step's model tier.
 */
export function complexityOf(text: string, parts: readonly Clause[], hybrid: boolean): Complexity {
  const tagged = tag(text);
  const content = tagged.filter((t) => !t.stop);
  const acts = parts.filter((c) => c.act !== undefined).length;
  const breadth = new Set(tagged.filter((t) => breadthWords.has(t.word)).map((t) => t.word)).size;
  const reasoning = new Set(content.filter((t) => [...reasoningWords].some((r) => t.stem.startsWith(r))).map((t) => t.stem)).size;
  const listed = (text.match(/,/g)?.length ?? 0) + (text.match(/\band\b/gi)?.length ?? 0);
  const terms: [number, string][] = [
    [0.1, ""],
    [0.15 * Math.min(3, Math.max(0, acts - 1)), `${acts} acts`],
    [hybrid ? 0.15 : 0, "analysis and production"],
    [0.2 * Math.min(1, content.length / 40), `${content.length} content words`],
    [0.08 * Math.min(3, breadth), "broad scope"],
    [0.07 * Math.min(2, reasoning), "reasoning (why, compare, forecast)"],
    [0.02 * Math.min(5, listed), "several items"],
  ];
  const score = Math.min(1, terms.reduce((s, [v]) => s + v, 0));
  const why = terms.filter(([v, name]) => v > 0.001 && name !== "").map(([v, name]) => `${name} +${v.toFixed(2)}`);
  return { score: Math.round(score * 1000) / 1000, parts: why };
}

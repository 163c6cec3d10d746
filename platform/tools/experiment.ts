import { tool } from "@langchain/core/tools";
import { z } from "zod";
import { parseToolInput } from "./validate.js";

/*
 * Standard normal distribution, written from the textbook expansions (no
 * library; the only published constants used are the six of the starting
 * approximation for the quantile):
 *
 *  - |x| < 3: Φ(x) − ½ = φ(x)·Σ_{k≥0} x^{2k+1} / (1·3·5···(2k+1))
 *    (the power series of the error function in this form, all terms of one
 *    sign, so there is no cancellation);
 *  - x ≥ 3: the upper tail Q(x) = φ(x) / (x + 1/(x + 2/(x + 3/(x + …))))
 *    (Laplace's continued fraction for Mills' ratio), evaluated with the
 *    modified Lentz algorithm, so tails keep full relative precision;
 *  - Φ(−x) = Q(x).
 *
 * The quantile starts from the rational approximation of Abramowitz & Stegun
 * 26.2.23 (|error| < 4.5e-4) and is refined by Halley steps on Φ(x) − p using
 * the accurate Φ above, converging to ~1e-15.
 */

const SQRT_2PI = Math.sqrt(2 * Math.PI);
const SERIES_LIMIT = 3;

/** normalPdf is the standard normal density φ(x). */
export function normalPdf(x: number): number {
  return Math.exp(-0.5 * x * x) / SQRT_2PI;
}

/** φ(x)·Σ x^{2k+1}/(2k+1)!! = Φ(x) − ½, for |x| < SERIES_LIMIT. */
function centralPart(x: number): number {
  let term = x;
  let sum = x;
  const x2 = x * x;
  for (let k = 1; k < 500; k++) {
    term *= x2 / (2 * k + 1);
    sum += term;
    if (Math.abs(term) <= 1e-17 * Math.abs(sum)) break;
  }
  return normalPdf(x) * sum;
}

/** Q(x) = 1 − Φ(x) for x ≥ SERIES_LIMIT by the continued fraction. */
function upperTailCf(x: number): number {
  if (x === Number.POSITIVE_INFINITY) return 0;
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let k = 1; k < 5000; k++) {
    d = x + k * d;
    if (Math.abs(d) < tiny) d = tiny;
    d = 1 / d;
    c = x + k / c;
    if (Math.abs(c) < tiny) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return normalPdf(x) / f;
}

/** normalUpperTail is Q(x) = P(Z > x) = 1 − Φ(x), accurate in relative terms for large x. */
export function normalUpperTail(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  if (x < 0) return normalCdf(-x);
  if (x < SERIES_LIMIT) return 0.5 - centralPart(x);
  return upperTailCf(x);
}

/** normalCdf is the standard normal cumulative distribution function Φ(x). */
export function normalCdf(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  if (x <= -SERIES_LIMIT) return upperTailCf(-x);
  if (x < SERIES_LIMIT) return 0.5 + centralPart(x);
  return 1 - upperTailCf(x);
}

/**
 * normalQuantile is the inverse Φ⁻¹(p) of the standard normal CDF for p in
 * [0, 1] (±Infinity at the ends); it throws a RangeError outside [0, 1].
 */
export function normalQuantile(p: number): number {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`normalQuantile: p must be in [0, 1], got ${p}`);
  if (p === 0) return Number.NEGATIVE_INFINITY;
  if (p === 1) return Number.POSITIVE_INFINITY;
  if (p === 0.5) return 0;
  // For p ≥ 0.5, 1 − p is exact in binary floating point (Sterbenz).
  const q = p < 0.5 ? p : 1 - p;
  // Solve Φ(x) = q for x < 0: A&S 26.2.23 start, then Halley refinement.
  const t = Math.sqrt(-2 * Math.log(q));
  let x = -(t - (2.515517 + 0.802853 * t + 0.010328 * t * t) / (1 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t));
  for (let i = 0; i < 50; i++) {
    const dens = normalPdf(x);
    if (dens === 0) break;
    const u = (normalCdf(x) - q) / dens;
    const step = u / (1 + 0.5 * x * u);
    x -= step;
    if (Math.abs(step) <= 1e-15 * Math.max(1, Math.abs(x))) break;
  }
  return p < 0.5 ? x : -x;
}

const count = (what: string) =>
  z.number().int(`${what} must be a whole number`).min(0, `${what} must be >= 0`);

const groupSchema = z
  .object({
    conversions: count("conversions").describe("number of converting units"),
    visitors: z
      .number()
      .int("visitors must be a whole number")
      .min(1, "visitors must be >= 1 (a rate needs at least one visitor)")
      .describe("number of units exposed"),
  })
  .superRefine((g, ctx) => {
    if (g.conversions > g.visitors) {
      ctx.addIssue({ code: "custom", path: ["conversions"], message: "must not exceed visitors" });
    }
  });

const probability = (what: string) =>
  z.number().gt(0, `${what} must be strictly between 0 and 1`).lt(1, `${what} must be strictly between 0 and 1`);

/** zTestInputSchema is the input of {@link twoProportionZTest}. */
export const zTestInputSchema = z.object({
  control: groupSchema.describe("group A (baseline)"),
  treatment: groupSchema.describe("group B (variant)"),
  confidenceLevel: probability("confidenceLevel").default(0.95).describe("confidence level of the interval, e.g. 0.95"),
});

/** ZTestInput is the input of {@link twoProportionZTest} (before defaults). */
export type ZTestInput = z.input<typeof zTestInputSchema>;

/** ZTestResult is the output of {@link twoProportionZTest}. */
export interface ZTestResult {
  readonly controlRate: number;
  readonly treatmentRate: number;
  /** difference is treatmentRate − controlRate. */
  readonly difference: number;
  /** relativeLift is difference / controlRate, or null when controlRate is 0. */
  readonly relativeLift: number | null;
  readonly pooledRate: number;
  /** standardError is the pooled standard error used for z. */
  readonly standardError: number;
  /** z is difference / standardError, or null when the pooled rate is 0 or 1. */
  readonly z: number | null;
  /** pValueTwoSided tests H1: rates differ. */
  readonly pValueTwoSided: number | null;
  /** pValueTreatmentGreater tests H1: treatment rate > control rate. */
  readonly pValueTreatmentGreater: number | null;
  /** pValueTreatmentLess tests H1: treatment rate < control rate. */
  readonly pValueTreatmentLess: number | null;
  /** confidenceInterval is the unpooled (Wald) interval for the difference. */
  readonly confidenceInterval: { level: number; lower: number; upper: number; standardError: number };
  readonly warnings: string[];
}

/**
 * twoProportionZTest compares conversion rates of a control and a treatment
 * group with the pooled two-proportion z-test (equivalent to Pearson's
 * chi-square test without continuity correction: z² = X²). The difference is
 * treatment − control; the confidence interval for it uses the unpooled
 * standard error √(p₁q₁/n₁ + p₂q₂/n₂).
 */
export function twoProportionZTest(input: ZTestInput): ZTestResult {
  const v = parseToolInput(zTestInputSchema, input, "twoProportionZTest");
  const { control: a, treatment: b } = v;
  const p1 = a.conversions / a.visitors;
  const p2 = b.conversions / b.visitors;
  const diff = p2 - p1;
  const pooled = (a.conversions + b.conversions) / (a.visitors + b.visitors);
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / a.visitors + 1 / b.visitors));
  const warnings: string[] = [];
  let zStat: number | null = null;
  let two: number | null = null;
  let greater: number | null = null;
  let less: number | null = null;
  if (se > 0) {
    zStat = diff / se;
    greater = normalUpperTail(zStat);
    less = normalCdf(zStat);
    two = Math.min(1, 2 * normalUpperTail(Math.abs(zStat)));
  } else {
    warnings.push("The pooled rate is 0 or 1 (no variation), so z and the p-values are undefined.");
  }
  for (const [name, g, p] of [
    ["control", a, p1],
    ["treatment", b, p2],
  ] as const) {
    if (g.visitors * p < 5 || g.visitors * (1 - p) < 5) {
      warnings.push(`${name} has fewer than 5 conversions or non-conversions; the normal approximation may be poor.`);
    }
  }
  const seU = Math.sqrt((p1 * (1 - p1)) / a.visitors + (p2 * (1 - p2)) / b.visitors);
  const zc = normalQuantile(0.5 + v.confidenceLevel / 2);
  return {
    controlRate: p1,
    treatmentRate: p2,
    difference: diff,
    relativeLift: p1 > 0 ? diff / p1 : null,
    pooledRate: pooled,
    standardError: se,
    z: zStat,
    pValueTwoSided: two,
    pValueTreatmentGreater: greater,
    pValueTreatmentLess: less,
    confidenceInterval: { level: v.confidenceLevel, lower: diff - zc * seU, upper: diff + zc * seU, standardError: seU },
    warnings,
  };
}

/** sampleSizeInputSchema is the input of {@link sampleSizeTwoProportions}. */
export const sampleSizeInputSchema = z
  .object({
    baselineRate: probability("baselineRate").describe("control conversion rate p₁, e.g. 0.05"),
    minimumDetectableEffect: z
      .number()
      .refine((x) => x !== 0, "minimumDetectableEffect must not be 0")
      .describe("smallest effect worth detecting; see effectType"),
    effectType: z
      .enum(["absolute", "relative"])
      .default("relative")
      .describe("absolute: p₂ = p₁ + mde (0.01 = one percentage point); relative: p₂ = p₁·(1 + mde) (0.1 = +10%)"),
    alpha: probability("alpha").default(0.05).describe("significance level (type I error)"),
    power: probability("power").default(0.8).describe("1 − type II error"),
    alternative: z.enum(["two_sided", "one_sided"]).default("two_sided"),
  })
  .superRefine((v, ctx) => {
    const p2 =
      v.effectType === "absolute" ? v.baselineRate + v.minimumDetectableEffect : v.baselineRate * (1 + v.minimumDetectableEffect);
    if (!(p2 >= 0 && p2 <= 1)) {
      ctx.addIssue({
        code: "custom",
        path: ["minimumDetectableEffect"],
        message: `gives a target rate of ${p2}, outside [0, 1]`,
      });
    }
  });

/** SampleSizeInput is the input of {@link sampleSizeTwoProportions} (before defaults). */
export type SampleSizeInput = z.input<typeof sampleSizeInputSchema>;

/** SampleSizeResult is the output of {@link sampleSizeTwoProportions}. */
export interface SampleSizeResult {
  /** perGroup is the required number of units in each group (rounded up). */
  readonly perGroup: number;
  /** perGroupExact is the unrounded value of the formula. */
  readonly perGroupExact: number;
  readonly total: number;
  readonly baselineRate: number;
  readonly targetRate: number;
  readonly zAlpha: number;
  readonly zBeta: number;
}

/**
 * sampleSizeTwoProportions is the per-group sample size for a pooled
 * two-proportion z-test with equal groups, by the normal-approximation formula
 * n = [z_a·√(2·p̄·q̄) + z_b·√(p₁q₁ + p₂q₂)]² / (p₂ − p₁)², with p̄ = (p₁+p₂)/2,
 * z_a = Φ⁻¹(1 − α/2) (two-sided) or Φ⁻¹(1 − α), z_b = Φ⁻¹(power). This is the
 * formula without continuity correction (Fleiss, Statistical Methods for Rates
 * and Proportions) and the equation R's `power.prop.test` solves.
 */
export function sampleSizeTwoProportions(input: SampleSizeInput): SampleSizeResult {
  const v = parseToolInput(sampleSizeInputSchema, input, "sampleSizeTwoProportions");
  const p1 = v.baselineRate;
  const p2 = v.effectType === "absolute" ? p1 + v.minimumDetectableEffect : p1 * (1 + v.minimumDetectableEffect);
  const zAlpha = normalQuantile(1 - v.alpha / (v.alternative === "two_sided" ? 2 : 1));
  const zBeta = normalQuantile(v.power);
  const pBar = (p1 + p2) / 2;
  const num = zAlpha * Math.sqrt(2 * pBar * (1 - pBar)) + zBeta * Math.sqrt(p1 * (1 - p1) + p2 * (1 - p2));
  const exact = (num * num) / ((p2 - p1) * (p2 - p1));
  // Guard against 76.0000000001-style rounding noise before rounding up.
  const perGroup = Math.max(1, Math.ceil(exact - 1e-9));
  return { perGroup, perGroupExact: exact, total: 2 * perGroup, baselineRate: p1, targetRate: p2, zAlpha, zBeta };
}

/** experimentInputSchema is the zod schema of the `experiment_stats` tool input. */
export const experimentInputSchema = z
  .object({
    test: zTestInputSchema.optional().describe("observed A/B results to test"),
    sampleSize: sampleSizeInputSchema.optional().describe("plan: units needed per group"),
  })
  .superRefine((v, ctx) => {
    if (v.test === undefined && v.sampleSize === undefined) {
      ctx.addIssue({ code: "custom", path: ["test"], message: "give test, sampleSize, or both" });
    }
  });

/** ExperimentInput is the input of {@link experimentStats} (before defaults). */
export type ExperimentInput = z.input<typeof experimentInputSchema>;

/**
 * experimentStats runs {@link twoProportionZTest} and/or
 * {@link sampleSizeTwoProportions}, whichever parts are given.
 */
export function experimentStats(input: ExperimentInput): { test?: ZTestResult; sampleSize?: SampleSizeResult } {
  const v = parseToolInput(experimentInputSchema, input, "experiment_stats");
  return {
    ...(v.test ? { test: twoProportionZTest(v.test) } : {}),
    ...(v.sampleSize ? { sampleSize: sampleSizeTwoProportions(v.sampleSize) } : {}),
  };
}

/**
 * experimentTool is the LangChain tool `experiment_stats`: it runs
 * {@link experimentStats} and returns the result as a JSON string.
 */
export const experimentTool = tool(async (input) => JSON.stringify(experimentStats(input)), {
  name: "experiment_stats",
  description:
    "Deterministic A/B-test statistics for conversion rates. `test`: pooled two-proportion z-test (z, two-sided and " +
    "one-sided p-values, unpooled confidence interval for the difference, relative lift) from conversions/visitors of " +
    "control and treatment. `sampleSize`: units per group needed to detect a minimum effect (absolute or relative) at a " +
    "given alpha and power. Returns JSON. Use this instead of computing statistics yourself.",
  schema: experimentInputSchema,
});

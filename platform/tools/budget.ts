import { tool } from "@langchain/core/tools";
import { z } from "zod";
import { parseToolInput } from "./validate.js";

/**
 * ResponseCurve is a concave, increasing spend → expected-return curve:
 * `exponential` is a·(1 − e^(−spend/b)) (saturates at a; b is the spend scale),
 * `power` is a·spend^k with 0 < k < 1.
 */
export type ResponseCurve =
  | { readonly type: "exponential"; readonly a: number; readonly b: number }
  | { readonly type: "power"; readonly a: number; readonly k: number };

/** curveReturn is the expected return R(spend) of a response curve. */
export function curveReturn(curve: ResponseCurve, spend: number): number {
  if (curve.type === "exponential") return curve.a * -Math.expm1(-spend / curve.b);
  return spend === 0 ? 0 : curve.a * spend ** curve.k;
}

/** curveMarginal is the marginal return R′(spend) (Infinity for a power curve at 0). */
export function curveMarginal(curve: ResponseCurve, spend: number): number {
  if (curve.type === "exponential") return (curve.a / curve.b) * Math.exp(-spend / curve.b);
  return spend === 0 ? Number.POSITIVE_INFINITY : curve.a * curve.k * spend ** (curve.k - 1);
}

/** inverseMarginal is the unconstrained spend at which R′(spend) = λ (≥ 0). */
function inverseMarginal(curve: ResponseCurve, lambda: number): number {
  if (curve.type === "exponential") {
    const top = curve.a / curve.b;
    if (lambda === 0) return Number.POSITIVE_INFINITY;
    return lambda >= top ? 0 : curve.b * Math.log(top / lambda);
  }
  if (lambda === 0) return Number.POSITIVE_INFINITY;
  return ((curve.a * curve.k) / lambda) ** (1 / (1 - curve.k));
}

const positive = (what: string) => z.number().gt(0, `${what} must be > 0`);

const curveSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("exponential"),
    a: positive("a").describe("saturation: the most this channel can ever return"),
    b: positive("b").describe("spend scale: at spend = b the channel returns 63% of a"),
  }),
  z.object({
    type: z.literal("power"),
    a: positive("a").describe("scale"),
    k: z.number().gt(0, "k must be strictly between 0 and 1").lt(1, "k must be strictly between 0 and 1").describe("elasticity"),
  }),
]);

/** budgetInputSchema is the zod schema of the `budget_allocation` tool input. */
export const budgetInputSchema = z
  .object({
    totalBudget: z.number().min(0, "totalBudget must be >= 0").describe("the most that may be spent in total"),
    channels: z
      .array(
        z.object({
          name: z.string().min(1, "name must be a non-empty string"),
          curve: curveSchema.describe("expected return as a function of spend"),
          minSpend: z.number().min(0, "minSpend must be >= 0").default(0),
          maxSpend: z.number().min(0, "maxSpend must be >= 0").optional().describe("no cap when omitted"),
        }),
      )
      .min(1, "give at least one channel"),
    minMarginalReturn: z
      .number()
      .min(0, "minMarginalReturn must be >= 0")
      .default(0)
      .describe(
        "do not spend where one more unit of spend would return less than this (e.g. 1 = only spend while revenue per extra dollar >= 1); 0 = spend the whole budget",
      ),
  })
  .superRefine((v, ctx) => {
    const seen = new Map<string, number>();
    let minTotal = 0;
    v.channels.forEach((c, i) => {
      if (seen.has(c.name)) {
        ctx.addIssue({ code: "custom", path: ["channels", i, "name"], message: `duplicates channels[${seen.get(c.name)}].name` });
      } else seen.set(c.name, i);
      if (c.maxSpend !== undefined && c.maxSpend < c.minSpend) {
        ctx.addIssue({ code: "custom", path: ["channels", i, "maxSpend"], message: "must be >= minSpend" });
      }
      minTotal += c.minSpend;
    });
    if (minTotal > v.totalBudget * (1 + 1e-12)) {
      ctx.addIssue({
        code: "custom",
        path: ["totalBudget"],
        message: `is below the sum of minSpend (${minTotal}); the constraints are infeasible`,
      });
    }
  });

/** BudgetInput is the input of {@link allocateBudget} (before defaults). */
export type BudgetInput = z.input<typeof budgetInputSchema>;

/** ChannelAllocation is one channel's optimal spend and its economics. */
export interface ChannelAllocation {
  readonly name: string;
  readonly spend: number;
  readonly expectedReturn: number;
  /** roas is expectedReturn / spend (null at zero spend). */
  readonly roas: number | null;
  /** marginalRoas is R′(spend), the return of the next unit of spend (null if unbounded). */
  readonly marginalRoas: number | null;
  /** binding says which of the channel's own bounds is active, if any. */
  readonly binding: "min" | "max" | null;
}

/** BudgetResult is the output of {@link allocateBudget}. */
export interface BudgetResult {
  readonly channels: ChannelAllocation[];
  readonly totalBudget: number;
  readonly totalSpend: number;
  /** unallocated is totalBudget − totalSpend (> 0 only when the budget does not bind). */
  readonly unallocated: number;
  readonly expectedReturn: number;
  /** budgetBinding is true when the whole budget is spent and more would still pay. */
  readonly budgetBinding: boolean;
  /**
   * lambda is the common marginal return of every channel strictly inside its
   * bounds (the Lagrange multiplier / shadow price of the binding constraint);
   * null when it is unbounded.
   */
  readonly lambda: number | null;
  readonly notes: string[];
}

/**
 * allocateBudget maximises Σ R_c(spend_c) subject to Σ spend_c ≤ totalBudget
 * and minSpend_c ≤ spend_c ≤ maxSpend_c, for concave increasing response
 * curves. By the KKT conditions the optimum has one multiplier λ with
 * spend_c = clamp(R_c′⁻¹(λ), minSpend_c, maxSpend_c): channels strictly inside
 * their bounds have R′ = λ, channels at their minimum have R′ ≤ λ, at their
 * maximum R′ ≥ λ. Total spend S(λ) is continuous and non-increasing, so λ is
 * found by bisection (in log space) on S(λ) = totalBudget ("water-filling").
 * With `minMarginalReturn` μ > 0, λ is not allowed below μ and the budget is
 * left partly unspent when S(μ) < totalBudget.
 */
export function allocateBudget(input: BudgetInput): BudgetResult {
  const v = parseToolInput(budgetInputSchema, input, "budget_allocation");
  const B = v.totalBudget;
  const mu = v.minMarginalReturn;
  const chans = v.channels.map((c) => ({
    name: c.name,
    curve: c.curve as ResponseCurve,
    lo: c.minSpend,
    hi: c.maxSpend ?? Number.POSITIVE_INFINITY,
  }));
  const spendAt = (lambda: number) => chans.map((c) => Math.min(c.hi, Math.max(c.lo, inverseMarginal(c.curve, lambda))));
  const total = (s: number[]) => s.reduce((acc, x) => acc + x, 0);
  const notes: string[] = [];

  let lambda: number;
  let spends: number[];
  let budgetBinding: boolean;
  const minTotal = total(chans.map((c) => c.lo));
  const atFloor = spendAt(mu);
  if (minTotal >= B) {
    // Only the minimums fit: nothing is left to optimise.
    spends = chans.map((c) => c.lo);
    lambda = Math.max(mu, ...chans.map((c) => curveMarginal(c.curve, c.lo)));
    budgetBinding = true;
    notes.push("The minimum spends use the whole budget; every channel is at minSpend.");
  } else if (total(atFloor) <= B) {
    // Spending stops where marginal return reaches the floor (or every channel is capped).
    lambda = mu;
    spends = atFloor;
    budgetBinding = false;
    notes.push(
      mu > 0
        ? `Budget does not bind: every further unit would return less than minMarginalReturn (${mu}) or hit maxSpend.`
        : "Budget does not bind: every channel is at its maxSpend.",
    );
  } else {
    budgetBinding = true;
    // Bracket λ: S(lo) > B ≥ S(hi).
    let hi = Math.max(mu, 1);
    for (let i = 0; i < 4000 && total(spendAt(hi)) > B; i++) hi *= 2;
    let lo = mu > 0 ? mu : hi;
    if (mu === 0) for (let i = 0; i < 4000 && lo > 0 && total(spendAt(lo)) <= B; i++) lo /= 2;
    for (let i = 0; i < 400; i++) {
      const mid = lo > 0 ? Math.sqrt(lo * hi) : hi / 2;
      if (!(mid > lo && mid < hi)) break;
      if (total(spendAt(mid)) > B) lo = mid;
      else hi = mid;
    }
    lambda = hi;
    spends = spendAt(hi);
    // Put the last rounding residue on channels with room, so Σ spend = B.
    let residue = B - total(spends);
    const byRoom = chans
      .map((c, i) => ({ i, room: residue >= 0 ? c.hi - spends[i] : spends[i] - c.lo }))
      .filter((x) => spends[x.i] > chans[x.i].lo && spends[x.i] < chans[x.i].hi)
      .sort((a, b) => b.room - a.room);
    for (const { i } of byRoom) {
      if (residue === 0) break;
      const next = Math.min(chans[i].hi, Math.max(chans[i].lo, spends[i] + residue));
      residue -= next - spends[i];
      spends[i] = next;
    }
  }

  const channels: ChannelAllocation[] = chans.map((c, i) => {
    const spend = spends[i];
    const ret = curveReturn(c.curve, spend);
    const marginal = curveMarginal(c.curve, spend);
    return {
      name: c.name,
      spend,
      expectedReturn: ret,
      roas: spend > 0 ? ret / spend : null,
      marginalRoas: Number.isFinite(marginal) ? marginal : null,
      binding: spend <= c.lo ? "min" : spend >= c.hi ? "max" : null,
    };
  });
  if (budgetBinding && channels.every((c) => c.binding !== null)) {
    notes.push("Every channel sits at a bound; lambda is then only one of the multipliers consistent with the optimum.");
  }
  const totalSpend = total(spends);
  return {
    channels,
    totalBudget: B,
    totalSpend,
    unallocated: Math.max(0, B - totalSpend),
    expectedReturn: channels.reduce((acc, c) => acc + c.expectedReturn, 0),
    budgetBinding,
    lambda: Number.isFinite(lambda) ? lambda : null,
    notes,
  };
}

/**
 * budgetTool is the LangChain tool `budget_allocation`: it runs
 * {@link allocateBudget} and returns the result as a JSON string.
 */
export const budgetTool = tool(async (input) => JSON.stringify(allocateBudget(input)), {
  name: "budget_allocation",
  description:
    "Deterministic optimal budget split across marketing channels with diminishing returns. Each channel has a " +
    "response curve (exponential: a*(1-exp(-spend/b)); power: a*spend^k, 0<k<1) and optional min/max spend. " +
    "Maximises total expected return within totalBudget by equalising marginal returns; reports spend, expected " +
    "return, ROAS, marginal ROAS and binding constraints per channel as JSON. Use this instead of allocating by hand.",
  schema: budgetInputSchema,
});

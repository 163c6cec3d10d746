import { describe, expect, it } from "vitest";
import { allocateBudget, budgetTool, curveMarginal, curveReturn, type BudgetInput, type ResponseCurve } from "./budget.js";

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

/** Objective Σ R_c(spend_c). */
const objective = (input: BudgetInput, spends: number[]) =>
  input.channels.reduce((s, c, i) => s + curveReturn(c.curve as ResponseCurve, spends[i]), 0);

/**
 * KKT check: channels strictly inside their bounds share one marginal return λ; channels at their minimum
 * have R′ ≤ λ; at their maximum R′ ≥ λ.
 */
function expectKkt(input: BudgetInput) {
  const r = allocateBudget(input);
  const lambda = r.lambda as number;
  r.channels.forEach((c, i) => {
    const m = curveMarginal(input.channels[i].curve as ResponseCurve, c.spend);
    if (c.binding === null) expect(rel(m, lambda), `${c.name} marginal`).toBeLessThan(1e-9);
    if (c.binding === "min") expect(m).toBeLessThanOrEqual(lambda * (1 + 1e-9));
    if (c.binding === "max") expect(m).toBeGreaterThanOrEqual(lambda * (1 - 1e-9));
  });
  return r;
}

/** No feasible transfer of δ between two channels improves the objective. */
function expectNoImprovingTransfer(input: BudgetInput) {
  const r = allocateBudget(input);
  const spends = r.channels.map((c) => c.spend);
  const best = objective(input, spends);
  const lo = input.channels.map((c) => c.minSpend ?? 0);
  const hi = input.channels.map((c) => c.maxSpend ?? Number.POSITIVE_INFINITY);
  for (const delta of [1e-2 * input.totalBudget, 1e-5 * input.totalBudget]) {
    for (let i = 0; i < spends.length; i++) {
      for (let j = 0; j < spends.length; j++) {
        if (i === j || spends[i] - delta < lo[i] || spends[j] + delta > hi[j]) continue;
        const moved = spends.slice();
        moved[i] -= delta;
        moved[j] += delta;
        expect(objective(input, moved), `move ${delta} from ${i} to ${j}`).toBeLessThanOrEqual(best + 1e-12 * Math.abs(best));
      }
    }
  }
}

/** Independent check: greedy allocation in equal increments (optimal on the grid for concave curves). */
function greedy(input: BudgetInput, steps: number): { spends: number[]; value: number } {
  const step = input.totalBudget / steps;
  const spends = input.channels.map((c) => c.minSpend ?? 0);
  let left = input.totalBudget - spends.reduce((s, x) => s + x, 0);
  while (left >= step - 1e-9) {
    let bestGain = 0;
    let bestI = -1;
    input.channels.forEach((c, i) => {
      if (spends[i] + step > (c.maxSpend ?? Number.POSITIVE_INFINITY) + 1e-9) return;
      const gain = curveReturn(c.curve as ResponseCurve, spends[i] + step) - curveReturn(c.curve as ResponseCurve, spends[i]);
      if (gain > bestGain) {
        bestGain = gain;
        bestI = i;
      }
    });
    if (bestI < 0 || bestGain < step * (input.minMarginalReturn ?? 0)) break;
    spends[bestI] += step;
    left -= step;
  }
  return { spends, value: objective(input, spends) };
}

describe("budget allocation against closed-form optima", () => {
  it("two exponential channels: the hand-derived solution of equal marginal returns", () => {
    // R′ᵢ(s) = (aᵢ/bᵢ)·e^(−s/bᵢ). Equal marginals with s₁ + s₂ = B give
    //   s₁ = [ln(a₁b₂ / (a₂b₁)) + B/b₂] / (1/b₁ + 1/b₂),
    // here a = (2000, 1500), b = (500, 300), B = 1000: s₁ = (ln 0.8 + 10/3) / (1/500 + 1/300) ≈ 583.16.
    const input: BudgetInput = {
      totalBudget: 1000,
      channels: [
        { name: "search", curve: { type: "exponential", a: 2000, b: 500 } },
        { name: "social", curve: { type: "exponential", a: 1500, b: 300 } },
      ],
    };
    const s1 = (Math.log((2000 * 300) / (1500 * 500)) + 1000 / 300) / (1 / 500 + 1 / 300);
    const r = allocateBudget(input);
    expect(r.channels[0].spend).toBeCloseTo(s1, 9);
    expect(r.channels[1].spend).toBeCloseTo(1000 - s1, 9);
    expect(r.totalSpend).toBeCloseTo(1000, 10);
    expect(r.lambda).toBeCloseTo(4 * Math.exp(-s1 / 500), 12);
    expect(r.budgetBinding).toBe(true);
    expect(r.channels.map((c) => c.binding)).toEqual([null, null]);
    expect(r.expectedReturn).toBeCloseTo(2000 * (1 - Math.exp(-s1 / 500)) + 1500 * (1 - Math.exp(-(1000 - s1) / 300)), 9);
  });

  it("power curves with a common k: spend ∝ a^(1/(1−k))", () => {
    // k = 0.5: sᵢ ∝ aᵢ² = 100 : 400 : 1600, so B = 2100 gives exactly 100, 400, 1600 and λ = a·k/√s = 0.5.
    const r = allocateBudget({
      totalBudget: 2100,
      channels: [
        { name: "a", curve: { type: "power", a: 10, k: 0.5 } },
        { name: "b", curve: { type: "power", a: 20, k: 0.5 } },
        { name: "c", curve: { type: "power", a: 40, k: 0.5 } },
      ],
    });
    expect(r.channels.map((c) => c.spend)).toEqual([100, 400, 1600].map((v) => expect.closeTo(v, 8)));
    expect(r.lambda).toBeCloseTo(0.5, 12);
    r.channels.forEach((c) => expect(c.marginalRoas).toBeCloseTo(0.5, 10));
    // ROAS = a·√s / s: 1, 1, 1 at these spends.
    r.channels.forEach((c) => expect(c.roas).toBeCloseTo(1, 10));
  });

  it("binding min and max bounds: the hand-derived solution", () => {
    // a = 40 (max 1000), 20 (free), 10 (min 500), k = 0.5, B = 2100. Unconstrained would be 1600/400/100.
    // With the cap and the floor the free channel gets 2100 − 1000 − 500 = 600, λ = 20·0.5/√600 ≈ 0.408;
    // the capped one has R′(1000) = 20/√1000 ≈ 0.632 ≥ λ, the floored one R′(500) = 5/√500 ≈ 0.224 ≤ λ.
    const input: BudgetInput = {
      totalBudget: 2100,
      channels: [
        { name: "big", curve: { type: "power", a: 40, k: 0.5 }, maxSpend: 1000 },
        { name: "mid", curve: { type: "power", a: 20, k: 0.5 } },
        { name: "small", curve: { type: "power", a: 10, k: 0.5 }, minSpend: 500 },
      ],
    };
    const r = expectKkt(input);
    expect(r.channels.map((c) => c.spend)).toEqual([1000, expect.closeTo(600, 8), 500]);
    expect(r.channels.map((c) => c.binding)).toEqual(["max", null, "min"]);
    expect(r.lambda).toBeCloseTo(10 / Math.sqrt(600), 10);
    expectNoImprovingTransfer(input);
  });
});

describe("budget allocation optimality (KKT, transfers, greedy cross-check)", () => {
  const mixed: BudgetInput = {
    totalBudget: 50_000,
    channels: [
      { name: "search", curve: { type: "exponential", a: 120_000, b: 20_000 }, maxSpend: 25_000 },
      { name: "social", curve: { type: "exponential", a: 60_000, b: 15_000 }, minSpend: 5_000 },
      { name: "video", curve: { type: "power", a: 300, k: 0.6 } },
      { name: "affiliate", curve: { type: "power", a: 900, k: 0.35 }, maxSpend: 4_000 },
      // R′(0) = a/b = 0.4: never worth funding beyond its minimum at these budgets.
      { name: "print", curve: { type: "exponential", a: 2_000, b: 5_000 } },
    ],
  };

  it("satisfies the KKT conditions and no small transfer improves the objective", () => {
    const r = expectKkt(mixed);
    expectNoImprovingTransfer(mixed);
    expect(r.totalSpend).toBeCloseTo(50_000, 6);
    expect(r.channels.find((c) => c.name === "print")).toMatchObject({ spend: 0, binding: "min" });
  });

  it("is at least as good as a greedy allocation in 20000 increments and close to it", () => {
    const r = allocateBudget(mixed);
    const g = greedy(mixed, 20_000);
    expect(r.expectedReturn).toBeGreaterThanOrEqual(g.value - 1e-9 * g.value);
    const step = mixed.totalBudget / 20_000;
    r.channels.forEach((c, i) => expect(Math.abs(c.spend - g.spends[i])).toBeLessThanOrEqual(3 * step));
  });

  it("spends more on no channel when the budget shrinks, and returns grow with budget", () => {
    let previous = allocateBudget({ ...mixed, totalBudget: 6_000 });
    for (const B of [10_000, 20_000, 40_000, 80_000, 160_000]) {
      const next = allocateBudget({ ...mixed, totalBudget: B });
      next.channels.forEach((c, i) => expect(c.spend).toBeGreaterThanOrEqual(previous.channels[i].spend - 1e-7));
      expect(next.expectedReturn).toBeGreaterThan(previous.expectedReturn);
      expect(next.lambda as number).toBeLessThanOrEqual(previous.lambda as number);
      previous = next;
    }
  });
});

describe("budget constraint handling", () => {
  it("stops at minMarginalReturn and leaves the rest unallocated", () => {
    // R′ = 1 at s = 500·ln(2000/500) for the exponential and at s = (30·0.5)² = 225 for the power curve.
    const r = allocateBudget({
      totalBudget: 5000,
      minMarginalReturn: 1,
      channels: [
        { name: "a", curve: { type: "exponential", a: 2000, b: 500 } },
        { name: "b", curve: { type: "power", a: 30, k: 0.5 } },
      ],
    });
    expect(r.channels[0].spend).toBeCloseTo(500 * Math.log(4), 9);
    expect(r.channels[1].spend).toBeCloseTo(225, 9);
    expect(r.budgetBinding).toBe(false);
    expect(r.unallocated).toBeCloseTo(5000 - 500 * Math.log(4) - 225, 9);
    expect(r.lambda).toBe(1);
    // With a small budget the floor does not bind and everything is spent.
    const tight = allocateBudget({
      totalBudget: 300,
      minMarginalReturn: 1,
      channels: [
        { name: "a", curve: { type: "exponential", a: 2000, b: 500 } },
        { name: "b", curve: { type: "power", a: 30, k: 0.5 } },
      ],
    });
    expect(tight.budgetBinding).toBe(true);
    expect(tight.totalSpend).toBeCloseTo(300, 9);
    expect(tight.lambda as number).toBeGreaterThan(1);
  });

  it("caps every channel when the budget exceeds the sum of maxSpend", () => {
    const r = allocateBudget({
      totalBudget: 10_000,
      channels: [
        { name: "a", curve: { type: "exponential", a: 2000, b: 500 }, maxSpend: 1000 },
        { name: "b", curve: { type: "power", a: 30, k: 0.5 }, maxSpend: 2000 },
      ],
    });
    expect(r.channels.map((c) => [c.spend, c.binding])).toEqual([
      [1000, "max"],
      [2000, "max"],
    ]);
    expect(r.unallocated).toBe(7000);
    expect(r.budgetBinding).toBe(false);
  });

  it("puts everything at minSpend when the minimums use the whole budget", () => {
    const r = allocateBudget({
      totalBudget: 300,
      channels: [
        { name: "a", curve: { type: "exponential", a: 2000, b: 500 }, minSpend: 100 },
        { name: "b", curve: { type: "power", a: 30, k: 0.5 }, minSpend: 200 },
      ],
    });
    expect(r.channels.map((c) => [c.spend, c.binding])).toEqual([
      [100, "min"],
      [200, "min"],
    ]);
    expect(r.totalSpend).toBe(300);
  });

  it("handles a zero budget and a power curve at zero spend (unbounded marginal reported as null)", () => {
    const r = allocateBudget({ totalBudget: 0, channels: [{ name: "a", curve: { type: "power", a: 30, k: 0.5 } }] });
    expect(r.channels[0]).toMatchObject({ spend: 0, roas: null, marginalRoas: null, binding: "min" });
    expect(JSON.parse(JSON.stringify(r)).lambda).toBeNull();
  });

  it("rejects infeasible or malformed input naming the field", () => {
    const a = { name: "a", curve: { type: "exponential" as const, a: 2000, b: 500 } };
    expect(() => allocateBudget({ totalBudget: 100, channels: [{ ...a, minSpend: 150 }] })).toThrow(
      /totalBudget: is below the sum of minSpend \(150\)/,
    );
    expect(() => allocateBudget({ totalBudget: 100, channels: [a, { ...a, name: "b", minSpend: 50, maxSpend: 10 }] })).toThrow(
      /channels\[1\]\.maxSpend: must be >= minSpend/,
    );
    expect(() => allocateBudget({ totalBudget: 100, channels: [a, a] })).toThrow(/channels\[1\]\.name: duplicates channels\[0\]\.name/);
    expect(() => allocateBudget({ totalBudget: 100, channels: [{ name: "p", curve: { type: "power", a: 3, k: 1 } }] })).toThrow(
      /channels\[0\]\.curve\.k: k must be strictly between 0 and 1/,
    );
    expect(() => allocateBudget({ totalBudget: -1, channels: [a] })).toThrow(/totalBudget: totalBudget must be >= 0/);
    expect(() => allocateBudget({ totalBudget: 100, channels: [{ name: "x", curve: { type: "linear", a: 1 } as never }] })).toThrow(
      /channels\[0\]\.curve/,
    );
  });

  it("is exposed as budget_allocation returning JSON", async () => {
    expect(budgetTool.name).toBe("budget_allocation");
    const out = await budgetTool.invoke({
      totalBudget: 2100,
      channels: [
        { name: "a", curve: { type: "power", a: 10, k: 0.5 } },
        { name: "b", curve: { type: "power", a: 20, k: 0.5 } },
      ],
    });
    const parsed = JSON.parse(out as string);
    // s ∝ a²: 2100 · 100/500 = 420 and 1680.
    expect(parsed.channels[0].spend).toBeCloseTo(420, 8);
    expect(parsed.channels[1].spend).toBeCloseTo(1680, 8);
  });
});

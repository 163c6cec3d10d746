import { describe, expect, it } from "vitest";
import {
  experimentStats,
  experimentTool,
  normalCdf,
  normalPdf,
  normalQuantile,
  normalUpperTail,
  sampleSizeTwoProportions,
  twoProportionZTest,
} from "./experiment.js";

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe("normal distribution", () => {
  // Reference values: Φ(x) = erfc(−x/√2)/2 with Python's math.erfc (C libm),
  // printed by platform/tools/reference/numeric_reference.py ("normal_cdf").
  const cdfRef: [number, number][] = [
    [-37.5, 4.605353009582584e-308],
    [-30, 4.906713927148764e-198],
    [-20, 2.7536241186063314e-89],
    [-10, 7.619853024160593e-24],
    [-8, 6.220960574271819e-16],
    [-6, 9.865876450377012e-10],
    [-5, 2.866515718791946e-7],
    [-4, 3.1671241833119965e-5],
    [-3.5, 0.00023262907903552504],
    [-3.0000001, 0.0013498975884453205],
    [-3, 0.0013498980316300957],
    [-2.9999999, 0.001349898474815001],
    [-2.5, 0.006209665325776139],
    [-1.959963984540054, 0.02500000000000002],
    [-1, 0.15865525393145707],
    [-0.5, 0.3085375387259869],
    [-1e-3, 0.49960105778608893],
    [0, 0.5],
    [1e-8, 0.5000000039894228],
    [0.3, 0.6179114221889526],
    [1, 0.8413447460685429],
    [1.6448536269514722, 0.95],
    [1.96, 0.9750021048517795],
    [2.5, 0.9937903346742238],
    [2.9999999, 0.998650101525185],
    [3, 0.9986501019683699],
    [3.0000001, 0.9986501024115547],
    [4, 0.9999683287581669],
    [5, 0.9999997133484281],
    [6, 0.9999999990134123],
    [8, 0.9999999999999993],
  ];

  it("normalCdf matches libm erfc to 1e-12 relative, including both tails and the series/fraction switch at |x| = 3", () => {
    for (const [x, p] of cdfRef) expect(rel(normalCdf(x), p), `x=${x}`).toBeLessThan(1e-12);
  });

  it("normalUpperTail keeps relative precision far into the upper tail", () => {
    // Same script, "normal_upper_tail": Q(x) = erfc(x/√2)/2.
    const ref: [number, number][] = [
      [0.5, 0.3085375387259869],
      [2, 0.02275013194817922],
      [3, 0.0013498980316300957],
      [4.5, 3.3976731247300615e-6],
      [7, 1.279812543885835e-12],
      [10, 7.619853024160593e-24],
      [20, 2.7536241186063314e-89],
      [37, 5.725571222525139e-300],
    ];
    for (const [x, q] of ref) expect(rel(normalUpperTail(x), q), `x=${x}`).toBeLessThan(1e-12);
    // 1 − Φ(x) would have lost everything here; the tail function has not.
    expect(normalUpperTail(10)).toBeGreaterThan(0);
    expect(1 - normalCdf(10)).toBe(0);
  });

  it("normalQuantile matches Python's statistics.NormalDist.inv_cdf (Wichura AS241) to 1e-12", () => {
    // Same script, "normal_quantile".
    const ref: [number, number][] = [
      [1e-300, -37.0470962993612],
      [1e-100, -21.27345356096532],
      [1e-20, -9.262340089798405],
      [1e-10, -6.361340902404056],
      [1e-5, -4.2648907939228256],
      [0.001, -3.090232306167813],
      [0.01, -2.3263478740408408],
      [0.025, -1.9599639845400538],
      [0.05, -1.6448536269514726],
      [0.1, -1.2815515655446008],
      [0.2, -0.8416212335729142],
      [0.3, -0.5244005127080407],
      [0.4, -0.2533471031357998],
      [0.49, -0.025068908258711057],
      [0.5, 0],
      [0.51, 0.025068908258711057],
      [0.6, 0.2533471031357998],
      [0.8, 0.8416212335729144],
      [0.9, 1.2815515655446008],
      [0.95, 1.6448536269514715],
      [0.975, 1.9599639845400536],
      [0.99, 2.3263478740408408],
      [0.999, 3.090232306167813],
      [1 - 1e-10, 6.361340889697421],
    ];
    for (const [p, x] of ref) {
      expect(Math.abs(normalQuantile(p) - x), `p=${p}`).toBeLessThan(1e-12 * Math.max(1, Math.abs(x)));
    }
  });

  it("normalQuantile inverts normalCdf (round trip) and handles the end points", () => {
    for (let i = 1; i < 1000; i++) {
      const p = i / 1000;
      expect(rel(normalCdf(normalQuantile(p)), p)).toBeLessThan(1e-12);
    }
    for (const p of [1e-15, 1e-50, 1e-200]) expect(rel(normalCdf(normalQuantile(p)), p)).toBeLessThan(1e-11);
    expect(normalCdf(Number.POSITIVE_INFINITY)).toBe(1);
    expect(normalCdf(Number.NEGATIVE_INFINITY)).toBe(0);
    expect(normalUpperTail(Number.POSITIVE_INFINITY)).toBe(0);
    expect(normalQuantile(0)).toBe(Number.NEGATIVE_INFINITY);
    expect(normalQuantile(1)).toBe(Number.POSITIVE_INFINITY);
    expect(() => normalQuantile(1.5)).toThrow(/p must be in \[0, 1\]/);
    expect(() => normalQuantile(Number.NaN)).toThrow(RangeError);
  });

  it("has the symmetry Φ(x) + Φ(−x) = 1, is increasing, and Φ′ = φ", () => {
    let prev = 0;
    for (let x = -8; x <= 8; x += 0.01) {
      expect(Math.abs(normalCdf(x) + normalCdf(-x) - 1)).toBeLessThan(2e-16);
      const p = normalCdf(x);
      expect(p).toBeGreaterThanOrEqual(prev);
      prev = p;
    }
    for (const x of [-4, -1.3, 0, 0.7, 2.9, 3.1, 5]) {
      const h = 1e-5;
      const slope = (normalCdf(x + h) - normalCdf(x - h)) / (2 * h);
      expect(Math.abs(slope - normalPdf(x))).toBeLessThan(1e-9);
    }
  });
});

describe("twoProportionZTest", () => {
  it("reproduces statsmodels' reference z and p for 5/83 vs 12/99", () => {
    // statsmodels/stats/tests/test_proportion.py, TestProportion.test_default_values (GH 2969):
    // proportions_ztest([5, 12], [83, 99]) -> stat -1.4078304151258787, pval 0.15918129181156992.
    // statsmodels computes sample1 − sample2; we report treatment − control, so z has the opposite sign.
    const r = twoProportionZTest({ control: { conversions: 5, visitors: 83 }, treatment: { conversions: 12, visitors: 99 } });
    expect(r.z).toBeCloseTo(1.4078304151258787, 12);
    expect(r.pValueTwoSided).toBeCloseTo(0.15918129181156992, 12);
    // One-sided p-values are the halves of the two-sided one (z > 0).
    expect(r.pValueTreatmentGreater).toBeCloseTo(0.15918129181156992 / 2, 12);
    expect((r.pValueTreatmentGreater ?? 0) + (r.pValueTreatmentLess ?? 0)).toBeCloseTo(1, 14);
  });

  it("reproduces the R pairwise prop.test (no continuity correction) p-values stored in statsmodels' tests", () => {
    // statsmodels/stats/tests/test_proportion.py, TestProportion.setup: n_success [73, 90, 114, 75],
    // nobs [86, 93, 136, 82]; res_ppt_pvals_raw for pairs (0,1),(0,2),(0,3),(1,2),(1,3),(2,3).
    // The uncorrected chi-square test of two proportions is the pooled z-test squared.
    const x = [73, 90, 114, 75];
    const n = [86, 93, 136, 82];
    const pairs: [number, number, number][] = [
      [0, 1, 0.00533824886503131],
      [0, 2, 0.8327574849753566],
      [0, 3, 0.1880573726722516],
      [1, 2, 0.002026764254350234],
      [1, 3, 0.1309487516334318],
      [2, 3, 0.1076118730631731],
    ];
    for (const [i, j, p] of pairs) {
      const r = twoProportionZTest({
        control: { conversions: x[i], visitors: n[i] },
        treatment: { conversions: x[j], visitors: n[j] },
      });
      expect(rel(r.pValueTwoSided as number, p), `pair ${i},${j}`).toBeLessThan(1e-10);
    }
  });

  it("gives the unpooled Wald interval for the difference (independent Python computation)", () => {
    // platform/tools/reference/numeric_reference.py, "ztest_5_83_12_99" and "ztest_5_83_12_99_90".
    const base = { control: { conversions: 5, visitors: 83 }, treatment: { conversions: 12, visitors: 99 } };
    const r95 = twoProportionZTest(base);
    expect(r95.confidenceInterval.lower).toBeCloseTo(-0.021207895074544222, 13);
    expect(r95.confidenceInterval.upper).toBeCloseTo(0.1431502097879433, 13);
    const r90 = twoProportionZTest({ ...base, confidenceLevel: 0.9 });
    expect(r90.confidenceInterval.lower).toBeCloseTo(-0.007995677502098897, 13);
    expect(r90.confidenceInterval.upper).toBeCloseTo(0.12993799221549795, 13);
    // Relative lift: (12/99 − 5/83) / (5/83).
    expect(r95.relativeLift).toBeCloseTo((12 / 99 - 5 / 83) / (5 / 83), 14);
  });

  it("is antisymmetric when the groups are swapped", () => {
    const a = { conversions: 48, visitors: 1000 };
    const b = { conversions: 67, visitors: 1100 };
    const r1 = twoProportionZTest({ control: a, treatment: b });
    const r2 = twoProportionZTest({ control: b, treatment: a });
    expect(r1.z).toBeCloseTo(-(r2.z as number), 14);
    expect(r1.pValueTwoSided).toBeCloseTo(r2.pValueTwoSided as number, 14);
    expect(r1.pValueTreatmentGreater).toBeCloseTo(r2.pValueTreatmentLess as number, 14);
    expect(r1.confidenceInterval.lower).toBeCloseTo(-r2.confidenceInterval.upper, 14);
  });

  it("reports undefined z (not NaN) when there is no variation, and warns on small counts", () => {
    const r = twoProportionZTest({ control: { conversions: 0, visitors: 50 }, treatment: { conversions: 0, visitors: 60 } });
    expect(r.z).toBeNull();
    expect(r.pValueTwoSided).toBeNull();
    expect(r.relativeLift).toBeNull();
    expect(r.warnings.join(" ")).toMatch(/undefined/);
    expect(r.warnings.join(" ")).toMatch(/normal approximation/);
  });

  it("rejects bad input naming the field", () => {
    expect(() =>
      twoProportionZTest({ control: { conversions: 10, visitors: 5 }, treatment: { conversions: 1, visitors: 5 } }),
    ).toThrow(/control\.conversions: must not exceed visitors/);
    expect(() =>
      twoProportionZTest({ control: { conversions: 1, visitors: 0 }, treatment: { conversions: 1, visitors: 5 } }),
    ).toThrow(/control\.visitors/);
    expect(() =>
      twoProportionZTest({ control: { conversions: 1.5, visitors: 10 }, treatment: { conversions: 1, visitors: 5 } }),
    ).toThrow(/control\.conversions: conversions must be a whole number/);
  });
});

describe("sampleSizeTwoProportions", () => {
  it("matches the annotated examples of R's power.prop.test", () => {
    // R stats::power.prop.test examples, annotated with their results:
    //   power.prop.test(p1 = .50, p2 = .75, power = .90)                   ## =>     n = 76.7
    //   power.prop.test(p1 = .5, p2 = 0.501, sig.level=.001, power=0.90)   ## => n = 10451937
    //   power.prop.test(p1=0.90, p2= 1.0, power=0.8)                       ##-> n = 73.37
    // R solves the same (non-strict, two-sided) power equation with uniroot.
    const a = sampleSizeTwoProportions({ baselineRate: 0.5, minimumDetectableEffect: 0.25, effectType: "absolute", power: 0.9 });
    expect(a.perGroupExact).toBeCloseTo(76.7, 1);
    expect(a.perGroup).toBe(77);
    const b = sampleSizeTwoProportions({
      baselineRate: 0.5,
      minimumDetectableEffect: 0.001,
      effectType: "absolute",
      alpha: 0.001,
      power: 0.9,
    });
    expect(Math.round(b.perGroupExact)).toBe(10451937);
    const c = sampleSizeTwoProportions({ baselineRate: 0.9, minimumDetectableEffect: 0.1, effectType: "absolute", power: 0.8 });
    expect(c.perGroupExact).toBeCloseTo(73.37, 2);
  });

  it("agrees with an independent Python computation of the formula to 1e-9", () => {
    // platform/tools/reference/numeric_reference.py, "sample_size".
    const cases: [Parameters<typeof sampleSizeTwoProportions>[0], number][] = [
      [{ baselineRate: 0.5, minimumDetectableEffect: 0.25, effectType: "absolute", power: 0.9 }, 76.70692845177743],
      [{ baselineRate: 0.5, minimumDetectableEffect: 0.001, effectType: "absolute", alpha: 0.001, power: 0.9 }, 10451936.59548864],
      [{ baselineRate: 0.9, minimumDetectableEffect: 0.1, effectType: "absolute", power: 0.8 }, 73.37427304669802],
      [{ baselineRate: 0.05, minimumDetectableEffect: 0.1 }, 31233.43794013002],
      [{ baselineRate: 0.05, minimumDetectableEffect: 0.1, alternative: "one_sided" }, 24602.44014805982],
    ];
    for (const [input, n] of cases) expect(rel(sampleSizeTwoProportions(input).perGroupExact, n)).toBeLessThan(1e-9);
  });

  it("achieves the requested power by the same normal approximation (power.prop.test's n = 50 example gives 0.740)", () => {
    // R: power.prop.test(n = 50, p1 = .50, p2 = .75)  ## => power = 0.740
    const power = (n: number, p1: number, p2: number, alpha = 0.05) => {
      const pbar = (p1 + p2) / 2;
      const za = normalQuantile(1 - alpha / 2);
      return normalCdf(
        (Math.sqrt(n) * Math.abs(p2 - p1) - za * Math.sqrt(2 * pbar * (1 - pbar))) / Math.sqrt(p1 * (1 - p1) + p2 * (1 - p2)),
      );
    };
    expect(power(50, 0.5, 0.75)).toBeCloseTo(0.74, 3);
    const r = sampleSizeTwoProportions({ baselineRate: 0.03, minimumDetectableEffect: 0.2, power: 0.85 });
    expect(power(r.perGroupExact, 0.03, r.targetRate)).toBeCloseTo(0.85, 12);
    expect(power(r.perGroup, 0.03, r.targetRate)).toBeGreaterThanOrEqual(0.85);
    expect(power(r.perGroup - 1, 0.03, r.targetRate)).toBeLessThan(0.85);
  });

  it("needs more units for smaller effects, smaller alpha, higher power; relative and absolute effects agree", () => {
    const n = (mde: number, alpha = 0.05, power = 0.8) =>
      sampleSizeTwoProportions({ baselineRate: 0.1, minimumDetectableEffect: mde, alpha, power }).perGroupExact;
    expect(n(0.05)).toBeGreaterThan(n(0.1));
    expect(n(0.1, 0.01)).toBeGreaterThan(n(0.1, 0.05));
    expect(n(0.1, 0.05, 0.9)).toBeGreaterThan(n(0.1, 0.05, 0.8));
    const relative = sampleSizeTwoProportions({ baselineRate: 0.1, minimumDetectableEffect: 0.2 });
    const absolute = sampleSizeTwoProportions({ baselineRate: 0.1, minimumDetectableEffect: 0.02, effectType: "absolute" });
    expect(relative.perGroupExact).toBeCloseTo(absolute.perGroupExact, 6);
  });

  it("rejects impossible targets naming the field", () => {
    expect(() => sampleSizeTwoProportions({ baselineRate: 0.6, minimumDetectableEffect: 1 })).toThrow(
      /minimumDetectableEffect: gives a target rate of 1\.2/,
    );
    expect(() => sampleSizeTwoProportions({ baselineRate: 0, minimumDetectableEffect: 0.1 })).toThrow(/baselineRate/);
    expect(() => sampleSizeTwoProportions({ baselineRate: 0.1, minimumDetectableEffect: 0 })).toThrow(/minimumDetectableEffect/);
  });
});

describe("experiment_stats tool", () => {
  it("returns JSON with both parts", async () => {
    const out = await experimentTool.invoke({
      test: { control: { conversions: 5, visitors: 83 }, treatment: { conversions: 12, visitors: 99 } },
      sampleSize: { baselineRate: 0.5, minimumDetectableEffect: 0.25, effectType: "absolute", power: 0.9 },
    });
    expect(typeof out).toBe("string");
    const parsed = JSON.parse(out as string);
    expect(parsed.test.pValueTwoSided).toBeCloseTo(0.15918129181156992, 12);
    expect(parsed.sampleSize.perGroup).toBe(77);
    expect(experimentTool.name).toBe("experiment_stats");
  });

  it("rejects an empty request and bad fields with the field path", async () => {
    expect(() => experimentStats({})).toThrow(/test: give test, sampleSize, or both/);
    await expect(
      experimentTool.invoke({ test: { control: { conversions: -1, visitors: 10 }, treatment: { conversions: 1, visitors: 10 } } }),
    ).rejects.toThrow(/test\.control\.conversions/);
  });
});

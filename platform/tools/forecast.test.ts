import { describe, expect, it } from "vitest";
import {
  forecastSeries,
  forecastTool,
  forecastVarianceMultipliers,
  holtWintersInitialState,
  runHolt,
  runHoltWinters,
  runSes,
} from "./forecast.js";

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

// AirPassengers: monthly international airline passengers (thousands), 1949-1960; Box & Jenkins
// "Series G", distributed with R as datasets::AirPassengers (144 values, sum 40363).
const AIR = [
  112, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118, 115, 126, 141, 135, 125, 149, 170, 170, 158, 133, 114, 140,
  145, 150, 178, 163, 172, 178, 199, 199, 184, 162, 146, 166, 171, 180, 193, 181, 183, 218, 230, 242, 209, 191, 172, 194,
  196, 196, 236, 235, 229, 243, 264, 272, 237, 211, 180, 201, 204, 188, 235, 227, 234, 264, 302, 293, 259, 229, 203, 229,
  242, 233, 267, 269, 270, 315, 364, 347, 312, 274, 237, 278, 284, 277, 317, 313, 318, 374, 413, 405, 355, 306, 271, 306,
  315, 301, 356, 348, 355, 422, 465, 467, 404, 347, 305, 336, 340, 318, 362, 348, 363, 435, 491, 505, 404, 359, 310, 337,
  360, 342, 406, 396, 420, 472, 548, 559, 463, 407, 362, 405, 417, 391, 419, 461, 472, 535, 622, 606, 508, 461, 390, 432,
];

// A short made-up demand series (not from any source) with interior SES/Holt optima.
const DEMO = [50, 52, 47, 55, 53, 49, 58, 54, 51, 57, 60, 55, 59, 62, 58, 61, 65, 60, 64, 66];

describe("simple exponential smoothing", () => {
  it("reproduces a published worked table (α = 0.3)", () => {
    // Steve Wong, "Time Series Forecasting Exercise — Simple Exponential Smoothing",
    // http://www.wongsteve.com/Exponential_Smoothing.htm: sales 99, 88, 50, 58, 62, 60, 55, 62, 71, 65 with
    // alpha = 0.3; forecasts for periods 2..10 are 99.0, 95.7, 82.0, 74.8, 71.0, 67.7, 63.9, 63.3, 65.6 and
    // MSE = 365.80. (The page's period-11 forecast 65.42 is 0.3·65 + 0.7·65.6, i.e. from the rounded
    // period-10 forecast; unrounded it is 65.4307, which Python reproduces.)
    const y = [99, 88, 50, 58, 62, 60, 55, 62, 71, 65];
    const r = forecastSeries({ series: y, method: "ses", alpha: 0.3, horizon: 1 });
    expect(r.fitted[0]).toBeNull();
    expect(r.fitted.slice(1).map((f) => Math.round((f as number) * 10) / 10)).toEqual([
      99.0, 95.7, 82.0, 74.8, 71.0, 67.7, 63.9, 63.3, 65.6,
    ]);
    expect(r.mse).toBeCloseTo(365.8, 2);
    expect(r.forecast[0]).toBeCloseTo(65.4307, 4);
  });

  it("matches an independent Python implementation on AirPassengers with α = 0.3, including intervals", () => {
    // platform/tools/reference/numeric_reference.py, "ses_air_a03". Interval: level ± z·σ·√(1 + α²(h−1))
    // (FPP3 Table 8.8), σ² = SSE / (n − 1) since α is fixed.
    const r = forecastSeries({ series: AIR, method: "ses", alpha: 0.3, horizon: 12 });
    expect(rel(r.sse, 301000.94486096327)).toBeLessThan(1e-12);
    expect(rel(r.finalState.level, 461.7665886331188)).toBeLessThan(1e-12);
    expect(r.fitted.slice(1, 5)).toEqual([112, 113.8, 119.26, 122.182].map((v, i) => expect.closeTo(v, 10 - i)));
    expect(r.forecast.every((f) => f === r.finalState.level)).toBe(true);
    expect(rel(r.intervals!.sigma, 45.87920784314424)).toBeLessThan(1e-12);
    expect(rel(r.intervals!.upper[0], 551.688183644909)).toBeLessThan(1e-12);
    expect(rel(r.intervals!.upper[2], 559.4464434362869)).toBeLessThan(1e-12);
    expect(rel(r.intervals!.upper[11], 588.6166086032954)).toBeLessThan(1e-12);
  });

  it("fits α to the least-squares optimum found by an independent brute-force search", () => {
    // numeric_reference.py "ses_demo_grid": α grid with step 0.0001 → α = 0.4358, SSE = 266.8925726657254.
    const r = forecastSeries({ series: DEMO, method: "ses" });
    expect(r.fittedParameters).toEqual(["alpha"]);
    expect(Math.abs(r.parameters.alpha - 0.4358)).toBeLessThan(2e-4);
    expect(r.sse).toBeLessThanOrEqual(266.8925726657254 * (1 + 1e-12));
  });

  it("forecasts a constant series exactly with zero error", () => {
    const r = forecastSeries({ series: [7, 7, 7, 7, 7], method: "ses", horizon: 3 });
    expect(r.forecast).toEqual([7, 7, 7]);
    expect(r.sse).toBe(0);
  });
});

describe("Holt's linear trend", () => {
  it("follows the recursion worked by hand", () => {
    // y = 10, 12, 15, 16; α = β = 0.5; start l(2) = 12, b(2) = 2.
    // t=3: ŷ = 14, l = .5·15 + .5·14 = 14.5, b = .5·(14.5 − 12) + .5·2 = 2.25
    // t=4: ŷ = 16.75, l = .5·16 + .5·16.75 = 16.375, b = .5·(16.375 − 14.5) + .5·2.25 = 2.0625
    // forecasts 16.375 + 2.0625·h = 18.4375, 20.5; SSE = 1² + 0.75² = 1.5625.
    const r = forecastSeries({ series: [10, 12, 15, 16], method: "holt", alpha: 0.5, beta: 0.5, horizon: 2 });
    expect(r.fitted).toEqual([null, null, 14, 16.75]);
    expect(r.finalState).toEqual({ level: 16.375, trend: 2.0625 });
    expect(r.forecast).toEqual([18.4375, 20.5]);
    expect(r.sse).toBe(1.5625);
  });

  it("matches an independent Python implementation on AirPassengers with α = 0.8, β = 0.2", () => {
    // numeric_reference.py "holt_air_a08_b02"; intervals via FPP3 Table 8.8 closed form for ETS(A,A,N).
    const r = forecastSeries({ series: AIR, method: "holt", alpha: 0.8, beta: 0.2, horizon: 12 });
    expect(rel(r.sse, 221181.97692631156)).toBeLessThan(1e-12);
    expect(rel(r.finalState.level, 422.7616440517603)).toBeLessThan(1e-12);
    expect(rel(r.finalState.trend!, -12.655414941548623)).toBeLessThan(1e-11);
    expect(rel(r.forecast[0], 410.1062291102117)).toBeLessThan(1e-12);
    expect(rel(r.forecast[11], 270.8966647531768)).toBeLessThan(1e-12);
    expect(rel(r.intervals!.sigma, 39.46668919252153)).toBeLessThan(1e-12);
    expect(rel(r.intervals!.lower[0], 332.75293970383336)).toBeLessThan(1e-12);
    expect(rel(r.intervals!.lower[4], 156.47086498116892)).toBeLessThan(1e-12);
    expect(rel(r.intervals!.lower[11], -205.2478623086513)).toBeLessThan(1e-12);
  });

  it("fits α, β no worse than an independent brute-force grid", () => {
    // numeric_reference.py "holt_demo_grid": step 0.0025 → α = 0.2, β = 0.785, SSE = 223.3073791282396.
    const r = forecastSeries({ series: DEMO, method: "holt" });
    expect(r.sse).toBeLessThanOrEqual(223.3073791282396 * (1 + 1e-12));
    expect(Math.abs(r.parameters.alpha - 0.2)).toBeLessThan(0.01);
    expect(Math.abs(r.parameters.beta! - 0.785)).toBeLessThan(0.02);
    // "holt_air_grid": step 0.01 → SSE = 163812 (at the boundary α = 1).
    expect(forecastSeries({ series: AIR, method: "holt" }).sse).toBeLessThanOrEqual(163812);
  });

  it("extrapolates an exact line exactly for any smoothing constants", () => {
    const line = Array.from({ length: 12 }, (_, t) => 3 + 2.5 * t);
    for (const [alpha, beta] of [
      [0.1, 0.9],
      [0.7, 0.2],
      [1, 0],
    ]) {
      const r = forecastSeries({ series: line, method: "holt", alpha, beta, horizon: 4 });
      expect(r.sse).toBeCloseTo(0, 20);
      r.forecast.forEach((f, i) => expect(f).toBeCloseTo(3 + 2.5 * (12 + i), 10));
    }
  });
});

describe("Holt-Winters", () => {
  it("initialises from the first two seasons and follows the additive recursion worked by hand", () => {
    // y = 1, 3, 2, 4, 3, 5 with m = 2: level = (1+3)/2 = 2, trend = ((2+4)/2 − 2)/2 = 0.5, s = (−1, 1).
    // α = β = γ = 0.5:
    // t=1: ŷ = 2 + 0.5 − 1 = 1.5; l = .5·(1+1) + .5·2.5 = 2.25; s = .5·(1 − 2.5) + .5·(−1) = −1.25;
    //      b = .5·(2.25 − 2) + .5·0.5 = 0.375
    // t=2: ŷ = 2.25 + 0.375 + 1 = 3.625; l = .5·(3−1) + .5·2.625 = 2.3125; s = .5·(3 − 2.625) + .5·1 = 0.6875;
    //      b = .5·(2.3125 − 2.25) + .5·0.375 = 0.21875
    // t=3: ŷ = 2.3125 + 0.21875 − 1.25 = 1.28125
    const y = [1, 3, 2, 4, 3, 5];
    expect(holtWintersInitialState(y, 2, "additive")).toEqual({ level: 2, trend: 0.5, seasonal: [-1, 1] });
    const r = runHoltWinters(y, 2, "additive", 0.5, 0.5, 0.5);
    expect(r.fitted.slice(0, 3)).toEqual([1.5, 3.625, 1.28125]);
  });

  it("matches an independent Python implementation on AirPassengers (additive, α=.3 β=.1 γ=.2)", () => {
    // numeric_reference.py "hw_add_air_030_010_020"; intervals from the ETS(A,A,A) closed form (FPP3
    // Table 8.8) with σ² = SSE / (144 − 13).
    const r = forecastSeries({
      series: AIR,
      method: "holt_winters",
      seasonalPeriod: 12,
      alpha: 0.3,
      beta: 0.1,
      gamma: 0.2,
      horizon: 24,
    });
    expect(rel(r.sse, 77375.45889327761)).toBeLessThan(1e-12);
    expect(rel(r.finalState.level, 497.24931936428874)).toBeLessThan(1e-12);
    expect(rel(r.finalState.trend!, 3.540389294476793)).toBeLessThan(1e-11);
    const seasonal = [
      -28.836392559802945, -40.73130383899588, 3.422967099068037, 7.021301171926872, 13.549132062098938,
      58.705512162089306, 101.4892170605334, 82.94403794769676, 0.33755144229525086, -45.84993097217522,
      -87.66743442824058, -48.00428407220278,
    ];
    r.finalState.seasonal!.forEach((s, i) => expect(Math.abs(s - seasonal[i])).toBeLessThan(1e-10));
    expect(rel(r.fitted[0]!, 113.08333333333333)).toBeLessThan(1e-13);
    expect(rel(r.fitted[1]!, 119.80916666666666)).toBeLessThan(1e-13);
    expect(rel(r.fitted[143]!, 466.49007058417203)).toBeLessThan(1e-12);
    const fc = [471.95331609896255, 491.72970682580745, 514.4379876326841, 534.2143783595291];
    [0, 11, 12, 23].forEach((h, i) => expect(rel(r.forecast[h], fc[i])).toBeLessThan(1e-12));
    expect(rel(r.intervals!.sigma, 24.303340469243135)).toBeLessThan(1e-12);
    const upper = [519.5869881226938, 582.5265330137385, 614.0481850266299, 700.820594177359];
    [0, 11, 12, 23].forEach((h, i) => expect(rel(r.intervals!.upper[h], upper[i])).toBeLessThan(1e-12));
  });

  it("matches an independent Python implementation on AirPassengers (multiplicative, α=.3 β=.1 γ=.2) and omits intervals", () => {
    // numeric_reference.py "hw_mul_air_030_010_020".
    const r = forecastSeries({
      series: AIR,
      method: "holt_winters",
      seasonalPeriod: 12,
      seasonality: "multiplicative",
      alpha: 0.3,
      beta: 0.1,
      gamma: 0.2,
      horizon: 24,
    });
    expect(rel(r.sse, 28434.659730785388)).toBeLessThan(1e-12);
    expect(rel(r.finalState.level, 495.88835085767334)).toBeLessThan(1e-12);
    expect(rel(r.finalState.trend!, 4.129275091643175)).toBeLessThan(1e-11);
    expect(rel(r.finalState.seasonal![0], 0.91033046291311)).toBeLessThan(1e-12);
    expect(rel(r.finalState.seasonal![6], 1.2839873015043874)).toBeLessThan(1e-12);
    expect(rel(r.fitted[0]!, 112.9578947368421)).toBeLessThan(1e-13);
    expect(rel(r.fitted[143]!, 444.68961214592946)).toBeLessThan(1e-12);
    const fc = [455.18127689515563, 482.17000575907554, 500.2893357632089, 525.9734788855345];
    [0, 11, 12, 23].forEach((h, i) => expect(rel(r.forecast[h], fc[i])).toBeLessThan(1e-12));
    expect(r.intervals).toBeUndefined();
    expect(r.notes.join(" ")).toMatch(/intervals omitted/);
  });

  it("fits α, β, γ no worse than an independent brute-force grid (AirPassengers)", () => {
    // numeric_reference.py "hw_add_air_grid" / "hw_mul_air_grid": 21³ grid with step 0.05.
    const add = forecastSeries({ series: AIR, method: "holt_winters", seasonalPeriod: 12 });
    expect(add.fittedParameters).toEqual(["alpha", "beta", "gamma"]);
    expect(add.sse).toBeLessThanOrEqual(21022.642892336116);
    const mul = forecastSeries({ series: AIR, method: "holt_winters", seasonalPeriod: 12, seasonality: "multiplicative" });
    expect(mul.sse).toBeLessThanOrEqual(17002.248952233433);
    // A parameter given by the caller is kept; only the others are fitted.
    const partial = forecastSeries({ series: AIR, method: "holt_winters", seasonalPeriod: 12, gamma: 0.5 });
    expect(partial.parameters.gamma).toBe(0.5);
    expect(partial.fittedParameters).toEqual(["alpha", "beta"]);
    // The fit is a local minimum: no grid neighbour of the fitted point is better.
    const { alpha, beta, gamma } = add.parameters;
    for (const d of [-0.01, 0.01]) {
      for (const [a, b, g] of [
        [alpha + d, beta!, gamma!],
        [alpha, beta! + d, gamma!],
        [alpha, beta!, gamma! + d],
      ]) {
        if ([a, b, g].some((x) => x < 0 || x > 1)) continue;
        expect(runHoltWinters(AIR, 12, "additive", a, b, g).sse).toBeGreaterThanOrEqual(add.sse * (1 - 1e-9));
      }
    }
  });

  it("reproduces a purely seasonal series exactly for any smoothing constants", () => {
    // With no trend the start is exact (level 100, trend 0, indices = the pattern), every one-step error is 0
    // and each update returns the same state, whatever α, β, γ are.
    const pattern = [5, -3, 2, -4];
    const factors = [1.2, 0.9, 1.1, 0.8];
    const add = Array.from({ length: 16 }, (_, t) => 100 + pattern[t % 4]);
    const mul = Array.from({ length: 16 }, (_, t) => 100 * factors[t % 4]);
    for (const [a, b, g] of [
      [0.2, 0.1, 0.3],
      [0.9, 0.5, 0.05],
    ]) {
      const ra = runHoltWinters(add, 4, "additive", a, b, g);
      expect(ra.sse).toBeCloseTo(0, 20);
      ra.forecast(6).forEach((f, i) => expect(f).toBeCloseTo(100 + pattern[(16 + i) % 4], 10));
      const rm = runHoltWinters(mul, 4, "multiplicative", a, b, g);
      expect(rm.sse).toBeCloseTo(0, 18);
      rm.forecast(6).forEach((f, i) => expect(f).toBeCloseTo(100 * factors[(16 + i) % 4], 10));
    }
  });
});

describe("forecast variance multipliers", () => {
  it("equal the closed forms of FPP3 Table 8.8 (computed independently in Python)", () => {
    // numeric_reference.py "var_mult_closed".
    const ses = forecastVarianceMultipliers("ses", { alpha: 0.5 }, 10);
    expect([ses[0], ses[1], ses[9]]).toEqual([1, 1.25, 3.25]);
    const holt = forecastVarianceMultipliers("holt", { alpha: 0.6, beta: 0.3 }, 7);
    expect(holt[0]).toBe(1);
    expect(holt[1]).toBeCloseTo(1.6084, 12);
    expect(holt[6]).toBeCloseTo(10.644400000000001, 12);
    const hw = forecastVarianceMultipliers("holt_winters", { alpha: 0.4, beta: 0.2, gamma: 0.3 }, 13, 4);
    const want = [1.0, 1.9536000000000002, 2.9940000000000007, 7.125600000000002, 14.214000000000002];
    [1, 4, 5, 9, 13].forEach((h, i) => expect(hw[h - 1]).toBeCloseTo(want[i], 12));
    expect(() => forecastVarianceMultipliers("holt_winters", { alpha: 0.4, beta: 0.2, gamma: 0.3 }, 3, 4, "multiplicative")).toThrow();
  });

  it("match the simulated h-step error variance of the innovations model the recursions filter", () => {
    // Generate y(t) = ŷ(t|t−1) + ε(t) with the same component-form updates as runHolt/runHoltWinters and
    // compare the empirical variance of y(n+h) − ŷ(n+h|n) with σ²·v(h). Seeded, so deterministic.
    let seed = 12345;
    const uniform = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = seed;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const gauss = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
    const m = 4;
    const H = 9;
    const [alpha, beta, gamma] = [0.4, 0.3, 0.25];
    const paths = 40_000;
    const sumSq = new Array<number>(H).fill(0);
    for (let p = 0; p < paths; p++) {
      let l = 50;
      let b = 1;
      const s = [3, -1, -4, 2];
      const forecast = Array.from({ length: H }, (_, i) => l + (i + 1) * b + s[i % m]);
      for (let h = 0; h < H; h++) {
        const sPrev = s[h % m];
        const base = l + b;
        const y = base + sPrev + gauss();
        const nl = alpha * (y - sPrev) + (1 - alpha) * base;
        s[h % m] = gamma * (y - base) + (1 - gamma) * sPrev;
        b = beta * (nl - l) + (1 - beta) * b;
        l = nl;
        sumSq[h] += (y - forecast[h]) ** 2;
      }
    }
    const v = forecastVarianceMultipliers("holt_winters", { alpha, beta, gamma }, H, m);
    for (let h = 0; h < H; h++) expect(rel(sumSq[h] / paths, v[h]), `h=${h + 1}`).toBeLessThan(0.04);
  });

  it("widen with the horizon", () => {
    const r = forecastSeries({ series: DEMO, method: "holt", horizon: 10 });
    const widths = r.intervals!.upper.map((u, i) => u - r.intervals!.lower[i]);
    for (let i = 1; i < widths.length; i++) expect(widths[i]).toBeGreaterThan(widths[i - 1]);
    const narrow = forecastSeries({ series: DEMO, method: "holt", horizon: 10, intervalLevel: 0.8 });
    expect(narrow.intervals!.upper[0]).toBeLessThan(r.intervals!.upper[0]);
  });
});

describe("forecast_series validation and tool", () => {
  it("names the offending field", () => {
    expect(() => forecastSeries({ series: AIR, method: "holt_winters" })).toThrow(/seasonalPeriod: is required for holt_winters/);
    expect(() => forecastSeries({ series: AIR.slice(0, 20), method: "holt_winters", seasonalPeriod: 12 })).toThrow(
      /series: holt_winters needs at least two full seasons/,
    );
    expect(() =>
      forecastSeries({ series: [3, 4, 0, 5, 6, 7], method: "holt_winters", seasonalPeriod: 2, seasonality: "multiplicative" }),
    ).toThrow(/series\[2\]: multiplicative seasonality needs every observation > 0/);
    expect(() => forecastSeries({ series: DEMO, method: "ses", alpha: 1.5 })).toThrow(/alpha: must be between 0 and 1/);
    expect(() => forecastSeries({ series: [1], method: "ses" })).toThrow(/series: needs at least 2 observations/);
    expect(() => forecastSeries({ series: [1, Number.NaN, 3], method: "ses" })).toThrow(/series\[1\]/);
    expect(() => forecastSeries({ series: DEMO, method: "ses", gamma: 0.2 })).toThrow(/gamma: is only used by holt_winters/);
    expect(() => forecastSeries({ series: DEMO, method: "ses", horizon: 0 })).toThrow(/horizon/);
  });

  it("low-level runners agree with the public function", () => {
    expect(runSes(DEMO, 0.3).sse).toBe(forecastSeries({ series: DEMO, method: "ses", alpha: 0.3 }).sse);
    expect(runHolt(DEMO, 0.3, 0.1).sse).toBe(forecastSeries({ series: DEMO, method: "holt", alpha: 0.3, beta: 0.1 }).sse);
  });

  it("is exposed as forecast_series returning JSON", async () => {
    expect(forecastTool.name).toBe("forecast_series");
    const out = await forecastTool.invoke({ series: [10, 12, 15, 16], method: "holt", alpha: 0.5, beta: 0.5, horizon: 2 });
    const parsed = JSON.parse(out as string);
    expect(parsed.forecast).toEqual([18.4375, 20.5]);
    expect(parsed.fitted).toEqual([null, null, 14, 16.75]);
    await expect(forecastTool.invoke({ series: [1, 2, 3], method: "weekly" } as never)).rejects.toThrow(/method/);
  });
});

import { tool } from "@langchain/core/tools";
import { z } from "zod";
import { normalQuantile } from "./experiment.js";
import { parseToolInput } from "./validate.js";

/*
 * Exponential-smoothing forecasts: simple exponential smoothing (SES), Holt's
 * linear trend and Holt-Winters (additive trend; additive or multiplicative
 * seasonality). The recursions are the component forms of Hyndman &
 * Athanasopoulos, "Forecasting: Principles and Practice" (3rd ed.), sections
 * 8.1-8.3:
 *
 *   SES    ŷ(t) = l(t-1);              l(t) = α·y(t) + (1-α)·l(t-1)
 *   Holt   ŷ(t) = l(t-1) + b(t-1);     l(t) = α·y(t) + (1-α)·(l(t-1)+b(t-1))
 *                                      b(t) = β·(l(t)-l(t-1)) + (1-β)·b(t-1)
 *   HW add ŷ(t) = l + b + s(t-m);      l(t) = α·(y(t)-s(t-m)) + (1-α)·(l+b)
 *                                      s(t) = γ·(y(t)-l(t-1)-b(t-1)) + (1-γ)·s(t-m)
 *   HW mul ŷ(t) = (l + b)·s(t-m);      l(t) = α·y(t)/s(t-m) + (1-α)·(l+b)
 *                                      s(t) = γ·y(t)/(l(t-1)+b(t-1)) + (1-γ)·s(t-m)
 *
 * (β here is FPP's β*, the trend smoothing parameter of the component form.)
 */

/** ForecastMethod names the smoothing method. */
export type ForecastMethod = "ses" | "holt" | "holt_winters";

/** Seasonality is the Holt-Winters seasonal form. */
export type Seasonality = "additive" | "multiplicative";

/** SmoothingParameters are the smoothing constants, each in [0, 1]. */
export interface SmoothingParameters {
  /** alpha smooths the level. */
  readonly alpha: number;
  /** beta smooths the trend (Holt and Holt-Winters). */
  readonly beta?: number;
  /** gamma smooths the seasonal indices (Holt-Winters). */
  readonly gamma?: number;
}

/** SmoothingRun is the result of running one recursion over a series. */
export interface SmoothingRun {
  /** fitted are one-step-ahead in-sample forecasts; null where none exists. */
  readonly fitted: (number | null)[];
  /** sse is the sum of squared one-step errors over the non-null fitted values. */
  readonly sse: number;
  /** residualCount is how many one-step errors entered `sse`. */
  readonly residualCount: number;
  /** level, trend and seasonal are the final states after the last observation. */
  readonly level: number;
  readonly trend?: number;
  /** seasonal holds the m latest seasonal indices, in the order they will next be used. */
  readonly seasonal?: number[];
  /** forecast returns the 1..h step point forecasts from the end of the series. */
  forecast(h: number): number[];
}

/**
 * runSes runs simple exponential smoothing with level initialised to the first
 * observation (l(1) = y(1), as in the NIST/SEMATECH e-Handbook §6.4.3.1 and R's
 * `HoltWinters(beta = FALSE, gamma = FALSE)`), so fitted values start at t = 2.
 */
export function runSes(y: readonly number[], alpha: number): SmoothingRun {
  const n = y.length;
  const fitted: (number | null)[] = new Array<number | null>(n).fill(null);
  let level = y[0];
  let sse = 0;
  for (let t = 1; t < n; t++) {
    fitted[t] = level;
    const e = y[t] - level;
    sse += e * e;
    level = alpha * y[t] + (1 - alpha) * level;
  }
  const finalLevel = level;
  return {
    fitted,
    sse,
    residualCount: n - 1,
    level: finalLevel,
    forecast: (h) => Array.from({ length: h }, () => finalLevel),
  };
}

/**
 * runHolt runs Holt's linear-trend method initialised with l(2) = y(2) and
 * b(2) = y(2) - y(1) (R's `HoltWinters(gamma = FALSE)` start; equivalent to the
 * NIST e-Handbook §6.4.3.3 choice S(1) = y(1), b(1) = y(2) - y(1)), so fitted
 * values start at t = 3.
 */
export function runHolt(y: readonly number[], alpha: number, beta: number): SmoothingRun {
  const n = y.length;
  const fitted: (number | null)[] = new Array<number | null>(n).fill(null);
  let level = y[1];
  let trend = y[1] - y[0];
  let sse = 0;
  for (let t = 2; t < n; t++) {
    const yhat = level + trend;
    fitted[t] = yhat;
    const e = y[t] - yhat;
    sse += e * e;
    const newLevel = alpha * y[t] + (1 - alpha) * yhat;
    trend = beta * (newLevel - level) + (1 - beta) * trend;
    level = newLevel;
  }
  const l = level;
  const b = trend;
  return {
    fitted,
    sse,
    residualCount: n - 2,
    level: l,
    trend: b,
    forecast: (h) => Array.from({ length: h }, (_, i) => l + (i + 1) * b),
  };
}

/**
 * holtWintersInitialState computes the simple heuristic start used by
 * {@link runHoltWinters}: level = mean of the first season, trend = (mean of
 * the second season - mean of the first) / m, seasonal index i = y(i) - level
 * (additive) or y(i) / level (multiplicative), for the first season's i.
 */
export function holtWintersInitialState(
  y: readonly number[],
  m: number,
  seasonality: Seasonality,
): { level: number; trend: number; seasonal: number[] } {
  let first = 0;
  let second = 0;
  for (let i = 0; i < m; i++) {
    first += y[i];
    second += y[m + i];
  }
  first /= m;
  second /= m;
  const level = first;
  const trend = (second - first) / m;
  const seasonal = y.slice(0, m).map((v) => (seasonality === "additive" ? v - level : v / level));
  return { level, trend, seasonal };
}

/**
 * runHoltWinters runs Holt-Winters with additive trend and additive or
 * multiplicative seasonality of period `m`, from the state given by
 * {@link holtWintersInitialState} placed just before the first observation;
 * fitted values exist for every t. Requires at least two full seasons.
 */
export function runHoltWinters(
  y: readonly number[],
  m: number,
  seasonality: Seasonality,
  alpha: number,
  beta: number,
  gamma: number,
): SmoothingRun {
  const n = y.length;
  const init = holtWintersInitialState(y, m, seasonality);
  let level = init.level;
  let trend = init.trend;
  // season[t % m] holds s(t - m) when observation t (0-based) is processed.
  const season = init.seasonal.slice();
  const fitted: (number | null)[] = new Array<number | null>(n);
  let sse = 0;
  const additive = seasonality === "additive";
  for (let t = 0; t < n; t++) {
    const idx = t % m;
    const sPrev = season[idx];
    const base = level + trend;
    const yhat = additive ? base + sPrev : base * sPrev;
    fitted[t] = yhat;
    const e = y[t] - yhat;
    sse += e * e;
    const newLevel = additive
      ? alpha * (y[t] - sPrev) + (1 - alpha) * base
      : (alpha * y[t]) / sPrev + (1 - alpha) * base;
    season[idx] = additive ? gamma * (y[t] - base) + (1 - gamma) * sPrev : (gamma * y[t]) / base + (1 - gamma) * sPrev;
    trend = beta * (newLevel - level) + (1 - beta) * trend;
    level = newLevel;
  }
  const l = level;
  const b = trend;
  // Reorder so that seasonal[0] is the index used for the next observation.
  const seasonal = Array.from({ length: m }, (_, i) => season[(n + i) % m]);
  return {
    fitted,
    sse,
    residualCount: n,
    level: l,
    trend: b,
    seasonal,
    forecast: (h) =>
      Array.from({ length: h }, (_, i) => {
        const s = seasonal[i % m];
        const base = l + (i + 1) * b;
        return additive ? base + s : base * s;
      }),
  };
}

/**
 * forecastVarianceMultipliers returns, for h = 1..horizon, the factor v(h) with
 * Var[y(n+h) - ŷ(n+h)] = σ²·v(h) under the additive-error state-space model
 * that the method's recursion is the point-forecast filter of (FPP3 §8.5, 8.7):
 * ETS(A,N,N) for SES, ETS(A,A,N) for Holt, ETS(A,A,A) for additive
 * Holt-Winters. In error-correction form the h-step error is
 * ε(n+h) + Σ_{j=1}^{h-1} c(j)·ε(n+h-j) with c(j) = α + α·β·j + γ·[j mod m = 0],
 * so v(h) = 1 + Σ_{j=1}^{h-1} c(j)². Multiplicative seasonality has no such
 * closed form and is rejected.
 */
export function forecastVarianceMultipliers(
  method: ForecastMethod,
  params: SmoothingParameters,
  horizon: number,
  seasonalPeriod?: number,
  seasonality: Seasonality = "additive",
): number[] {
  if (method === "holt_winters" && seasonality !== "additive") {
    throw new Error("forecastVarianceMultipliers: no closed form for multiplicative seasonality");
  }
  const { alpha } = params;
  const beta = method === "ses" ? 0 : (params.beta ?? 0);
  const gamma = method === "holt_winters" ? (params.gamma ?? 0) : 0;
  const m = seasonalPeriod ?? 0;
  const out: number[] = [];
  let sum = 0;
  for (let h = 1; h <= horizon; h++) {
    out.push(1 + sum);
    const j = h; // c(j) enters v(h + 1)
    const c = alpha + alpha * beta * j + (m > 0 && j % m === 0 ? gamma : 0);
    sum += c * c;
  }
  return out;
}

/*
 * Bounded Nelder-Mead over [0, 1]^d: the objective is evaluated at the point
 * clamped into the box plus a quadratic penalty for the distance outside, so
 * the best vertex is always (after clamping) feasible.
 */
function nelderMead(
  f: (x: number[]) => number,
  start: number[],
  opts: { step: number; maxIter: number; fTol: number; xTol: number },
): { x: number[]; fx: number } {
  const d = start.length;
  const clamp = (x: number[]) => x.map((v) => Math.min(1, Math.max(0, v)));
  const objective = (x: number[]): number => {
    const c = clamp(x);
    let out = 0;
    for (let i = 0; i < d; i++) out += (x[i] - c[i]) ** 2;
    const v = f(c);
    if (!Number.isFinite(v)) return Number.POSITIVE_INFINITY;
    return v + out * 1e6 * (1 + Math.abs(v));
  };
  let simplex: number[][] = [start.slice()];
  for (let i = 0; i < d; i++) {
    const p = start.slice();
    p[i] = p[i] + opts.step <= 1 ? p[i] + opts.step : p[i] - opts.step;
    simplex.push(p);
  }
  let values = simplex.map(objective);
  for (let iter = 0; iter < opts.maxIter; iter++) {
    const order = values.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]).map(([, i]) => i);
    simplex = order.map((i) => simplex[i]);
    values = order.map((i) => values[i]);
    const best = values[0];
    const worst = values[d];
    let diameter = 0;
    for (let i = 1; i <= d; i++) {
      for (let k = 0; k < d; k++) diameter = Math.max(diameter, Math.abs(simplex[i][k] - simplex[0][k]));
    }
    if (Math.abs(worst - best) <= opts.fTol * (Math.abs(best) + 1e-300) && diameter <= opts.xTol) break;
    const centroid = new Array<number>(d).fill(0);
    for (let i = 0; i < d; i++) for (let k = 0; k < d; k++) centroid[k] += simplex[i][k] / d;
    const along = (t: number) => centroid.map((c, k) => c + t * (simplex[d][k] - c));
    const xr = along(-1);
    const fr = objective(xr);
    if (fr < best) {
      const xe = along(-2);
      const fe = objective(xe);
      if (fe < fr) {
        simplex[d] = xe;
        values[d] = fe;
      } else {
        simplex[d] = xr;
        values[d] = fr;
      }
    } else if (fr < values[d - 1]) {
      simplex[d] = xr;
      values[d] = fr;
    } else {
      const outside = fr < worst;
      const xc = along(outside ? -0.5 : 0.5);
      const fc = objective(xc);
      if (fc < (outside ? fr : worst)) {
        simplex[d] = xc;
        values[d] = fc;
      } else {
        for (let i = 1; i <= d; i++) {
          simplex[i] = simplex[i].map((v, k) => simplex[0][k] + 0.5 * (v - simplex[0][k]));
          values[i] = objective(simplex[i]);
        }
      }
    }
  }
  let bestIdx = 0;
  for (let i = 1; i < values.length; i++) if (values[i] < values[bestIdx]) bestIdx = i;
  const x = clamp(simplex[bestIdx]);
  return { x, fx: f(x) };
}

type ParamName = "alpha" | "beta" | "gamma";

/**
 * fitSmoothingParameters minimises the one-step in-sample SSE over the free
 * smoothing parameters (those not in `fixed`), each constrained to [0, 1]:
 * first a grid with step 0.1 (0.05, 0.15, …, 0.95), then bounded Nelder-Mead
 * from the best grid point. Deterministic. Returns every parameter.
 */
export function fitSmoothingParameters(
  names: readonly ParamName[],
  fixed: Partial<Record<ParamName, number>>,
  sseOf: (p: Record<ParamName, number>) => number,
): Record<ParamName, number> {
  const free = names.filter((n) => fixed[n] === undefined);
  const assemble = (x: readonly number[]): Record<ParamName, number> => {
    const p: Record<ParamName, number> = { alpha: 0, beta: 0, gamma: 0 };
    for (const n of names) p[n] = fixed[n] ?? 0;
    free.forEach((n, i) => {
      p[n] = x[i];
    });
    return p;
  };
  const f = (x: number[]) => {
    const v = sseOf(assemble(x));
    return Number.isFinite(v) ? v : Number.POSITIVE_INFINITY;
  };
  if (free.length === 0) return assemble([]);
  const grid = Array.from({ length: 10 }, (_, i) => 0.05 + 0.1 * i);
  let bestX: number[] = free.map(() => 0.5);
  let bestF = Number.POSITIVE_INFINITY;
  const point = new Array<number>(free.length).fill(0);
  const visit = (k: number) => {
    if (k === free.length) {
      const v = f(point);
      if (v < bestF) {
        bestF = v;
        bestX = point.slice();
      }
      return;
    }
    for (const g of grid) {
      point[k] = g;
      visit(k + 1);
    }
  };
  visit(0);
  const refined = nelderMead(f, bestX, { step: 0.05, maxIter: 2000, fTol: 1e-12, xTol: 1e-9 });
  return assemble(refined.fx <= bestF ? refined.x : bestX);
}

const unit = z.number().min(0, "must be between 0 and 1").max(1, "must be between 0 and 1");

/** forecastInputSchema is the zod schema of the `forecast_series` tool input. */
export const forecastInputSchema = z
  .object({
    series: z
      .array(z.number().describe("an observation (finite number)"))
      .min(2, "needs at least 2 observations")
      .max(100_000, "at most 100000 observations")
      .describe("the observations in time order, equally spaced"),
    method: z
      .enum(["ses", "holt", "holt_winters"])
      .describe("ses: level only; holt: level + linear trend; holt_winters: level + trend + seasonality"),
    seasonalPeriod: z
      .number()
      .int("must be an integer")
      .min(2, "must be at least 2")
      .optional()
      .describe("season length m (e.g. 12 for monthly data with a yearly cycle); required for holt_winters"),
    seasonality: z
      .enum(["additive", "multiplicative"])
      .default("additive")
      .describe("holt_winters only: additive (constant seasonal swing) or multiplicative (swing proportional to level)"),
    alpha: unit.optional().describe("level smoothing in [0,1]; fitted by minimising SSE when omitted"),
    beta: unit.optional().describe("trend smoothing in [0,1] (holt, holt_winters); fitted when omitted"),
    gamma: unit.optional().describe("seasonal smoothing in [0,1] (holt_winters); fitted when omitted"),
    horizon: z
      .number()
      .int("must be an integer")
      .min(1, "must be at least 1")
      .max(10_000, "must be at most 10000")
      .default(6)
      .describe("number of future periods to forecast"),
    intervalLevel: z
      .number()
      .gt(0, "must be strictly between 0 and 1")
      .lt(1, "must be strictly between 0 and 1")
      .default(0.95)
      .describe("coverage of the prediction intervals, e.g. 0.95"),
  })
  .superRefine((v, ctx) => {
    if (v.method === "holt" && v.series.length < 3) {
      ctx.addIssue({ code: "custom", path: ["series"], message: "holt needs at least 3 observations" });
    }
    if (v.method === "holt_winters") {
      if (v.seasonalPeriod === undefined) {
        ctx.addIssue({ code: "custom", path: ["seasonalPeriod"], message: "is required for holt_winters" });
      } else if (v.series.length < 2 * v.seasonalPeriod) {
        ctx.addIssue({
          code: "custom",
          path: ["series"],
          message: `holt_winters needs at least two full seasons (${2 * v.seasonalPeriod} observations for seasonalPeriod ${v.seasonalPeriod}), got ${v.series.length}`,
        });
      }
      if (v.seasonality === "multiplicative") {
        const bad = v.series.findIndex((x) => !(x > 0));
        if (bad >= 0) {
          ctx.addIssue({
            code: "custom",
            path: ["series", bad],
            message: "multiplicative seasonality needs every observation > 0",
          });
        }
      }
    } else {
      if (v.gamma !== undefined) {
        ctx.addIssue({ code: "custom", path: ["gamma"], message: `is only used by holt_winters, not ${v.method}` });
      }
    }
    if (v.method === "ses" && v.beta !== undefined) {
      ctx.addIssue({ code: "custom", path: ["beta"], message: "is not used by ses" });
    }
  });

/** ForecastInput is the input of {@link forecastSeries} (before defaults). */
export type ForecastInput = z.input<typeof forecastInputSchema>;

/** PredictionIntervals are symmetric normal intervals around the point forecasts. */
export interface PredictionIntervals {
  /** level is the nominal coverage, e.g. 0.95. */
  readonly level: number;
  /** lower and upper bounds for steps 1..h. */
  readonly lower: number[];
  readonly upper: number[];
  /** sigma is the estimated one-step error standard deviation. */
  readonly sigma: number;
}

/** ForecastResult is the output of {@link forecastSeries}. */
export interface ForecastResult {
  readonly method: ForecastMethod;
  readonly seasonality?: Seasonality;
  readonly seasonalPeriod?: number;
  /** parameters are the smoothing constants used. */
  readonly parameters: SmoothingParameters;
  /** fittedParameters names the constants that were fitted rather than given. */
  readonly fittedParameters: ParamName[];
  /** fitted are one-step-ahead in-sample forecasts (null where none exists). */
  readonly fitted: (number | null)[];
  /** residuals are y - fitted (null where fitted is null). */
  readonly residuals: (number | null)[];
  readonly sse: number;
  readonly mse: number;
  readonly rmse: number;
  /** forecast are the point forecasts for steps 1..horizon. */
  readonly forecast: number[];
  /** intervals are present for ses, holt and additive holt_winters when σ can be estimated. */
  readonly intervals?: PredictionIntervals;
  /** notes explain initialisation and any omitted output. */
  readonly notes: string[];
  readonly finalState: { level: number; trend?: number; seasonal?: number[] };
}

/**
 * forecastSeries fits an exponential-smoothing model and forecasts `horizon`
 * steps ahead. Smoothing constants given by the caller are used as-is; the
 * others are fitted by minimising the one-step in-sample SSE (grid, then
 * bounded Nelder-Mead). Initial states are heuristic, not optimised: SES
 * starts from l = y(1), Holt from l = y(2), b = y(2) - y(1), Holt-Winters from
 * the first two seasons (see {@link holtWintersInitialState}).
 *
 * Prediction intervals: returned for SES, Holt and additive Holt-Winters as
 * ŷ ± z·σ̂·√v(h) (see {@link forecastVarianceMultipliers}) with
 * σ̂² = SSE / (residuals − estimated quantities), where the estimated
 * quantities are the fitted smoothing constants plus, for Holt-Winters, the
 * m + 1 initial states taken from the data (SES and Holt initial states are
 * already excluded from the residual count). They are approximate: they
 * assume Gaussian, homoscedastic errors and ignore parameter and initial-state
 * uncertainty. They are OMITTED for multiplicative Holt-Winters (no closed
 * form; would need simulation) and when too few residuals remain.
 */
export function forecastSeries(input: ForecastInput): ForecastResult {
  const v = parseToolInput(forecastInputSchema, input, "forecast_series");
  const y = v.series;
  const notes: string[] = [];
  const fixed: Partial<Record<ParamName, number>> = { alpha: v.alpha, beta: v.beta, gamma: v.gamma };
  let names: ParamName[];
  let runWith: (p: Record<ParamName, number>) => SmoothingRun;
  const m = v.seasonalPeriod ?? 0;
  if (v.method === "ses") {
    names = ["alpha"];
    runWith = (p) => runSes(y, p.alpha);
    notes.push("SES initial level l(1) = y(1); fitted values start at the 2nd observation.");
  } else if (v.method === "holt") {
    names = ["alpha", "beta"];
    runWith = (p) => runHolt(y, p.alpha, p.beta);
    notes.push("Holt initial state l(2) = y(2), b(2) = y(2) - y(1); fitted values start at the 3rd observation.");
  } else {
    names = ["alpha", "beta", "gamma"];
    runWith = (p) => runHoltWinters(y, m, v.seasonality, p.alpha, p.beta, p.gamma);
    notes.push(
      "Holt-Winters initial state from the first two seasons (level = mean of season 1, trend = difference of season means / m, seasonal = season 1 relative to level).",
    );
  }
  const fittedParameters = names.filter((n) => fixed[n] === undefined);
  const p = fitSmoothingParameters(names, fixed, (q) => runWith(q).sse);
  const run = runWith(p);
  const residuals = run.fitted.map((f, t) => (f === null ? null : y[t] - f));
  const mse = run.sse / run.residualCount;
  const forecast = run.forecast(v.horizon);
  const parameters: SmoothingParameters =
    v.method === "ses"
      ? { alpha: p.alpha }
      : v.method === "holt"
        ? { alpha: p.alpha, beta: p.beta }
        : { alpha: p.alpha, beta: p.beta, gamma: p.gamma };

  let intervals: PredictionIntervals | undefined;
  if (v.method === "holt_winters" && v.seasonality === "multiplicative") {
    notes.push("Prediction intervals omitted: multiplicative Holt-Winters has no closed-form forecast variance.");
  } else {
    const estimated = fittedParameters.length + (v.method === "holt_winters" ? m + 1 : 0);
    const dof = run.residualCount - estimated;
    if (dof < 1) {
      notes.push(
        `Prediction intervals omitted: ${run.residualCount} residuals leave no degrees of freedom after ${estimated} estimated quantities.`,
      );
    } else {
      const sigma = Math.sqrt(run.sse / dof);
      const zq = normalQuantile(0.5 + v.intervalLevel / 2);
      const mult = forecastVarianceMultipliers(v.method, parameters, v.horizon, m, v.seasonality);
      const half = mult.map((k) => zq * sigma * Math.sqrt(k));
      intervals = {
        level: v.intervalLevel,
        lower: forecast.map((f, i) => f - half[i]),
        upper: forecast.map((f, i) => f + half[i]),
        sigma,
      };
      notes.push(
        "Prediction intervals are approximate: normal errors under the matching additive-error ETS model, σ estimated from in-sample one-step errors, parameter uncertainty ignored.",
      );
    }
  }
  const finalState: ForecastResult["finalState"] = { level: run.level };
  if (run.trend !== undefined) finalState.trend = run.trend;
  if (run.seasonal !== undefined) finalState.seasonal = run.seasonal;
  return {
    method: v.method,
    ...(v.method === "holt_winters" ? { seasonality: v.seasonality, seasonalPeriod: m } : {}),
    parameters,
    fittedParameters,
    fitted: run.fitted,
    residuals,
    sse: run.sse,
    mse,
    rmse: Math.sqrt(mse),
    forecast,
    ...(intervals ? { intervals } : {}),
    notes,
    finalState,
  };
}

/**
 * forecastTool is the LangChain tool `forecast_series`: it runs
 * {@link forecastSeries} and returns the result as a JSON string.
 */
export const forecastTool = tool(async (input) => JSON.stringify(forecastSeries(input)), {
  name: "forecast_series",
  description:
    "Deterministic time-series forecast with exponential smoothing (ses, holt, holt_winters additive/multiplicative). " +
    "Give the series (equally spaced, oldest first), the method, seasonalPeriod for holt_winters, and the horizon. " +
    "Smoothing constants alpha/beta/gamma are fitted by least squares unless given. Returns JSON with fitted values, " +
    "point forecasts, and approximate prediction intervals (not for multiplicative seasonality). Use this instead of doing arithmetic yourself.",
  schema: forecastInputSchema,
});

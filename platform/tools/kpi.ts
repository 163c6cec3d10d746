import { tool } from "@langchain/core/tools";
import { z } from "zod";
import { parseToolInput } from "./validate.js";

const nonNegative = (field: string) => z.number().min(0, `${field} must be >= 0`);
const divisor = (field: string, why: string) => z.number().gt(0, `${field} must be > 0 (${why})`);
const fraction = (field: string) => z.number().min(0, `${field} must be between 0 and 1`).max(1, `${field} must be between 0 and 1`);

/** cacSchema: CAC = spend / newCustomers. */
export const cacSchema = z.object({
  spend: nonNegative("spend").describe("sales and marketing spend in the period"),
  newCustomers: divisor("newCustomers", "CAC divides spend by new customers").describe("customers acquired in the period"),
});

/** ltvSchema: LTV = ARPU × gross margin / churn, optionally discounted or over a finite horizon. */
export const ltvSchema = z
  .object({
    arpu: nonNegative("arpu").describe("average revenue per user per period (e.g. per month)"),
    grossMargin: fraction("grossMargin").describe("gross margin as a fraction, e.g. 0.8"),
    churnRate: fraction("churnRate").describe("fraction of customers lost per period, e.g. 0.03"),
    discountRate: nonNegative("discountRate").default(0).describe("discount rate per period (e.g. 0.01 per month); 0 = undiscounted"),
    horizonPeriods: z
      .number()
      .int("horizonPeriods must be a whole number")
      .min(1, "horizonPeriods must be >= 1")
      .optional()
      .describe("count at most this many periods; unlimited when omitted"),
  })
  .superRefine((v, ctx) => {
    if (v.churnRate === 0 && v.discountRate === 0 && v.horizonPeriods === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["churnRate"],
        message: "must be > 0 (LTV divides margin by churn; with no churn, no discounting and no horizon it is unbounded)",
      });
    }
  });

/** ltvCacSchema: LTV:CAC = ltv / cac. */
export const ltvCacSchema = z.object({
  ltv: nonNegative("ltv"),
  cac: divisor("cac", "LTV:CAC divides by CAC"),
});

/** paybackSchema: payback months = CAC / (ARPU × gross margin). */
export const paybackSchema = z
  .object({
    cac: nonNegative("cac"),
    arpu: divisor("arpu", "payback divides CAC by monthly ARPU × gross margin").describe("average revenue per user per month"),
    grossMargin: fraction("grossMargin"),
  })
  .superRefine((v, ctx) => {
    if (v.grossMargin === 0) {
      ctx.addIssue({ code: "custom", path: ["grossMargin"], message: "must be > 0 (payback divides by ARPU × gross margin)" });
    }
  });

/** roasSchema: ROAS = revenue / adSpend. */
export const roasSchema = z.object({
  revenue: nonNegative("revenue").describe("revenue attributed to the ads"),
  adSpend: divisor("adSpend", "ROAS divides revenue by ad spend"),
});

/** roiSchema: ROI = (gain − cost) / cost. */
export const roiSchema = z.object({
  gain: nonNegative("gain").describe("total return attributable to the investment (use gross profit for a margin-based ROI)"),
  cost: divisor("cost", "ROI divides net gain by cost"),
});

/** conversionRateSchema: conversion rate = conversions / visitors. */
export const conversionRateSchema = z
  .object({
    conversions: nonNegative("conversions"),
    visitors: divisor("visitors", "conversion rate divides by visitors"),
  })
  .superRefine((v, ctx) => {
    if (v.conversions > v.visitors) {
      ctx.addIssue({ code: "custom", path: ["conversions"], message: "must not exceed visitors" });
    }
  });

/** cac is customer acquisition cost: spend / newCustomers. */
export function cac(input: z.input<typeof cacSchema>): number {
  const v = parseToolInput(cacSchema, input, "cac");
  return v.spend / v.newCustomers;
}

/**
 * ltv is customer lifetime value from the per-period margin m = arpu ×
 * grossMargin, retention r = 1 − churnRate and discount rate d per period,
 * assuming the margin is received at the start of each period a customer is
 * active (so the first period is undiscounted) and churn happens at period
 * ends: LTV = Σ_{t=0}^{H−1} m·qᵗ with q = r / (1 + d). With no horizon this is
 * m·(1 + d) / (churnRate + d), which for d = 0 is the simple m / churnRate.
 * (Gupta & Lehmann's m·r/(1 + d − r) instead pays the first margin at the end
 * of period 1, after the first churn; it equals this value times r/(1 + d).)
 */
export function ltv(input: z.input<typeof ltvSchema>): number {
  const v = parseToolInput(ltvSchema, input, "ltv");
  const m = v.arpu * v.grossMargin;
  if (v.horizonPeriods === undefined) return (m * (1 + v.discountRate)) / (v.churnRate + v.discountRate);
  // m·(1 − q^H)/(1 − q) with 1 − q = x = (churn + d)/(1 + d), written with expm1/log1p so that it stays
  // accurate when q is within rounding of 1 (tiny churn and discount).
  const x = (v.churnRate + v.discountRate) / (1 + v.discountRate);
  if (x === 0) return m * v.horizonPeriods;
  return (m * -Math.expm1(v.horizonPeriods * Math.log1p(-x))) / x;
}

/** ltvToCac is the LTV:CAC ratio. */
export function ltvToCac(input: z.input<typeof ltvCacSchema>): number {
  const v = parseToolInput(ltvCacSchema, input, "ltvToCac");
  return v.ltv / v.cac;
}

/** paybackMonths is CAC / (monthly ARPU × gross margin): months of margin to recover CAC. */
export function paybackMonths(input: z.input<typeof paybackSchema>): number {
  const v = parseToolInput(paybackSchema, input, "paybackMonths");
  return v.cac / (v.arpu * v.grossMargin);
}

/** roas is return on ad spend: revenue / adSpend. */
export function roas(input: z.input<typeof roasSchema>): number {
  const v = parseToolInput(roasSchema, input, "roas");
  return v.revenue / v.adSpend;
}

/** roi is return on investment: (gain − cost) / cost. */
export function roi(input: z.input<typeof roiSchema>): number {
  const v = parseToolInput(roiSchema, input, "roi");
  return (v.gain - v.cost) / v.cost;
}

/** conversionRate is conversions / visitors. */
export function conversionRate(input: z.input<typeof conversionRateSchema>): number {
  const v = parseToolInput(conversionRateSchema, input, "conversionRate");
  return v.conversions / v.visitors;
}

const calculation = z.discriminatedUnion("metric", [
  cacSchema.extend({ metric: z.literal("cac") }),
  // Refined schemas contribute only their shape here; their cross-field checks run in the metric functions.
  z.object({ metric: z.literal("ltv"), ...ltvSchema.shape }),
  ltvCacSchema.extend({ metric: z.literal("ltv_cac") }),
  z.object({ metric: z.literal("payback_months"), ...paybackSchema.shape }),
  roasSchema.extend({ metric: z.literal("roas") }),
  roiSchema.extend({ metric: z.literal("roi") }),
  z.object({ metric: z.literal("conversion_rate"), ...conversionRateSchema.shape }),
]);

/** kpiInputSchema is the zod schema of the `kpi_calculator` tool input. */
export const kpiInputSchema = z.object({
  calculations: z
    .array(calculation)
    .min(1, "give at least one calculation")
    .describe("each item names a metric and carries exactly that metric's inputs"),
});

/** KpiInput is the input of {@link calculateKpis} (before defaults). */
export type KpiInput = z.input<typeof kpiInputSchema>;

/** KpiResult is one computed metric. */
export interface KpiResult {
  readonly metric: string;
  readonly value: number;
  readonly formula: string;
}

const FORMULAS: Record<string, string> = {
  cac: "spend / newCustomers",
  ltv: "arpu × grossMargin × (1 + discountRate) / (churnRate + discountRate)  [finite horizon H: m·(1 − qᴴ)/(1 − q), q = (1 − churnRate)/(1 + discountRate)]",
  ltv_cac: "ltv / cac",
  payback_months: "cac / (arpu × grossMargin)",
  roas: "revenue / adSpend",
  roi: "(gain − cost) / cost",
  conversion_rate: "conversions / visitors",
};

/**
 * calculateKpis evaluates each requested KPI. Every input is validated; a
 * division by zero or a negative input is reported as an error naming the
 * field, e.g. `calculations[0].newCustomers: newCustomers must be > 0 (...)`.
 */
export function calculateKpis(input: KpiInput): { results: KpiResult[] } {
  const v = parseToolInput(kpiInputSchema, input, "kpi_calculator");
  const results = v.calculations.map((c, i): KpiResult => {
    const { metric, ...rest } = c;
    let value: number;
    try {
      switch (metric) {
        case "cac":
          value = cac(rest as z.input<typeof cacSchema>);
          break;
        case "ltv":
          value = ltv(rest as z.input<typeof ltvSchema>);
          break;
        case "ltv_cac":
          value = ltvToCac(rest as z.input<typeof ltvCacSchema>);
          break;
        case "payback_months":
          value = paybackMonths(rest as z.input<typeof paybackSchema>);
          break;
        case "roas":
          value = roas(rest as z.input<typeof roasSchema>);
          break;
        case "roi":
          value = roi(rest as z.input<typeof roiSchema>);
          break;
        case "conversion_rate":
          value = conversionRate(rest as z.input<typeof conversionRateSchema>);
          break;
      }
    } catch (e) {
      // Re-anchor the field path at the calculation's index.
      const msg = (e as Error).message.replace(/^[A-Za-z]+: invalid input: /, "");
      throw new Error(`kpi_calculator: invalid input: calculations[${i}] (${metric}): ${msg}`);
    }
    return { metric, value, formula: FORMULAS[metric] };
  });
  return { results };
}

/**
 * kpiTool is the LangChain tool `kpi_calculator`: it runs
 * {@link calculateKpis} and returns the result as a JSON string.
 */
export const kpiTool = tool(async (input) => JSON.stringify(calculateKpis(input)), {
  name: "kpi_calculator",
  description:
    "Deterministic marketing/SaaS KPI arithmetic: cac, ltv (optionally discounted / finite horizon), ltv_cac, " +
    "payback_months, roas, roi, conversion_rate. Pass a list of calculations, each with `metric` and that metric's " +
    "inputs. Rejects division by zero and negative inputs with an error naming the field. Returns JSON. Use this " +
    "instead of doing the arithmetic yourself.",
  schema: kpiInputSchema,
});

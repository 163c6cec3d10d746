import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { AgentCall, AgentOutcome } from "../../platform/agents/agent-runtime.js";
import type { AgentDefinition } from "../../platform/agents/catalog.js";
import type { ToolCall } from "../../platform/llm/llm-provider.js";
import { calculateKpis, schedulePlan, type KpiInput, type KpiResult, type ScheduleResult } from "../../platform/tools/index.js";

/**
 * Computed is an answer with its numbers replaced by the tools' and the tool
 * calls that produced them.
 */
export interface Computed {
  readonly output: JsonObject;
  readonly toolCalls: readonly ToolCall[];
}

/**
 * ComputeFields recomputes the numeric fields of one agent's validated
 * answer from the call's inputs with the deterministic tools, whatever the
 * model wrote there.
 */
export type ComputeFields = (output: JsonObject, call: AgentCall) => Computed;

/** Tools records the tool calls made while computing one answer. */
class Tools {
  readonly calls: ToolCall[] = [];

  /** kpis runs `kpi_calculator` on the calculations and records the call. */
  kpis(calculations: KpiInput["calculations"]): KpiResult[] {
    // Recorded as the tool answers a model: `{"results": [...]}`.
    return this.run("kpi_calculator", { calculations }, calculateKpis).results;
  }

  /** schedule runs `plan_schedule` and records the call. */
  schedule(args: Parameters<typeof schedulePlan>[0]): ScheduleResult {
    return this.run("plan_schedule", args, schedulePlan);
  }

  private run<A, R>(name: string, args: A, fn: (a: A) => R): R {
    try {
      const result = fn(args);
      this.calls.push({ name, arguments: JSON.stringify(args), result: JSON.stringify(result) });
      return result;
    } catch (e) {
      this.calls.push({ name, arguments: JSON.stringify(args), result: JSON.stringify({ error: (e as Error).message }) });
      throw e;
    }
  }
}

const obj = (v: JsonValue | undefined): JsonObject => (v !== null && typeof v === "object" && !Array.isArray(v) ? v : {});
const arr = (v: JsonValue | undefined): JsonValue[] => (Array.isArray(v) ? v : []);
const num = (v: JsonValue | undefined): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
const cents = (x: number) => Math.round(x * 100) / 100;

/** ltvToCacHealthy and paybackHealthyMonths are the usual SaaS rules of thumb: LTV at least 3× CAC, CAC back within a year. */
const ltvToCacHealthy = 3;
const paybackHealthyMonths = 12;

/**
 * monetization computes the unit economics from `customer_metrics` with
 * `kpi_calculator`: CAC = acquisition spend / new customers, LTV = ARPU ×
 * gross margin / monthly churn, LTV:CAC, and payback = CAC / (ARPU × gross
 * margin) months. A metric whose inputs were not given is `unknown` with
 * value 0 and says what it needs. LTV:CAC of 3 or more and payback within 12
 * months are `healthy`, otherwise `weak`; the other metrics keep the model's
 * assessment. Pricing tiers are put in order, cheapest first, each range low
 * to high and in cents.
 */
const monetization: ComputeFields = (output, call) => {
  const tools = new Tools();
  const m = obj(call.parameters.customer_metrics);
  const arpu = num(m.monthly_revenue_per_customer_usd);
  const margin = num(m.gross_margin);
  const churn = num(m.monthly_churn_rate);
  const spend = num(m.acquisition_spend_usd);
  const won = num(m.new_customers);

  const values = new Map<string, { value: number; inputs: string }>();
  if (arpu !== undefined) values.set("arpu", { value: arpu, inputs: `customer_metrics.monthly_revenue_per_customer_usd = ${arpu}` });
  if (margin !== undefined) values.set("gross_margin", { value: margin, inputs: `customer_metrics.gross_margin = ${margin}` });
  // First what needs only inputs, then what needs those results.
  const first: KpiInput["calculations"] = [];
  if (spend !== undefined && won !== undefined && won > 0) first.push({ metric: "cac", spend, newCustomers: won });
  if (arpu !== undefined && margin !== undefined && churn !== undefined && churn > 0) first.push({ metric: "ltv", arpu, grossMargin: margin, churnRate: churn });
  const firstResults = first.length ? tools.kpis(first) : [];
  const cac = firstResults.find((r) => r.metric === "cac")?.value;
  const ltv = firstResults.find((r) => r.metric === "ltv")?.value;
  if (cac !== undefined) values.set("cac", { value: cac, inputs: `kpi_calculator cac: spend ${spend}, newCustomers ${won} (spend / newCustomers)` });
  if (ltv !== undefined) values.set("ltv", { value: ltv, inputs: `kpi_calculator ltv: arpu ${arpu}, grossMargin ${margin}, churnRate ${churn} (arpu × grossMargin / churnRate)` });
  const second: KpiInput["calculations"] = [];
  if (ltv !== undefined && cac !== undefined && cac > 0) second.push({ metric: "ltv_cac", ltv, cac });
  if (cac !== undefined && arpu !== undefined && arpu > 0 && margin !== undefined && margin > 0) second.push({ metric: "payback_months", cac, arpu, grossMargin: margin });
  const secondResults = second.length ? tools.kpis(second) : [];
  const ratio = secondResults.find((r) => r.metric === "ltv_cac")?.value;
  const payback = secondResults.find((r) => r.metric === "payback_months")?.value;
  if (ratio !== undefined) values.set("ltv_to_cac", { value: ratio, inputs: `kpi_calculator ltv_cac: ltv ${ltv}, cac ${cac} (ltv / cac)` });
  if (payback !== undefined) values.set("payback_months", { value: payback, inputs: `kpi_calculator payback_months: cac ${cac}, arpu ${arpu}, grossMargin ${margin} (cac / (arpu × grossMargin))` });

  const needs: Record<string, string> = {
    arpu: "customer_metrics.monthly_revenue_per_customer_usd",
    gross_margin: "customer_metrics.gross_margin",
    cac: "customer_metrics.acquisition_spend_usd and new_customers (> 0)",
    ltv: "customer_metrics.monthly_revenue_per_customer_usd, gross_margin and monthly_churn_rate (> 0)",
    ltv_to_cac: "LTV and CAC",
    payback_months: "CAC, monthly_revenue_per_customer_usd (> 0) and gross_margin (> 0)",
  };
  const units: Record<string, string> = { arpu: "usd/month", gross_margin: "ratio", cac: "usd", ltv: "usd", ltv_to_cac: "ratio", payback_months: "months" };
  const modelSaid = new Map(arr(output.unit_economics).map((u) => [obj(u).metric as string, obj(u).assessment as string]));
  const assess = (metric: string, value: number): string => {
    if (metric === "ltv_to_cac") return value >= ltvToCacHealthy ? "healthy" : "weak";
    if (metric === "payback_months") return value <= paybackHealthyMonths ? "healthy" : "weak";
    return modelSaid.get(metric) ?? "unknown";
  };
  const unitEconomics = Object.keys(needs).map((metric): JsonObject => {
    const v = values.get(metric);
    return v
      ? { metric, value: v.value, unit: units[metric], formula_inputs: v.inputs, assessment: assess(metric, v.value) }
      : { metric, value: 0, unit: units[metric], formula_inputs: `not computed: needs ${needs[metric]}`, assessment: "unknown" };
  });

  const tiers = arr(output.pricing_tiers)
    .map((t) => {
      const tier = obj(t);
      const [low, high] = [num(tier.price_low) ?? 0, num(tier.price_high) ?? 0].sort((a, b) => a - b);
      return { ...tier, price_low: cents(low), price_high: cents(high) };
    })
    .sort((a, b) => a.price_low - b.price_low || a.price_high - b.price_high);
  return { output: { ...output, pricing_tiers: tiers, unit_economics: unitEconomics }, toolCalls: tools.calls };
};

/**
 * kpiCalculation reads a cohort metric's `tool_inputs`: a kpi_calculator
 * calculation as JSON (`{"metric": "conversion_rate", "conversions": 120,
 * "visitors": 400}`, or the tool's whole `{"calculations": [...]}` input with
 * one calculation); undefined when it is not one.
 */
function kpiCalculation(text: JsonValue | undefined): KpiInput["calculations"][number] | undefined {
  if (typeof text !== "string") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const one = (value as { calculations?: unknown[] })?.calculations?.length === 1 ? (value as { calculations: unknown[] }).calculations[0] : value;
  return one !== null && typeof one === "object" && typeof (one as { metric?: unknown }).metric === "string" ? (one as KpiInput["calculations"][number]) : undefined;
}

/**
 * cohortBuilder recomputes every cohort metric with `kpi_calculator` from the
 * calculation the model wrote in its `tool_inputs`, whatever value the model
 * wrote. A metric whose inputs are not a calculation the tool accepts is
 * dropped, and `data_gaps` says so: a number nobody computed is not reported.
 */
const cohortBuilder: ComputeFields = (output) => {
  const tools = new Tools();
  const gaps: string[] = [];
  const cohortMetrics = arr(output.cohort_metrics).map((c) => {
    const cohort = obj(c);
    const metrics = arr(cohort.metrics).flatMap((x): JsonObject[] => {
      const metric = obj(x);
      const calculation = kpiCalculation(metric.tool_inputs);
      if (calculation) {
        try {
          const [result] = tools.kpis([calculation]);
          return [{ ...metric, value: result.value, tool_inputs: JSON.stringify(calculation) }];
        } catch (e) {
          gaps.push(`${String(cohort.cohort)}: ${String(metric.name)} not computed (${(e as Error).message})`);
          return [];
        }
      }
      gaps.push(`${String(cohort.cohort)}: ${String(metric.name)} not computed (its tool_inputs are not a kpi_calculator calculation)`);
      return [];
    });
    return { ...cohort, metrics };
  });
  return { output: { ...output, cohort_metrics: cohortMetrics, data_gaps: [...arr(output.data_gaps), ...gaps] }, toolCalls: tools.calls };
};

/** phaseOrder is the order a go-to-market plan's phases run in. */
const phaseOrder = ["prepare", "launch", "optimise", "scale"];
/** maxPlanWeeks is the longest plan the plan generator's input allows. */
const maxPlanWeeks = 104;

/**
 * planGenerator lays the plan on its weeks with `plan_schedule`: the timeline
 * is the `timeline_weeks` input (else the last week the model planned, at
 * most 104); the model's phases, in order, share it in proportion to the
 * weeks the model gave them; the budget (the `budget` input, else the
 * model's) is spread evenly over the weeks to the cent. The weekly plan then
 * has one entry per week with its phase and budget, keeping what the model
 * planned for that week (a week it did not plan has no activities); the
 * launch week is the first week of `launch` (without one, of the first phase
 * after `prepare`, else the week after the plan); milestones fall inside the
 * plan, and a KPI without a target has target 0.
 */
const planGenerator: ComputeFields = (output, call) => {
  const tools = new Tools();
  const summary = obj(output.plan_summary);
  const modelWeeks = arr(output.weekly_plan).map(obj);
  const lastPlanned = Math.max(1, ...modelWeeks.map((w) => num(w.week) ?? 1));
  const timelineWeeks = Math.min(maxPlanWeeks, num(call.parameters.timeline_weeks) ?? lastPlanned);
  const seen = new Set<string>();
  const phases = arr(summary.phases)
    .map(obj)
    .filter((p) => phaseOrder.includes(p.phase as string) && !seen.has(p.phase as string) && seen.add(p.phase as string))
    .sort((a, b) => phaseOrder.indexOf(a.phase as string) - phaseOrder.indexOf(b.phase as string))
    .slice(0, timelineWeeks)
    .map((p) => ({ phase: p.phase as string, weight: Math.max(1, (num(p.end_week) ?? 1) - (num(p.start_week) ?? 1) + 1) }));
  if (phases.length === 0) phases.push({ phase: "prepare", weight: 1 });
  const budget = num(call.parameters.budget) ?? num(summary.budget_usd) ?? 0;
  const schedule = tools.schedule({ timelineWeeks, phases, budget, launchPhase: "launch" });

  const afterPrepare = schedule.phases.find((p) => p.phase !== "prepare");
  const launchWeek = schedule.launchWeek || afterPrepare?.startWeek || Math.min(520, timelineWeeks + 1);
  const weeklyPlan = schedule.weeks.map((w): JsonObject => {
    const planned = modelWeeks.filter((m) => num(m.week) === w.week);
    return {
      week: w.week,
      phase: w.phase,
      objectives: planned.flatMap((m) => arr(m.objectives)),
      activities: planned.flatMap((m) => arr(m.activities)),
      budget_usd: w.budget,
    };
  });
  const clampWeek = (week: number | undefined) => Math.min(timelineWeeks, Math.max(1, week ?? 1));
  return {
    output: {
      ...output,
      plan_summary: {
        ...summary,
        launch_week: launchWeek,
        phases: schedule.phases.map((p) => ({ phase: p.phase, start_week: p.startWeek, end_week: p.endWeek, budget_usd: p.budget })),
        budget_usd: schedule.budget,
      },
      weekly_plan: weeklyPlan,
      milestones: arr(output.milestones).map((x) => ({ ...obj(x), week: clampWeek(num(obj(x).week)) })),
      kpis: arr(output.kpis).map((x) => (obj(x).has_target === true ? obj(x) : { ...obj(x), target: 0 })),
    },
    toolCalls: tools.calls,
  };
};

/** computedFields are the V1 agents whose numbers come from the tools, by agent id. */
export const computedFields: Readonly<Record<string, ComputeFields>> = {
  monetization,
  cohort_builder: cohortBuilder,
  plan_generator: planGenerator,
};

/**
 * finishV1Answer is the V1 service's `finish` hook: for an agent with
 * computed fields, the numbers of its validated answer are recomputed by the
 * tools, and the tool calls are added to the model's own.
 */
export function finishV1Answer(agent: AgentDefinition, call: AgentCall, outcome: AgentOutcome): AgentOutcome {
  const compute = computedFields[agent.id];
  if (!compute) return outcome;
  const { output, toolCalls } = compute(outcome.output, call);
  return { ...outcome, output, toolCalls: [...outcome.toolCalls, ...toolCalls] };
}

import type { JsonObject } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MonetizationModelService } from "../../gen/raptorflow/v1/monetization_model_pb.js";
import { PlanService } from "../../gen/raptorflow/v1/plan_pb.js";
import { createOpenAIProvider } from "../../platform/llm/openai-provider.js";
import { startLoopbackOpenAI, type LoopbackOpenAI } from "../../test/support/openai-loopback.js";
import { scriptedProvider, startV1InProcess } from "../../test/support/v1-agents.js";

type Unit = { metric: string; value: number; unit: string; formula_inputs: string; assessment: string };
const byMetric = (output: JsonObject | undefined) => Object.fromEntries((output?.unit_economics as Unit[]).map((u) => [u.metric, u]));

// The numbers of the numeric V1 agents come from the tools, whatever the model wrote.
describe("numbers computed by the tools", () => {
  it("monetization: LTV = ARPU × margin / churn, CAC = spend / new customers, payback = CAC / (ARPU × margin), with the offline provider too", async () => {
    const v1 = startV1InProcess();
    const res = await v1.agents.runAgent({
      name: "agents/monetization",
      input: "Price our analytics product",
      parameters: {
        product: "Retail analytics",
        customer_metrics: { monthly_revenue_per_customer_usd: 50, gross_margin: 0.8, monthly_churn_rate: 0.02, acquisition_spend_usd: 12000, new_customers: 40 },
      },
    });
    const u = byMetric(res.output);
    expect(u.arpu).toMatchObject({ value: 50, unit: "usd/month" });
    expect(u.gross_margin.value).toBe(0.8);
    expect(u.cac).toMatchObject({ value: 300, unit: "usd" }); // 12000 / 40
    expect(u.ltv.value).toBeCloseTo(2000, 9); // 50 × 0.8 / 0.02
    expect(u.ltv_to_cac.value).toBeCloseTo(20 / 3, 9);
    expect(u.ltv_to_cac.assessment).toBe("healthy"); // ≥ 3
    expect(u.payback_months.value).toBeCloseTo(7.5, 9); // 300 / (50 × 0.8)
    expect(u.payback_months.assessment).toBe("healthy"); // ≤ 12
    expect(u.ltv.formula_inputs).toContain("churnRate 0.02");
    // The tool calls are recorded: where the numbers came from.
    expect(res.toolCalls.map((c) => c.name)).toEqual(["kpi_calculator", "kpi_calculator"]);
    expect(JSON.parse(res.toolCalls[0].arguments)).toEqual({
      calculations: [
        { metric: "cac", spend: 12000, newCustomers: 40 },
        { metric: "ltv", arpu: 50, grossMargin: 0.8, churnRate: 0.02 },
      ],
    });
    expect(JSON.parse(res.toolCalls[1].result).results.map((r: { metric: string }) => r.metric)).toEqual(["ltv_cac", "payback_months"]);
    // The record holds the same numbers, typed.
    const [name] = res.records;
    const model = await v1.client(MonetizationModelService).getMonetizationModel({ name });
    expect(model.unitEconomics).toMatchObject({ arpuUsd: 50, grossMargin: 0.8, monthlyChurnRate: 0.02, cacUsd: 300, paybackMonths: 7.5 });
    expect(model.unitEconomics?.ltvUsd).toBeCloseTo(2000, 9);
  });

  it("monetization: weak ratios are weak; what cannot be computed is unknown, never the model's number", async () => {
    const v1 = startV1InProcess();
    const weak = await v1.agents.runAgent({
      name: "agents/monetization",
      input: "Price it",
      parameters: { customer_metrics: { monthly_revenue_per_customer_usd: 50, gross_margin: 0.8, monthly_churn_rate: 0.02, acquisition_spend_usd: 40000, new_customers: 40 } },
    });
    const w = byMetric(weak.output);
    expect(w.cac.value).toBe(1000);
    expect(w.ltv_to_cac).toMatchObject({ value: 2, assessment: "weak" });
    expect(w.payback_months).toMatchObject({ value: 25, assessment: "weak" });

    // No churn and no acquisition data: the offline model's numbers (their schema maximum) must not survive.
    const partial = await v1.agents.runAgent({ name: "agents/monetization", input: "Price it", parameters: { customer_metrics: { monthly_revenue_per_customer_usd: 80 } } });
    const p = byMetric(partial.output);
    expect(p.arpu.value).toBe(80);
    for (const m of ["gross_margin", "cac", "ltv", "ltv_to_cac", "payback_months"]) {
      expect(p[m], m).toMatchObject({ value: 0, assessment: "unknown" });
      expect(p[m].formula_inputs, m).toMatch(/^not computed: needs /);
    }
    expect(partial.toolCalls).toEqual([]);
    const model = await v1.client(MonetizationModelService).getMonetizationModel({ name: partial.records[0] });
    expect(model.unitEconomics).toMatchObject({ arpuUsd: 80 });
    expect(model.unitEconomics?.ltvUsd).toBeUndefined();
  });

  it("monetization: tiers come out cheapest first, each range low to high, in cents", async () => {
    const tier = (name: string, price_low: number, price_high: number) => ({ name, target_buyer: "b", value_metric: "seats", price_low, price_high, currency: "USD", billing_period: "month", features: ["f"] });
    const v1 = startV1InProcess({ provider: scriptedProvider({ monetization: { pricing_tiers: [tier("Pro", 99.999, 49), tier("Starter", 19, 19)] } }) });
    const res = await v1.agents.runAgent({ name: "agents/monetization", input: "Price it" });
    expect((res.output?.pricing_tiers as { name: string; price_low: number; price_high: number }[]).map((t) => [t.name, t.price_low, t.price_high])).toEqual([
      ["Starter", 19, 19],
      ["Pro", 49, 100],
    ]);
  });

  it("cohort builder: each metric is recomputed from the calculation in its tool_inputs; one without a calculation is dropped and reported", async () => {
    const provider = scriptedProvider({
      cohort_builder: {
        cohort_metrics: [
          {
            cohort: "Weekend shoppers",
            metrics: [
              { name: "repeat_rate", value: 99, unit: "ratio", tool_inputs: JSON.stringify({ metric: "conversion_rate", conversions: 120, visitors: 400 }) },
              { name: "cac", value: 1, unit: "usd", tool_inputs: JSON.stringify({ calculations: [{ metric: "cac", spend: 5000, newCustomers: 25 }] }) },
              { name: "guess", value: 42, unit: "usd", tool_inputs: "about 42" },
            ],
          },
        ],
      },
    });
    const v1 = startV1InProcess({ provider });
    const res = await v1.agents.runAgent({ name: "agents/cohort_builder", input: "Split our customers" });
    const metrics = (res.output?.cohort_metrics as { metrics: { name: string; value: number }[] }[])[0].metrics;
    expect(metrics.map((m) => [m.name, m.value])).toEqual([
      ["repeat_rate", 0.3],
      ["cac", 200],
    ]);
    expect(res.output?.data_gaps).toContain("Weekend shoppers: guess not computed (its tool_inputs are not a kpi_calculator calculation)");
    expect(res.toolCalls.map((c) => c.name)).toEqual(["kpi_calculator", "kpi_calculator"]);
  });

  it("plan generator: the schedule comes from plan_schedule — phases by the weeks the model gave them, one entry per week, the budget by week to the cent", async () => {
    const week = (n: number, phase: string) => ({ week: n, phase, objectives: [`objective ${n}`], activities: [{ activity: `do ${n}`, owner: "Ana", deliverable: `d${n}` }], budget_usd: 1 });
    const provider = scriptedProvider({
      plan_generator: {
        plan_summary: {
          display_name: "Spring launch",
          objective: "500 demos",
          summary: "Prepare, launch, optimise.",
          launch_week: 9,
          // The model's weeks overlap and do not add up; their lengths (4, 2, 6) are only weights.
          phases: [
            { phase: "optimise", start_week: 5, end_week: 10, budget_usd: 1 },
            { phase: "prepare", start_week: 1, end_week: 4, budget_usd: 1 },
            { phase: "launch", start_week: 3, end_week: 4, budget_usd: 1 },
          ],
          channels: ["email"],
          budget_usd: 999999,
        },
        weekly_plan: [week(1, "launch"), week(3, "scale"), week(40, "scale")],
        milestones: [{ name: "Go live", week: 30, exit_criteria: ["live"] }],
        kpis: [{ name: "demos", kind: "lagging", unit: "count", has_target: false, target: 77 }],
      },
    });
    const v1 = startV1InProcess({ provider });
    const res = await v1.agents.runAgent({ name: "agents/plan_generator", input: "Plan our spring launch", parameters: { timeline_weeks: 12, budget: 10000 } });
    const out = res.output as { plan_summary: JsonObject; weekly_plan: JsonObject[]; milestones: JsonObject[]; kpis: JsonObject[] };
    // 12 weeks, weights 4:2:6 (sum 12): one week each, the 9 left shared 3 : 1.5 : 4.5 -> 3, 2, 4 by
    // largest remainder (the tie goes to the earlier phase), so 4, 3 and 5 weeks. $10,000 over 12 weeks is
    // 833.34 for the first four weeks and 833.33 for the other eight.
    expect(out.plan_summary.phases).toEqual([
      { phase: "prepare", start_week: 1, end_week: 4, budget_usd: 3333.36 },
      { phase: "launch", start_week: 5, end_week: 7, budget_usd: 2499.99 },
      { phase: "optimise", start_week: 8, end_week: 12, budget_usd: 4166.65 },
    ]);
    expect(out.plan_summary.launch_week).toBe(5);
    expect(out.plan_summary.budget_usd).toBe(10000);
    expect(out.weekly_plan.map((w) => w.week)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(out.weekly_plan.map((w) => w.phase)).toEqual(["prepare", "prepare", "prepare", "prepare", "launch", "launch", "launch", "optimise", "optimise", "optimise", "optimise", "optimise"]);
    // The model's week 1 and 3 are kept (with the scheduled phase), week 2 has no activities, week 40 is outside the plan.
    expect(out.weekly_plan[0]).toMatchObject({ objectives: ["objective 1"], activities: [{ activity: "do 1" }], phase: "prepare" });
    expect(out.weekly_plan[1]).toMatchObject({ objectives: [], activities: [] });
    expect(out.weekly_plan[2]).toMatchObject({ objectives: ["objective 3"] });
    expect(out.weekly_plan.map((w) => w.budget_usd as number).reduce((a, b) => a + b, 0)).toBeCloseTo(10000, 6);
    expect(out.weekly_plan[0].budget_usd).toBe(833.34);
    expect(out.milestones[0].week).toBe(12);
    expect(out.kpis[0].target).toBe(0);
    expect(res.toolCalls.map((c) => c.name)).toEqual(["plan_schedule"]);
    expect(JSON.parse(res.toolCalls[0].arguments)).toEqual({ timelineWeeks: 12, phases: [{ phase: "prepare", weight: 4 }, { phase: "launch", weight: 2 }, { phase: "optimise", weight: 6 }], budget: 10000, launchPhase: "launch" });

    const plan = await v1.client(PlanService).getPlan({ name: res.records[0] });
    expect(plan).toMatchObject({ displayName: "Spring launch", timelineWeeks: 12, launchWeek: 5, budgetUsd: 10000 });
    expect(plan.weeks).toHaveLength(12);
    expect(plan.weeks[4]).toMatchObject({ week: 5, phase: "launch" });
    expect(plan.phases.map((p) => [p.phase, p.startWeek, p.endWeek])).toEqual([
      ["prepare", 1, 4],
      ["launch", 5, 7],
      ["optimise", 8, 12],
    ]);
  });

  it("plan generator with the offline provider: a plan of the weeks asked for, launched after a prepare-only plan", async () => {
    const v1 = startV1InProcess();
    const res = await v1.agents.runAgent({ name: "agents/plan_generator", input: "Plan a launch", parameters: { timeline_weeks: 6, budget: 600 } });
    const out = res.output as { plan_summary: { launch_week: number; phases: JsonObject[] }; weekly_plan: JsonObject[] };
    expect(out.weekly_plan.map((w) => [w.week, w.budget_usd])).toEqual([1, 2, 3, 4, 5, 6].map((w) => [w, 100]));
    // The offline answer has one phase (`prepare`), so the launch is the week after the plan.
    expect(out.plan_summary.phases).toEqual([{ phase: "prepare", start_week: 1, end_week: 6, budget_usd: 600 }]);
    expect(out.plan_summary.launch_week).toBe(7);
  });

  it("the finished numbers reach the streamed result too", async () => {
    const v1 = startV1InProcess();
    let last: JsonObject | undefined;
    let records: string[] = [];
    for await (const ev of v1.agents.streamAgent({ name: "agents/monetization", input: "Price it", parameters: { customer_metrics: { acquisition_spend_usd: 900, new_customers: 3 } } })) {
      if (ev.event.case === "result") {
        last = ev.event.value.output;
        records = ev.event.value.records;
      }
    }
    expect(byMetric(last).cac.value).toBe(300);
    expect(records).toHaveLength(1);
  });
});

describe("numbers computed by the tools, with a real provider", () => {
  let server: LoopbackOpenAI;
  beforeAll(async () => {
    server = await startLoopbackOpenAI();
  });
  afterAll(async () => {
    await server.close();
  });

  it("the model's own tool call is kept in toolCalls, but the recorded numbers are the runtime's", async () => {
    // The model calls kpi_calculator with the wrong spend, then answers (the loopback fills the schema with its own numbers).
    server.script({ kind: "tool_call", name: "kpi_calculator", arguments: { calculations: [{ metric: "cac", spend: 99999, newCustomers: 40 }] } });
    const provider = createOpenAIProvider({ apiKey: "k", baseURL: server.baseURL, models: { fast: "m", capable: "m" }, maxRetries: 0 });
    const v1 = startV1InProcess({ provider });
    const res = await v1.agents.runAgent({
      name: "agents/monetization",
      input: "Is our CAC healthy?",
      parameters: { customer_metrics: { monthly_revenue_per_customer_usd: 50, gross_margin: 0.8, monthly_churn_rate: 0.02, acquisition_spend_usd: 12000, new_customers: 40 } },
    });
    expect(res.provider).toBe("openai");
    expect(byMetric(res.output).cac.value).toBe(300);
    expect(res.toolCalls.map((c) => c.name)).toEqual(["kpi_calculator", "kpi_calculator", "kpi_calculator"]);
    expect(JSON.parse(res.toolCalls[0].arguments).calculations[0].spend).toBe(99999);
    const model = await v1.client(MonetizationModelService).getMonetizationModel({ name: res.records[0] });
    expect(model.unitEconomics?.cacUsd).toBe(300);
    expect(model.origin).toMatchObject({ agent: "agents/monetization", provider: "openai", model: "m" });
  });
});

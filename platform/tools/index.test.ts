import { toJsonSchema } from "@langchain/core/utils/json_schema";
import { describe, expect, it } from "vitest";
import * as tools from "./index.js";

describe("numericTools", () => {
  it("exports the six tools under the names the agent catalogs use", () => {
    expect(tools.numericTools.map((t) => t.name)).toEqual([
      "forecast_series",
      "attribution",
      "experiment_stats",
      "budget_allocation",
      "kpi_calculator",
      "plan_schedule",
    ]);
    for (const t of tools.numericTools) expect(t.description.length).toBeGreaterThan(50);
  });

  it("every tool schema converts to JSON Schema for the model", () => {
    for (const t of tools.numericTools) {
      const schema = toJsonSchema(t.schema) as { type?: string; properties?: Record<string, unknown> };
      expect(schema.type, t.name).toBe("object");
      expect(Object.keys(schema.properties ?? {}).length, t.name).toBeGreaterThan(0);
    }
  });

  it("every tool returns a JSON string", async () => {
    const inputs: Record<string, unknown> = {
      forecast_series: { series: [1, 2, 3, 4, 5], method: "holt", horizon: 2 },
      attribution: { journeys: [{ touchpoints: [{ channel: "a", timestamp: "2024-01-01T00:00:00Z" }], value: 5 }] },
      experiment_stats: { sampleSize: { baselineRate: 0.1, minimumDetectableEffect: 0.1 } },
      budget_allocation: { totalBudget: 10, channels: [{ name: "a", curve: { type: "power", a: 1, k: 0.5 } }] },
      kpi_calculator: { calculations: [{ metric: "roas", revenue: 10, adSpend: 4 }] },
      plan_schedule: { timelineWeeks: 4, phases: [{ phase: "prepare" }, { phase: "launch" }] },
    };
    for (const t of tools.numericTools) {
      const out = await (t as { invoke(i: unknown): Promise<unknown> }).invoke(inputs[t.name]);
      expect(typeof out, t.name).toBe("string");
      expect(() => JSON.parse(out as string), t.name).not.toThrow();
    }
  });

  it("exports the pure functions", () => {
    for (const name of [
      "forecastSeries",
      "attribute",
      "experimentStats",
      "twoProportionZTest",
      "sampleSizeTwoProportions",
      "normalCdf",
      "normalQuantile",
      "allocateBudget",
      "calculateKpis",
      "cac",
      "ltv",
      "ltvToCac",
      "paybackMonths",
      "roas",
      "roi",
      "conversionRate",
      "schedulePlan",
    ]) {
      expect(typeof (tools as Record<string, unknown>)[name], name).toBe("function");
    }
  });
});

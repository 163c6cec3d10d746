import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { alertNamed, alerts } from "./alerts.js";
import { prometheusExpr, prometheusRulesPath, renderPrometheusRules } from "./prometheus-rules.js";

describe("the alert definitions", () => {
  it("hold the seed's thresholds: CPU > 80%, memory > 85%, response time > 5 s, errors > 5%, storage < 2 GB free", () => {
    expect(alertNamed("HighCpu")).toMatchObject({ threshold: 80, unit: "percent", comparison: "above" });
    expect(alertNamed("HighMemory")).toMatchObject({ threshold: 85, unit: "percent", comparison: "above" });
    expect(alertNamed("SlowResponses")).toMatchObject({ threshold: 5, unit: "seconds", comparison: "above" });
    expect(alertNamed("HighErrorRate")).toMatchObject({ threshold: 5, unit: "percent", comparison: "above" });
    expect(alertNamed("LowStorage")).toMatchObject({ threshold: 2_000_000_000, unit: "bytes", comparison: "below" });
    expect(new Set(alerts.map((a) => a.name)).size).toBe(alerts.length);
  });

  it("roll a release back on response time and errors, not on load", () => {
    expect(alerts.filter((a) => a.rollback).map((a) => a.name).sort()).toEqual(["HighErrorRate", "SlowResponses"]);
  });
});

describe("the Prometheus rules", () => {
  it("are committed exactly as generated from the definitions (npm run generate:alerts)", () => {
    expect(readFileSync(prometheusRulesPath, "utf8")).toBe(renderPrometheusRules());
  });

  it("hold one rule per alert, comparing with the alert's own threshold for its own duration", () => {
    const doc = parse(readFileSync(prometheusRulesPath, "utf8")) as { groups: { name: string; rules: Record<string, any>[] }[] };
    expect(doc.groups).toHaveLength(1);
    const rules = doc.groups[0].rules;
    expect(rules.map((r) => r.alert)).toEqual(alerts.map((a) => a.name));
    for (const alert of alerts) {
      const rule = rules.find((r) => r.alert === alert.name)!;
      expect(rule.expr).toBe(prometheusExpr(alert));
      expect(rule.expr.endsWith(`${alert.comparison === "above" ? ">" : "<"} ${alert.threshold}`), alert.name).toBe(true);
      expect(rule.for).toBe(`${alert.forMinutes}m`);
      expect(rule.labels.severity).toBe(alert.severity);
      expect(rule.annotations.summary).toBe(alert.summary);
    }
  });

  it("follow a changed threshold (nothing else holds the number)", () => {
    const changed = { ...alertNamed("HighCpu"), threshold: 90 };
    expect(prometheusExpr(changed)).toMatch(/> 90$/);
  });
});

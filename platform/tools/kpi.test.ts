import { describe, expect, it } from "vitest";
import { cac, calculateKpis, conversionRate, kpiTool, ltv, ltvToCac, paybackMonths, roas, roi } from "./kpi.js";

describe("KPI arithmetic (hand-checked values)", () => {
  it("computes the basic ratios", () => {
    expect(cac({ spend: 50_000, newCustomers: 125 })).toBe(400);
    // 120 × 0.75 / 0.03 = 3000.
    expect(ltv({ arpu: 120, grossMargin: 0.75, churnRate: 0.03 })).toBeCloseTo(3000, 9);
    expect(ltvToCac({ ltv: 3000, cac: 400 })).toBe(7.5);
    // 400 / (120 × 0.75) = 4.444… months.
    expect(paybackMonths({ cac: 400, arpu: 120, grossMargin: 0.75 })).toBeCloseTo(40 / 9, 12);
    expect(roas({ revenue: 18_000, adSpend: 4_000 })).toBe(4.5);
    expect(roi({ gain: 13_000, cost: 10_000 })).toBeCloseTo(0.3, 15);
    expect(roi({ gain: 5_000, cost: 10_000 })).toBe(-0.5);
    expect(conversionRate({ conversions: 37, visitors: 1480 })).toBe(0.025);
  });

  it("discounted LTV equals the explicit sum of discounted margins (independent loop)", () => {
    // Margin m received at the start of each active period t = 0, 1, 2, …; survival (1 − c)^t; discount (1 + d)^−t.
    const explicit = (arpu: number, gm: number, c: number, d: number, periods: number) => {
      let sum = 0;
      let alive = 1;
      let disc = 1;
      for (let t = 0; t < periods; t++) {
        sum += arpu * gm * alive * disc;
        alive *= 1 - c;
        disc /= 1 + d;
      }
      return sum;
    };
    for (const [arpu, gm, c, d] of [
      [120, 0.75, 0.03, 0.01],
      [49, 0.8, 0.1, 0.0],
      [10, 0.6, 0.02, 0.05],
      [99, 0.9, 0, 0.01],
    ]) {
      const closed = ltv({ arpu, grossMargin: gm, churnRate: c, discountRate: d });
      expect(closed).toBeCloseTo(explicit(arpu, gm, c, d, 50_000), 6);
      for (const H of [1, 12, 36]) {
        expect(ltv({ arpu, grossMargin: gm, churnRate: c, discountRate: d, horizonPeriods: H })).toBeCloseTo(explicit(arpu, gm, c, d, H), 9);
      }
    }
    // Closed form m(1 + d)/(c + d): 90 × 1.01 / 0.04 = 2272.5.
    expect(ltv({ arpu: 120, grossMargin: 0.75, churnRate: 0.03, discountRate: 0.01 })).toBeCloseTo(2272.5, 9);
  });

  it("relates to Gupta & Lehmann's margin multiple r/(1 + i − r) by the stated timing factor", () => {
    // Gupta & Lehmann (2003): CLV = m · r / (1 + i − r) with the first margin one period out, after churn.
    // Ours pays the first margin immediately, so ours × r/(1 + i) = theirs.
    const m = 100;
    const r = 0.8;
    const i = 0.12;
    const ours = ltv({ arpu: m, grossMargin: 1, churnRate: 1 - r, discountRate: i });
    expect((ours * r) / (1 + i)).toBeCloseTo((m * r) / (1 + i - r), 10);
    // Margin multiple r/(1 + i − r) = 0.8 / 0.32 = 2.5.
    expect((ours * r) / (1 + i) / m).toBeCloseTo(2.5, 12);
  });

  it("finite-horizon LTV stays accurate with negligible churn and allows zero churn", () => {
    // Σ_{t<12} 100·(1 − 1e-12)^t = 1200 − 100·66·1e-12 (to first order).
    expect(ltv({ arpu: 100, grossMargin: 1, churnRate: 1e-12, horizonPeriods: 12 })).toBeCloseTo(1200 - 6.6e-9, 11);
    expect(ltv({ arpu: 100, grossMargin: 0.5, churnRate: 0, horizonPeriods: 24 })).toBe(1200);
    // A customer churning after one period is worth one margin.
    expect(ltv({ arpu: 100, grossMargin: 0.5, churnRate: 1, horizonPeriods: 24 })).toBeCloseTo(50, 12);
  });

  it("is monotone in the obvious directions", () => {
    const base = { arpu: 100, grossMargin: 0.7, churnRate: 0.05, discountRate: 0.01 };
    expect(ltv({ ...base, churnRate: 0.04 })).toBeGreaterThan(ltv(base));
    expect(ltv({ ...base, discountRate: 0.02 })).toBeLessThan(ltv(base));
    expect(ltv({ ...base, horizonPeriods: 24 })).toBeLessThan(ltv(base));
    expect(ltv({ ...base, arpu: 110 })).toBeGreaterThan(ltv(base));
  });
});

describe("KPI input errors", () => {
  it("reports division by zero naming the field", () => {
    expect(() => cac({ spend: 1000, newCustomers: 0 })).toThrow(/cac: invalid input: newCustomers: newCustomers must be > 0 \(CAC divides spend by new customers\)/);
    expect(() => ltv({ arpu: 100, grossMargin: 0.8, churnRate: 0 })).toThrow(/churnRate: must be > 0 \(LTV divides margin by churn/);
    expect(() => ltvToCac({ ltv: 100, cac: 0 })).toThrow(/cac: cac must be > 0/);
    expect(() => paybackMonths({ cac: 100, arpu: 0, grossMargin: 0.8 })).toThrow(/arpu: arpu must be > 0/);
    expect(() => paybackMonths({ cac: 100, arpu: 10, grossMargin: 0 })).toThrow(/grossMargin: must be > 0/);
    expect(() => roas({ revenue: 100, adSpend: 0 })).toThrow(/adSpend: adSpend must be > 0/);
    expect(() => roi({ gain: 100, cost: 0 })).toThrow(/cost: cost must be > 0/);
    expect(() => conversionRate({ conversions: 0, visitors: 0 })).toThrow(/visitors: visitors must be > 0/);
  });

  it("reports negative and out-of-range inputs naming the field", () => {
    expect(() => cac({ spend: -5, newCustomers: 3 })).toThrow(/spend: spend must be >= 0/);
    expect(() => ltv({ arpu: 100, grossMargin: 1.2, churnRate: 0.1 })).toThrow(/grossMargin: grossMargin must be between 0 and 1/);
    expect(() => ltv({ arpu: 100, grossMargin: 0.5, churnRate: 0.1, discountRate: -0.01 })).toThrow(/discountRate: discountRate must be >= 0/);
    expect(() => conversionRate({ conversions: 11, visitors: 10 })).toThrow(/conversions: must not exceed visitors/);
    expect(() => roas({ revenue: Number.NaN, adSpend: 1 })).toThrow(/revenue/);
  });

  it("calculateKpis anchors errors at the calculation index", () => {
    expect(() =>
      calculateKpis({
        calculations: [
          { metric: "roas", revenue: 10, adSpend: 2 },
          { metric: "cac", spend: 10, newCustomers: 0 },
        ],
      }),
    ).toThrow(/calculations\[1\]\.newCustomers: newCustomers must be > 0/);
    expect(() => calculateKpis({ calculations: [{ metric: "ltv", arpu: 1, grossMargin: 0.5, churnRate: 0 }] })).toThrow(
      /calculations\[0\] \(ltv\): churnRate: must be > 0/,
    );
    expect(() => calculateKpis({ calculations: [{ metric: "mrr" } as never] })).toThrow(/calculations\[0\]\.metric/);
    expect(() => calculateKpis({ calculations: [] })).toThrow(/calculations: give at least one calculation/);
  });
});

describe("kpi_calculator tool", () => {
  it("computes several metrics and returns JSON", async () => {
    expect(kpiTool.name).toBe("kpi_calculator");
    const out = await kpiTool.invoke({
      calculations: [
        { metric: "cac", spend: 50_000, newCustomers: 125 },
        { metric: "ltv", arpu: 120, grossMargin: 0.75, churnRate: 0.03 },
        { metric: "ltv_cac", ltv: 3000, cac: 400 },
        { metric: "payback_months", cac: 400, arpu: 120, grossMargin: 0.75 },
        { metric: "roas", revenue: 18_000, adSpend: 4_000 },
        { metric: "roi", gain: 13_000, cost: 10_000 },
        { metric: "conversion_rate", conversions: 37, visitors: 1480 },
      ],
    });
    const { results } = JSON.parse(out as string) as { results: { metric: string; value: number; formula: string }[] };
    expect(results.map((r) => r.metric)).toEqual(["cac", "ltv", "ltv_cac", "payback_months", "roas", "roi", "conversion_rate"]);
    expect(results.map((r) => r.value)).toEqual([400, expect.closeTo(3000, 9), 7.5, expect.closeTo(40 / 9, 12), 4.5, expect.closeTo(0.3, 15), 0.025]);
    expect(results[0].formula).toBe("spend / newCustomers");
  });

  it("rejects bad input with the field path", async () => {
    await expect(kpiTool.invoke({ calculations: [{ metric: "cac", spend: 10, newCustomers: 0 }] })).rejects.toThrow(/newCustomers/);
  });
});

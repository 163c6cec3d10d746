import { describe, expect, it } from "vitest";
import { schedulePlan, scheduleTool } from "./schedule.js";

describe("plan_schedule", () => {
  it("lays phases on the weeks by weight, contiguous and covering the timeline exactly", () => {
    // 12 weeks, weights 2:1:3:2 (sum 8): one week each, then the 8 weeks left shared 2:1:3:2 exactly.
    const r = schedulePlan({ timelineWeeks: 12, phases: [{ phase: "prepare", weight: 2 }, { phase: "launch", weight: 1 }, { phase: "optimise", weight: 3 }, { phase: "scale", weight: 2 }] });
    expect(r.phases.map((p) => [p.phase, p.startWeek, p.endWeek])).toEqual([
      ["prepare", 1, 3],
      ["launch", 4, 5],
      ["optimise", 6, 9],
      ["scale", 10, 12],
    ]);
    expect(r.launchWeek).toBe(4);
    expect(r.weeks.map((w) => w.week)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(r.weeks[4].phase).toBe("launch");
  });

  it("shares remainders by the largest remainder, ties to the earlier phase", () => {
    // 7 weeks, 3 equal phases: 1 each, 4 left -> 4/3 each = 1 + remainder 1/3; the first phase takes the extra week.
    const r = schedulePlan({ timelineWeeks: 7, phases: [{ phase: "a" }, { phase: "b" }, { phase: "c" }] });
    expect(r.phases.map((p) => p.weeks)).toEqual([3, 2, 2]);
    expect(r.launchWeek).toBe(0);
  });

  it("spreads the budget evenly over the weeks to the cent, and the phases add up", () => {
    // $1,000 over 3 weeks: 333.34 + 333.33 + 333.33.
    const r = schedulePlan({ timelineWeeks: 3, phases: [{ phase: "prepare", weight: 1 }, { phase: "launch", weight: 2 }], budget: 1000 });
    expect(r.weeks.map((w) => w.budget)).toEqual([333.34, 333.33, 333.33]);
    expect(r.phases.map((p) => p.budget)).toEqual([333.34, 666.66]);
    expect(r.phases.reduce((s, p) => s + p.budget, 0)).toBeCloseTo(1000, 10);
  });

  it("rejects what cannot be scheduled, naming the field", () => {
    expect(() => schedulePlan({ timelineWeeks: 1, phases: [{ phase: "a" }, { phase: "b" }] })).toThrow(/phases: 2 phases do not fit in 1 weeks/);
    expect(() => schedulePlan({ timelineWeeks: 4, phases: [{ phase: "a" }, { phase: "a" }] })).toThrow(/phases\[1\]\.phase: duplicates/);
    expect(() => schedulePlan({ timelineWeeks: 0, phases: [{ phase: "a" }] })).toThrow(/timelineWeeks/);
    expect(() => schedulePlan({ timelineWeeks: 4, phases: [{ phase: "a", weight: 0 }] })).toThrow(/weight must be > 0/);
  });

  it("is a LangChain tool answering JSON", async () => {
    const out = JSON.parse(await scheduleTool.invoke({ timelineWeeks: 2, phases: [{ phase: "launch" }], budget: 10 }));
    expect(out).toMatchObject({ launchWeek: 1, phases: [{ phase: "launch", startWeek: 1, endWeek: 2, budget: 10 }] });
  });
});

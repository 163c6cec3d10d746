import { describe, expect, it } from "vitest";
import { Target } from "../../../gen/raptorflow/v3/orchestrator_pb.js";
import { createKeywordRouter } from "../router.js";
import { evaluate, formatEvaluation, inProcessOrchestrator, partOf, readLabelled, selectPart } from "./route-eval.js";

// The labelled requests of the routing issue (a copy of ../shared/eval/routing-dev.jsonl), and our own,
// written before the router was evaluated on them (docs/routing.md).
const dev = readLabelled("eval/routing-dev.jsonl");
const ours = readLabelled("eval/routing-heldout.jsonl");
const explainer = inProcessOrchestrator();
const explain = (input: string) => explainer.explainRoute({ input });

describe("routing evaluation", () => {
  it("splits a labelled file into a tuning and a held-out part by a hash of each input, every request in exactly one", () => {
    const tune = selectPart(dev, "tune");
    const held = selectPart(dev, "held-out");
    expect(tune.length + held.length).toBe(dev.length);
    expect(held.length).toBeGreaterThan(dev.length / 3);
    expect(held.every((r) => partOf(r.input) === "held-out" && !tune.includes(r))).toBe(true);
    // The same input always falls in the same part.
    expect(partOf(dev[0].input)).toBe(partOf(`${dev[0].input}`));
  });

  it("routes at least 95% of the held-out part of the issue's labelled requests right, through ExplainRoute in process", async () => {
    const e = await evaluate(selectPart(dev, "held-out"), explain);
    expect(e.router).toBe("semantic-v1");
    expect(e.accuracy, formatEvaluation(e, "held-out", true)).toBeGreaterThanOrEqual(0.95);
  });

  it("routes at least 95% of our own labelled requests right", async () => {
    const e = await evaluate(ours, explain);
    expect(ours.length).toBeGreaterThanOrEqual(60);
    expect(e.accuracy, formatEvaluation(e, "ours", true)).toBeGreaterThanOrEqual(0.95);
  });

  it("reports accuracy, per-class precision and recall and the confusion matrix", async () => {
    // The old keyword router, for a report with misses in it.
    const keyword = inProcessOrchestrator({ router: createKeywordRouter });
    const e = await evaluate(dev, (input) => keyword.explainRoute({ input }));
    expect(e.router).toBe("keyword-v0");
    expect(e.confusion.flat().reduce((a, b) => a + b, 0)).toBe(dev.length);
    expect(e.correct + e.misses.length).toBe(dev.length);
    const hybrid = e.perClass.find((c) => c.target === Target.HYBRID)!;
    expect(hybrid.support).toBe(dev.filter((r) => r.target === Target.HYBRID).length);
    const report = formatEvaluation(e, "dev", true);
    expect(report).toContain(`accuracy ${e.correct}/${dev.length}`);
    expect(report).toMatch(/TARGET_HYBRID\s+\d+\.\d%\s+\d+\.\d%\s+\d+/);
    expect(report).toContain("confusion (rows: expected, columns: routed)");
    expect(report.split("misses:")[1]?.trim().split("\n")).toHaveLength(e.misses.length);
  });
});

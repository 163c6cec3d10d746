import { describe, expect, it } from "vitest";
import { createPriceTable } from "./prices.js";

describe("price table", () => {
  it("prices known models per million tokens, dated names by their family, and reports unpriced models", () => {
    const p = createPriceTable({});
    expect(p.cost("gpt-4o", 1_000_000, 1_000_000)).toBeCloseTo(12.5, 10);
    expect(p.cost("gpt-4o-mini-2024-07-18", 2_000_000, 0)).toBeCloseTo(0.3, 10);
    expect(p.cost("offline-fast-1", 500, 500)).toBe(0);
    expect(p.unpriced("mystery-model")).toBe(true);
    expect(p.cost("mystery-model", 1000, 1000)).toBe(0);
  });

  it("MODEL_PRICES adds and overrides prices; a malformed value fails naming the model", () => {
    const p = createPriceTable({ MODEL_PRICES: JSON.stringify({ "llama3": { input: 0, output: 0 }, "gpt-4o": { input: 1, output: 2 } }) });
    expect(p.unpriced("llama3")).toBe(false);
    expect(p.cost("gpt-4o", 1_000_000, 1_000_000)).toBeCloseTo(3, 10);
    expect(() => createPriceTable({ MODEL_PRICES: JSON.stringify({ x: { input: "a" } }) })).toThrow(/MODEL_PRICES\["x"\]/);
    expect(() => createPriceTable({ MODEL_PRICES: "{nope" })).toThrow(/MODEL_PRICES is not JSON/);
  });

  it("prices the Vertex AI and Bedrock default models, Flash-Lite apart from Flash", () => {
    const p = createPriceTable({});
    expect(p.cost("gemini-2.5-flash", 1_000_000, 1_000_000)).toBeCloseTo(2.8, 10);
    expect(p.cost("gemini-2.5-flash-lite", 1_000_000, 1_000_000)).toBeCloseTo(0.5, 10);
    expect(p.cost("gemini-2.5-pro", 1_000_000, 1_000_000)).toBeCloseTo(11.25, 10);
    expect(p.cost("global.anthropic.claude-haiku-4-5-20251001-v1:0", 1_000_000, 1_000_000)).toBeCloseTo(6, 10);
    expect(p.cost("global.anthropic.claude-sonnet-4-5-20250929-v1:0", 1_000_000, 1_000_000)).toBeCloseTo(18, 10);
  });
});

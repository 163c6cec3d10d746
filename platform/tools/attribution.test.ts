import { describe, expect, it } from "vitest";
import { apportion, attribute, attributionTool, touchWeights, type AttributionInput } from "./attribution.js";

const day = (d: number) => new Date(Date.UTC(2024, 0, 1) + d * 86_400_000).toISOString();

const byChannel = (rows: { channel: string; value: number }[]) => Object.fromEntries(rows.map((r) => [r.channel, r.value]));

// Seeded PRNG (mulberry32) so the property tests are deterministic.
function rng(seed: number) {
  let s = seed;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("attribution worked examples (computed by hand)", () => {
  // One journey: search (day 0) → social (day 7) → email (day 14), converting on day 14 for 100.00.
  const single: AttributionInput = {
    journeys: [
      {
        touchpoints: [
          { channel: "search", timestamp: day(0) },
          { channel: "social", timestamp: day(7) },
          { channel: "email", timestamp: day(14) },
        ],
        value: 100,
      },
    ],
  };

  it("first_touch, last_touch and position_based 40/20/40", () => {
    const r = attribute(single);
    expect(byChannel(r.models.first_touch!)).toEqual({ search: 100, social: 0, email: 0 });
    expect(byChannel(r.models.last_touch!)).toEqual({ search: 0, social: 0, email: 100 });
    expect(byChannel(r.models.position_based!)).toEqual({ search: 40, social: 20, email: 40 });
    expect(r.totals).toEqual({ conversions: 1, value: 100, valueUnits: 10000, valueDecimals: 2, convertingJourneys: 1 });
  });

  it("linear splits 10000 cents as 3334/3333/3333 (the tied remainder goes to the first channel)", () => {
    // Exact share 3333.33… cents each; floors sum to 9999; the one missing cent goes to the largest
    // remainder, and all three tie, so to the earliest channel.
    const r = attribute(single);
    expect(r.models.linear!.map((c) => c.valueUnits)).toEqual([3334, 3333, 3333]);
    expect(r.models.linear!.map((c) => c.conversions)).toEqual([0.333334, 0.333333, 0.333333]);
  });

  it("time_decay with the default 7-day half-life", () => {
    // Ages 14, 7, 0 days → weights 2^-2, 2^-1, 2^0 = 0.25, 0.5, 1 (sum 1.75) → exact shares
    // 14.2857…, 28.5714…, 57.1428… → cents 1428.57, 2857.14, 5714.29 → floors 1428 + 2857 + 5714 = 9999;
    // largest remainder (.571, search) gets the missing cent: 14.29, 28.57, 57.14.
    const r = attribute(single);
    expect(byChannel(r.models.time_decay!)).toEqual({ search: 14.29, social: 28.57, email: 57.14 });
  });

  it("time_decay with a 14-day half-life and an explicit conversion time", () => {
    // Converted on day 21: ages 21, 14, 7 → 2^-1.5, 2^-1, 2^-0.5 = 0.353553, 0.5, 0.707107
    // (sum 1.560660) → 22.6541%, 32.0377%, 45.3082% of 100.00 → 22.65, 32.04, 45.31 (sum 100.00).
    const r = attribute({
      ...single,
      journeys: [{ ...single.journeys[0], convertedAt: day(21) }],
      halfLifeDays: 14,
      models: ["time_decay"],
    });
    expect(byChannel(r.models.time_decay!)).toEqual({ search: 22.65, social: 32.04, email: 45.31 });
    expect(r.models.first_touch).toBeUndefined();
  });

  it("combines journeys, repeated channels, two-touch position_based and custom weights", () => {
    // J1: search → social → email, 100.00, 1 conversion (as above).
    // J2: email → search → email → email, 60.00, 2 conversions.
    // J3: social → search, 30.00, 1 conversion.
    const input: AttributionInput = {
      journeys: [
        single.journeys[0],
        {
          touchpoints: [
            { channel: "email", timestamp: day(1) },
            { channel: "search", timestamp: day(2) },
            { channel: "email", timestamp: day(3) },
            { channel: "email", timestamp: day(4) },
          ],
          value: 60,
          conversions: 2,
        },
        {
          touchpoints: [
            { channel: "social", timestamp: day(5) },
            { channel: "search", timestamp: day(6) },
          ],
          value: 30,
        },
      ],
    };
    const r = attribute(input);
    expect(r.totals.value).toBe(190);
    expect(r.totals.conversions).toBe(4);
    // first_touch: search 100 (J1), email 60 (J2), social 30 (J3).
    expect(byChannel(r.models.first_touch!)).toEqual({ search: 100, social: 30, email: 60 });
    // last_touch: email 100 + 60, search 30.
    expect(byChannel(r.models.last_touch!)).toEqual({ search: 30, social: 0, email: 160 });
    // linear: J1 33.33 each; J2 15 per touch → email 45, search 15; J3 15 each.
    // search 33.333… + 15 + 15 = 63.333…, social 33.333… + 15 = 48.333…, email 33.333… + 45 = 78.333…
    // → cents 6333.33, 4833.33, 7833.33: floors sum 18999, the cent goes to the tie-first (search).
    expect(byChannel(r.models.linear!)).toEqual({ search: 63.34, social: 48.33, email: 78.33 });
    expect(r.models.linear!.map((c) => c.conversions)).toEqual([
      // conversions: J1 1/3 each; J2 2 × 1/4 per touch → email 1.5, search 0.5; J3 0.5 each.
      1.333334, 0.833333, 1.833333,
    ]);
    // position_based 40/20/40: J1 40/20/40; J2 first email 24, middle search 6 and email 6, last email 24
    // → email 54, search 6; J3 has two touches → 50/50 → social 15, search 15.
    expect(byChannel(r.models.position_based!)).toEqual({ search: 61, social: 35, email: 94 });
    // Custom 30/30 (middle 40%): J1 30/40/30; J2 email 18 + 12 + 18 = 48, search 12; J3 50/50.
    const custom = attribute({ ...input, models: ["position_based"], positionWeights: { first: 0.3, last: 0.3 } });
    expect(byChannel(custom.models.position_based!)).toEqual({ search: 57, social: 55, email: 78 });
  });

  it("orders touches by timestamp, not by input order, and accepts epoch milliseconds", () => {
    const shuffled = attribute({
      journeys: [
        {
          touchpoints: [
            { channel: "email", timestamp: Date.parse(day(14)) },
            { channel: "search", timestamp: day(0) },
            { channel: "social", timestamp: day(7) },
          ],
          value: 100,
        },
      ],
    });
    expect(byChannel(shuffled.models.first_touch!)).toEqual({ search: 100, social: 0, email: 0 });
    expect(byChannel(shuffled.models.time_decay!)).toEqual({ search: 14.29, social: 28.57, email: 57.14 });
  });

  it("ignores non-converting journeys and supports zero-decimal currencies", () => {
    const r = attribute({
      journeys: [
        { touchpoints: [{ channel: "a", timestamp: day(0) }], conversions: 0, value: 0 },
        {
          touchpoints: [
            { channel: "b", timestamp: day(0) },
            { channel: "c", timestamp: day(1) },
            { channel: "d", timestamp: day(2) },
          ],
          value: 1000,
        },
      ],
      valueDecimals: 0,
      models: ["linear"],
    });
    expect(r.totals.convertingJourneys).toBe(1);
    expect(r.models.linear!.map((c) => c.value)).toEqual([0, 334, 333, 333]);
  });
});

describe("attribution properties", () => {
  const channels = ["search", "social", "email", "display", "affiliate", "direct"];
  const randomInput = (seed: number): AttributionInput => {
    const r = rng(seed);
    return {
      journeys: Array.from({ length: 60 }, () => {
        const n = 1 + Math.floor(r() * 6);
        const start = r() * 60;
        return {
          touchpoints: Array.from({ length: n }, () => ({
            channel: channels[Math.floor(r() * channels.length)],
            timestamp: day(start + r() * 30),
          })),
          conversions: Math.floor(r() * 3),
          value: Math.round(r() * 50_000) / 100,
          convertedAt: day(start + 31),
        };
      }),
      halfLifeDays: 1 + r() * 10,
    };
  };

  it("conserves conversions and value exactly for every model (integer units)", () => {
    for (let seed = 1; seed <= 25; seed++) {
      const input = randomInput(seed);
      const r = attribute(input);
      const totalUnits = input.journeys.reduce((s, j) => s + Math.round((j.value ?? 0) * 100), 0);
      expect(r.totals.valueUnits).toBe(totalUnits);
      for (const rows of Object.values(r.models)) {
        expect(rows.reduce((s, c) => s + c.valueUnits, 0)).toBe(totalUnits);
        expect(rows.reduce((s, c) => s + Math.round(c.conversions * 1e6), 0)).toBe(Math.round(r.totals.conversions * 1e6));
        for (const c of rows) {
          expect(c.value).toBeGreaterThanOrEqual(0);
          expect(c.conversions).toBeGreaterThanOrEqual(0);
        }
      }
    }
  });

  it("keeps each channel within one minor unit of its exact (unrounded) credit", () => {
    const input = randomInput(99);
    const r = attribute({ ...input, models: ["time_decay", "linear", "position_based"] });
    for (const model of ["time_decay", "linear", "position_based"] as const) {
      const exact = new Map<string, number>();
      for (const j of input.journeys) {
        const touches = [...j.touchpoints].sort((a, b) => Date.parse(a.timestamp as string) - Date.parse(b.timestamp as string));
        const w = touchWeights(
          model,
          touches.map((t) => Date.parse(t.timestamp as string)),
          Date.parse(j.convertedAt as string),
          input.halfLifeDays ?? 7,
          { first: 0.4, last: 0.4 },
        );
        touches.forEach((t, i) => exact.set(t.channel, (exact.get(t.channel) ?? 0) + w[i] * Math.round((j.value ?? 0) * 100)));
      }
      for (const c of r.models[model]!) expect(Math.abs(c.valueUnits - (exact.get(c.channel) ?? 0))).toBeLessThan(1);
    }
  });

  it("is symmetric under relabelling channels", () => {
    const input = randomInput(7);
    const rename = (c: string) => `x_${c.split("").reverse().join("")}`;
    const renamed: AttributionInput = {
      ...input,
      journeys: input.journeys.map((j) => ({ ...j, touchpoints: j.touchpoints.map((t) => ({ ...t, channel: rename(t.channel) })) })),
    };
    const a = attribute(input);
    const b = attribute(renamed);
    for (const model of Object.keys(a.models) as (keyof typeof a.models)[]) {
      expect(b.models[model]!.map((c) => c.valueUnits)).toEqual(a.models[model]!.map((c) => c.valueUnits));
      expect(b.models[model]!.map((c) => c.channel)).toEqual(a.models[model]!.map((c) => rename(c.channel)));
    }
  });

  it("time_decay weights increase toward the conversion and flatten toward linear as the half-life grows", () => {
    const times = [0, 2, 5, 9, 10].map((d) => d * 86_400_000);
    const conv = 10 * 86_400_000;
    const w = touchWeights("time_decay", times, conv, 3, { first: 0.4, last: 0.4 });
    for (let i = 1; i < w.length; i++) expect(w[i]).toBeGreaterThan(w[i - 1]);
    expect(w.reduce((s, x) => s + x, 0)).toBeCloseTo(1, 15);
    const spread = (hl: number) => {
      const x = touchWeights("time_decay", times, conv, hl, { first: 0.4, last: 0.4 });
      return Math.max(...x) - Math.min(...x);
    };
    expect(spread(30)).toBeLessThan(spread(3));
    expect(spread(1e9)).toBeLessThan(1e-8);
    // Very old touches do not underflow to 0/0.
    const old = touchWeights("time_decay", [0, 1], 1e13, 0.001, { first: 0.4, last: 0.4 });
    expect(old.every(Number.isFinite)).toBe(true);
  });

  it("apportion sums exactly and breaks ties deterministically", () => {
    expect(apportion(10, [1, 1, 1])).toEqual([4, 3, 3]);
    expect(apportion(7, [0, 2, 5])).toEqual([0, 2, 5]);
    expect(apportion(0, [0, 0])).toEqual([0, 0]);
    expect(() => apportion(5, [0, 0])).toThrow();
    const r = rng(3);
    for (let k = 0; k < 200; k++) {
      const shares = Array.from({ length: 1 + Math.floor(r() * 8) }, () => r());
      const total = Math.floor(r() * 1e9);
      expect(apportion(total, shares).reduce((s, x) => s + x, 0)).toBe(total);
    }
  });
});

describe("attribution validation and tool", () => {
  const ok = { touchpoints: [{ channel: "a", timestamp: day(0) }], value: 10 };

  it("names the offending field", () => {
    expect(() => attribute({ journeys: [ok, { touchpoints: [{ channel: "a", timestamp: "yesterday-ish" }] }] })).toThrow(
      /journeys\[1\]\.touchpoints\[0\]\.timestamp: is not a valid date-time/,
    );
    expect(() => attribute({ journeys: [{ ...ok, value: 10.005 }] })).toThrow(/journeys\[0\]\.value: has more than 2 decimal places/);
    expect(() => attribute({ journeys: [{ ...ok, value: -1 }] })).toThrow(/journeys\[0\]\.value: value must be >= 0/);
    expect(() => attribute({ journeys: [{ touchpoints: [] }] })).toThrow(/journeys\[0\]\.touchpoints: a journey needs at least one touchpoint/);
    expect(() => attribute({ journeys: [ok], positionWeights: { first: 0.7, last: 0.5 } })).toThrow(/positionWeights: first \+ last must not exceed 1/);
    expect(() => attribute({ journeys: [{ ...ok, convertedAt: day(-1) }] })).toThrow(
      /journeys\[0\]\.touchpoints\[0\]\.timestamp: is after the journey's convertedAt/,
    );
    expect(() => attribute({ journeys: [ok], halfLifeDays: 0 })).toThrow(/halfLifeDays/);
    expect(() => attribute({ journeys: [ok], models: ["markov" as never] })).toThrow(/models\[0\]/);
    expect(() => attribute({ journeys: [] })).toThrow(/journeys: give at least one journey/);
  });

  it("is exposed as attribution returning JSON", async () => {
    expect(attributionTool.name).toBe("attribution");
    const out = await attributionTool.invoke({ journeys: [ok], models: ["linear"] });
    const parsed = JSON.parse(out as string);
    expect(parsed.models.linear[0]).toMatchObject({ channel: "a", value: 10, conversions: 1 });
    await expect(attributionTool.invoke({ journeys: [{ touchpoints: [{ channel: "", timestamp: day(0) }] }] })).rejects.toThrow(
      /channel/,
    );
  });
});

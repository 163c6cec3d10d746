import { tool } from "@langchain/core/tools";
import { z } from "zod";
import { parseToolInput } from "./validate.js";

/** AttributionModel names a multi-touch attribution rule. */
export type AttributionModel = "first_touch" | "last_touch" | "linear" | "time_decay" | "position_based";

/** ATTRIBUTION_MODELS lists every model, in output order. */
export const ATTRIBUTION_MODELS: readonly AttributionModel[] = [
  "first_touch",
  "last_touch",
  "linear",
  "time_decay",
  "position_based",
];

const DAY_MS = 86_400_000;
const CONVERSION_DECIMALS = 6;

const timestamp = z
  .union([z.number(), z.string()])
  .describe("ISO-8601 date-time string, or milliseconds since the Unix epoch")
  .refine((t) => Number.isFinite(toMillis(t)), "is not a valid date-time (use ISO-8601 or epoch milliseconds)");

function toMillis(t: number | string): number {
  return typeof t === "number" ? t : Date.parse(t);
}

/** attributionInputSchema is the zod schema of the `attribution` tool input. */
export const attributionInputSchema = z
  .object({
    journeys: z
      .array(
        z.object({
          id: z.string().optional().describe("optional journey id for the caller's bookkeeping (not used in the computation)"),
          touchpoints: z
            .array(
              z.object({
                channel: z.string().min(1, "channel must be a non-empty string"),
                timestamp,
              }),
            )
            .min(1, "a journey needs at least one touchpoint")
            .describe("marketing touches; order does not matter, they are sorted by timestamp"),
          conversions: z
            .number()
            .int("conversions must be a whole number")
            .min(0, "conversions must be >= 0")
            .default(1)
            .describe("conversions at the end of this journey (default 1)"),
          value: z.number().min(0, "value must be >= 0").default(0).describe("conversion value (revenue) of this journey"),
          convertedAt: timestamp.optional().describe("conversion time; defaults to the last touchpoint's time"),
        }),
      )
      .min(1, "give at least one journey"),
    models: z
      .array(z.enum(["first_touch", "last_touch", "linear", "time_decay", "position_based"]))
      .min(1, "name at least one model")
      .optional()
      .describe("models to run; all five when omitted"),
    halfLifeDays: z
      .number()
      .gt(0, "halfLifeDays must be > 0")
      .default(7)
      .describe("time_decay: a touch this many days before conversion gets half the weight of one at conversion"),
    positionWeights: z
      .object({
        first: z.number().min(0, "must be between 0 and 1").max(1, "must be between 0 and 1"),
        last: z.number().min(0, "must be between 0 and 1").max(1, "must be between 0 and 1"),
      })
      .default({ first: 0.4, last: 0.4 })
      .describe("position_based: shares of the first and last touch; the rest is split over the middle touches"),
    valueDecimals: z
      .number()
      .int("valueDecimals must be a whole number")
      .min(0, "valueDecimals must be between 0 and 6")
      .max(6, "valueDecimals must be between 0 and 6")
      .default(2)
      .describe("decimal places of the currency (2 for cents); values are apportioned in these units"),
  })
  .superRefine((v, ctx) => {
    if (v.positionWeights.first + v.positionWeights.last > 1 + 1e-12) {
      ctx.addIssue({
        code: "custom",
        path: ["positionWeights"],
        message: "first + last must not exceed 1",
      });
    }
    const scale = 10 ** v.valueDecimals;
    let totalUnits = 0;
    let totalConv = 0;
    v.journeys.forEach((j, i) => {
      const units = j.value * scale;
      if (Math.abs(units - Math.round(units)) > Math.max(1e-6, 1e-15 * units)) {
        ctx.addIssue({
          code: "custom",
          path: ["journeys", i, "value"],
          message: `has more than ${v.valueDecimals} decimal places (set valueDecimals)`,
        });
      }
      totalUnits += Math.round(units);
      totalConv += j.conversions;
      if (j.convertedAt !== undefined) {
        const conv = toMillis(j.convertedAt);
        j.touchpoints.forEach((tp, k) => {
          if (toMillis(tp.timestamp) > conv) {
            ctx.addIssue({
              code: "custom",
              path: ["journeys", i, "touchpoints", k, "timestamp"],
              message: "is after the journey's convertedAt",
            });
          }
        });
      }
    });
    if (totalUnits > Number.MAX_SAFE_INTEGER) {
      ctx.addIssue({ code: "custom", path: ["journeys"], message: "total value is too large to apportion exactly" });
    }
    if (totalConv * 10 ** CONVERSION_DECIMALS > Number.MAX_SAFE_INTEGER) {
      ctx.addIssue({ code: "custom", path: ["journeys"], message: "total conversions are too large to apportion exactly" });
    }
  });

/** AttributionInput is the input of {@link attribute} (before defaults). */
export type AttributionInput = z.input<typeof attributionInputSchema>;

/** ChannelCredit is one channel's attributed share under one model. */
export interface ChannelCredit {
  readonly channel: string;
  /** conversions is the fractional conversion credit, to 6 decimals. */
  readonly conversions: number;
  /** value is the attributed value, to `valueDecimals` decimals. */
  readonly value: number;
  /** valueUnits is `value` in integer minor units (e.g. cents); these sum exactly to the total. */
  readonly valueUnits: number;
  /** conversionShare is conversions / total conversions (null when there are none). */
  readonly conversionShare: number | null;
  /** valueShare is value / total value (null when the total is 0). */
  readonly valueShare: number | null;
}

/** AttributionResult is the output of {@link attribute}. */
export interface AttributionResult {
  readonly totals: {
    readonly conversions: number;
    readonly value: number;
    readonly valueUnits: number;
    readonly valueDecimals: number;
    readonly convertingJourneys: number;
  };
  /** models maps each requested model to per-channel credit, channels in order of first appearance. */
  readonly models: Partial<Record<AttributionModel, ChannelCredit[]>>;
  readonly notes: string[];
}

/**
 * touchWeights returns the credit fractions (summing to 1) of the touches of
 * one journey, given in time order, under `model`:
 *
 *  - first_touch / last_touch: all credit to the first / last touch;
 *  - linear: 1/n each;
 *  - time_decay: proportional to 2^(−Δ/halfLife), Δ = days from the touch to the conversion;
 *  - position_based: `first` to the first touch, `last` to the last, the rest
 *    split evenly over the middle touches; with 2 touches the two shares are
 *    rescaled to sum to 1 (first/(first+last), last/(first+last)); 1 touch gets all.
 */
export function touchWeights(
  model: AttributionModel,
  touchTimesMs: readonly number[],
  conversionTimeMs: number,
  halfLifeDays: number,
  positionWeights: { first: number; last: number },
): number[] {
  const n = touchTimesMs.length;
  const w = new Array<number>(n).fill(0);
  if (n === 1) {
    w[0] = 1;
    return w;
  }
  switch (model) {
    case "first_touch":
      w[0] = 1;
      return w;
    case "last_touch":
      w[n - 1] = 1;
      return w;
    case "linear":
      return w.fill(1 / n);
    case "time_decay": {
      // Exponents relative to the most recent touch avoid underflow to 0/0.
      const ages = touchTimesMs.map((t) => (conversionTimeMs - t) / DAY_MS);
      const youngest = Math.min(...ages);
      const raw = ages.map((a) => 2 ** (-(a - youngest) / halfLifeDays));
      const sum = raw.reduce((s, x) => s + x, 0);
      return raw.map((x) => x / sum);
    }
    case "position_based": {
      const { first, last } = positionWeights;
      if (n === 2) {
        const s = first + last;
        w[0] = s > 0 ? first / s : 0.5;
        w[1] = s > 0 ? last / s : 0.5;
        return w;
      }
      const middle = (1 - first - last) / (n - 2);
      w.fill(middle);
      w[0] = first;
      w[n - 1] = last;
      return w;
    }
  }
}

/**
 * apportion splits the integer `total` into integers proportional to the
 * non-negative `shares` by the largest-remainder (Hamilton) method: each part
 * gets ⌊exact⌋, and the units still missing go to the largest fractional
 * remainders (equal to 1e-9, ties go to the earlier index). The parts sum to
 * `total` exactly.
 */
export function apportion(total: number, shares: readonly number[]): number[] {
  const sum = shares.reduce((s, x) => s + x, 0);
  if (shares.length === 0) return [];
  if (!(sum > 0)) {
    if (total === 0) return shares.map(() => 0);
    throw new Error("apportion: cannot split a non-zero total over zero shares");
  }
  const exact = shares.map((s) => (s / sum) * total);
  const parts = exact.map((x) => Math.floor(x));
  let missing = total - parts.reduce((s, x) => s + x, 0);
  // Remainders are compared at 1e-9 resolution so that float noise cannot
  // break what is mathematically a tie; true ties go to the earlier index.
  const order = exact
    .map((x, i) => ({ i, r: Math.round((x - Math.floor(x)) * 1e9) }))
    .sort((a, b) => b.r - a.r || a.i - b.i);
  // missing is in [0, n) up to float noise; loop defensively either way.
  for (let k = 0; missing > 0; k = (k + 1) % order.length) {
    parts[order[k].i] += 1;
    missing -= 1;
  }
  for (let k = order.length - 1; missing < 0; k = (k - 1 + order.length) % order.length) {
    if (parts[order[k].i] > 0) {
      parts[order[k].i] -= 1;
      missing += 1;
    }
  }
  return parts;
}

/**
 * attribute credits conversions and their value to marketing channels under
 * one or more multi-touch models (see {@link touchWeights}). Credit is
 * computed exactly per journey, summed per channel, and the grand totals are
 * then apportioned in integer units (value in 10^-valueDecimals currency
 * units, conversions in millionths) by the largest-remainder method, so each
 * model's channel values sum to the total value exactly (in `valueUnits`) and
 * channel conversions to the total conversions; each channel is within one
 * unit of its exact share. Journeys with neither conversions nor value carry
 * no credit.
 */
export function attribute(input: AttributionInput): AttributionResult {
  const v = parseToolInput(attributionInputSchema, input, "attribution");
  const models = v.models ?? [...ATTRIBUTION_MODELS];
  const valueScale = 10 ** v.valueDecimals;
  const convScale = 10 ** CONVERSION_DECIMALS;
  const channels: string[] = [];
  const channelIndex = new Map<string, number>();
  for (const j of v.journeys) {
    for (const tp of j.touchpoints) {
      if (!channelIndex.has(tp.channel)) {
        channelIndex.set(tp.channel, channels.length);
        channels.push(tp.channel);
      }
    }
  }
  const prepared = v.journeys
    .map((j) => {
      const touches = j.touchpoints
        .map((tp, k) => ({ c: channelIndex.get(tp.channel) as number, t: toMillis(tp.timestamp), k }))
        .sort((a, b) => a.t - b.t || a.k - b.k);
      const conv = j.convertedAt !== undefined ? toMillis(j.convertedAt) : touches[touches.length - 1].t;
      return { touches, conv, valueUnits: Math.round(j.value * valueScale), convUnits: j.conversions * convScale };
    })
    .filter((j) => j.valueUnits > 0 || j.convUnits > 0);
  const totalValueUnits = prepared.reduce((s, j) => s + j.valueUnits, 0);
  const totalConvUnits = prepared.reduce((s, j) => s + j.convUnits, 0);
  const totalConversions = totalConvUnits / convScale;
  const totalValue = totalValueUnits / valueScale;

  const result: Partial<Record<AttributionModel, ChannelCredit[]>> = {};
  for (const model of models) {
    const valueRaw = new Array<number>(channels.length).fill(0);
    const convRaw = new Array<number>(channels.length).fill(0);
    for (const j of prepared) {
      const w = touchWeights(
        model,
        j.touches.map((x) => x.t),
        j.conv,
        v.halfLifeDays,
        v.positionWeights,
      );
      j.touches.forEach((x, i) => {
        valueRaw[x.c] += w[i] * j.valueUnits;
        convRaw[x.c] += w[i] * j.convUnits;
      });
    }
    const valueUnits = totalValueUnits > 0 ? apportion(totalValueUnits, valueRaw) : valueRaw.map(() => 0);
    const convUnits = totalConvUnits > 0 ? apportion(totalConvUnits, convRaw) : convRaw.map(() => 0);
    result[model] = channels.map((channel, c) => ({
      channel,
      conversions: convUnits[c] / convScale,
      value: valueUnits[c] / valueScale,
      valueUnits: valueUnits[c],
      conversionShare: totalConvUnits > 0 ? convUnits[c] / totalConvUnits : null,
      valueShare: totalValueUnits > 0 ? valueUnits[c] / totalValueUnits : null,
    }));
  }
  const notes = [
    `Values are in units of 10^-${v.valueDecimals}; valueUnits sum exactly to totals.valueUnits for every model (largest-remainder rounding).`,
    "Touchpoints are ordered by timestamp; time_decay measures age from convertedAt (or the last touch).",
  ];
  return {
    totals: {
      conversions: totalConversions,
      value: totalValue,
      valueUnits: totalValueUnits,
      valueDecimals: v.valueDecimals,
      convertingJourneys: prepared.length,
    },
    models: result,
    notes,
  };
}

/**
 * attributionTool is the LangChain tool `attribution`: it runs
 * {@link attribute} and returns the result as a JSON string.
 */
export const attributionTool = tool(async (input) => JSON.stringify(attribute(input)), {
  name: "attribution",
  description:
    "Deterministic multi-touch attribution. Give converting journeys (touchpoints with channel and timestamp, " +
    "conversions, value). Credits conversions and value to channels under first_touch, last_touch, linear, " +
    "time_decay (halfLifeDays, default 7) and position_based (default 40/20/40). Channel totals add up exactly " +
    "to the input totals. Returns JSON. Use this instead of apportioning credit yourself.",
  schema: attributionInputSchema,
});

import { setTimeout as sleep } from "node:timers/promises";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import type { JsonSchema } from "./json-schema.js";
import type { LlmChunk, LlmRequest, LlmResponse } from "./llm-provider.js";
import { countTokens, createOfflineProvider } from "./offline-provider.js";
import { providerFromEnv } from "./provider-from-env.js";

const request = (input: string, extra: Partial<LlmRequest> = {}): LlmRequest => ({
  system: "# Market Intel\n\nYou brief the campaign team.",
  prompt: `## Request\n${input}\n\n## Inputs\n{}\n\n## Shared context\n(none yet)`,
  tier: "fast",
  outputKeys: ["segments", "demand_drivers", "risks"],
  ...extra,
});

/** collect drains a stream into its deltas and its final response. */
async function collect(stream: AsyncIterable<LlmChunk>): Promise<{ chunks: LlmChunk[]; deltas: string[]; done: LlmResponse | undefined }> {
  const chunks: LlmChunk[] = [];
  for await (const c of stream) chunks.push(c);
  const deltas = chunks.flatMap((c) => ("delta" in c ? [c.delta] : []));
  const last = chunks.at(-1);
  return { chunks, deltas, done: last && "done" in last ? last.done : undefined };
}

describe("createOfflineProvider", () => {
  const provider = createOfflineProvider();

  it("is named offline and maps each tier to its own model", () => {
    expect(provider.name).toBe("offline");
    expect(provider.model("fast")).not.toBe(provider.model("capable"));
  });

  it("is deterministic: the same request gives the same answer", async () => {
    const req = request("Brief me on the electric bike market in Berlin");
    const a = await provider.complete(req);
    const b = await createOfflineProvider().complete({ ...req });
    expect(b).toEqual(a);
  });

  it("answers a JSON object with exactly the requested keys, each value starting with [offline]", async () => {
    const req = request("Brief me on the electric bike market in Berlin");
    const res = await provider.complete(req);
    const obj = JSON.parse(res.text) as Record<string, unknown>;
    expect(Object.keys(obj)).toEqual(["segments", "demand_drivers", "risks"]);
    for (const v of Object.values(obj)) {
      expect(typeof v).toBe("string");
      expect(v as string).toMatch(/^\[offline\]/);
    }
  });

  it("fills the answer from the request's own words", async () => {
    const res = await provider.complete(request("Brief me on the electric bike market in Berlin"));
    expect(res.text).toMatch(/electric|bike|market|berlin|brief/);
  });

  it("answers different requests differently", async () => {
    const a = await provider.complete(request("Brief me on the electric bike market in Berlin"));
    const b = await provider.complete(request("Plan a Black Friday email push for sneakers"));
    expect(a.text).not.toBe(b.text);
  });

  it("reports the model of the requested tier", async () => {
    const fast = await provider.complete(request("launch plan", { tier: "fast" }));
    const capable = await provider.complete(request("launch plan", { tier: "capable" }));
    expect(fast.model).toBe(provider.model("fast"));
    expect(capable.model).toBe(provider.model("capable"));
  });

  it("counts positive input and output tokens", async () => {
    const req = request("Brief me on the electric bike market in Berlin");
    const res = await provider.complete(req);
    expect(res.usage.inputTokens).toBeGreaterThan(0);
    expect(res.usage.outputTokens).toBeGreaterThan(0);
    expect(res.usage.inputTokens).toBe(countTokens(req.system) + countTokens(req.prompt));
    expect(res.usage.outputTokens).toBe(countTokens(res.text));
  });

  it("streams deltas whose concatenation is the final text, ending with done", async () => {
    const req = request("Write a month of LinkedIn content for our consultancy about cloud migrations", {
      outputKeys: ["calendar", "posts", "hashtags", "approval_notes", "measurement_plan"],
    });
    const { chunks, deltas, done } = await collect(provider.stream(req));
    expect(deltas.length).toBeGreaterThan(1);
    expect(chunks.slice(0, -1).every((c) => "delta" in c)).toBe(true);
    expect(done).toBeDefined();
    expect(deltas.join("")).toBe(done!.text);
    expect(done).toEqual(await provider.complete(req));
  });

  it("with latencyMs, does not answer before the delay and rejects when aborted", async () => {
    const slow = createOfflineProvider({ latencyMs: 60_000 });
    const controller = new AbortController();
    let settled = false;
    const pending = slow.complete(request("slow answer", { signal: controller.signal })).finally(() => {
      settled = true;
    });
    pending.catch(() => {});
    await sleep(50);
    expect(settled).toBe(false);
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: "AbortError" });
  });

  it("with latencyMs, a stream yields nothing before the delay and rejects when aborted", async () => {
    const slow = createOfflineProvider({ latencyMs: 60_000 });
    const controller = new AbortController();
    const it = slow.stream(request("slow stream", { signal: controller.signal }))[Symbol.asyncIterator]();
    let settled = false;
    const first = it.next().finally(() => {
      settled = true;
    });
    first.catch(() => {});
    await sleep(50);
    expect(settled).toBe(false);
    controller.abort();
    await expect(first).rejects.toMatchObject({ name: "AbortError" });
  });

  it("with a short latencyMs, answers after the delay", async () => {
    const slow = createOfflineProvider({ latencyMs: 30 });
    const started = performance.now();
    const res = await slow.complete(request("eventually"));
    expect(performance.now() - started).toBeGreaterThanOrEqual(20);
    expect(JSON.parse(res.text)).toHaveProperty("segments");
  });

  it("rejects a call whose signal is already aborted", async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(provider.complete(request("too late", { signal: controller.signal }))).rejects.toMatchObject({ name: "AbortError" });
    await expect(collect(provider.stream(request("too late", { signal: controller.signal })))).rejects.toMatchObject({ name: "AbortError" });
  });
});

describe("the offline provider with an output schema", () => {
  const provider = createOfflineProvider();
  const schema: JsonSchema = {
    type: "object",
    properties: {
      label: { type: "string", description: "A short label.", maxLength: 20 },
      code: { type: "string", description: "A padded code.", minLength: 80 },
      tags: { type: "array", description: "Exactly 50 tags.", minItems: 50, maxItems: 50, items: { type: "string", maxLength: 100 } },
      none: { type: "array", description: "No items allowed.", maxItems: 0, items: { type: "string" } },
      segments: {
        type: "array",
        description: "Segments.",
        items: {
          type: "object",
          properties: {
            size: { type: "integer", description: "People.", minimum: 1.5 },
            share: { type: "number", description: "A fraction.", minimum: 0, maximum: 1 },
            rank: { type: "integer", description: "Rank.", minimum: 1, maximum: 9.5 },
            free: { type: "number", description: "Unbounded." },
            level: { type: "string", description: "Level.", enum: ["high", "low"] },
            ok: { type: "boolean", description: "Passes." },
          },
          required: ["size", "share", "rank", "free", "level", "ok"],
          additionalProperties: false,
        },
      },
    },
    required: ["label", "code", "tags", "none", "segments"],
    additionalProperties: false,
  };
  const req = request("Tag the trail runners of our Berlin shoe shop", { outputKeys: ["label", "code", "tags", "none", "segments"], outputSchema: schema });

  it("answers a value that conforms to the schema", async () => {
    const answer = JSON.parse((await provider.complete(req)).text);
    const validate = new Ajv({ allErrors: true, strict: true }).compile(schema);
    expect(validate(answer), JSON.stringify(validate.errors)).toBe(true);
  });

  it("fills every kind of node deterministically: strings within their lengths, the first enum member, bounded numbers, true, arrays of their least non-zero length", async () => {
    const answer = JSON.parse((await provider.complete(req)).text);
    expect(Object.keys(answer)).toEqual(["label", "code", "tags", "none", "segments"]);
    expect(answer.label).toMatch(/^\[offline\] label/);
    expect(answer.label.length).toBeLessThanOrEqual(20);
    expect(answer.code).toHaveLength(80);
    expect(answer.tags).toHaveLength(50);
    expect(new Set(answer.tags).size).toBe(50);
    expect(answer.tags[2]).toMatch(/^\[offline\] tags 3 focused on /);
    expect(answer.none).toEqual([]);
    expect(answer.segments).toEqual([{ size: 2, share: 1, rank: 9, free: 0, level: "high", ok: true }]);
    expect(await provider.complete(req)).toEqual(await createOfflineProvider().complete(req));
  });

  it("keeps its words from the request in schema strings", async () => {
    const answer = JSON.parse((await provider.complete(req)).text);
    expect(answer.tags.join(" ")).toMatch(/trail|runners|berlin|shoe|shop/);
  });
});

describe("providerFromEnv", () => {
  it("picks the offline provider by default", async () => {
    const p = providerFromEnv({});
    expect(p.name).toBe("offline");
    const res = await p.complete(request("default provider"));
    expect(JSON.parse(res.text)).toHaveProperty("risks");
  });

  it("picks the offline provider when named", () => {
    expect(providerFromEnv({ LLM_PROVIDER: "offline" }).name).toBe("offline");
  });

  it("accepts a whole OFFLINE_LLM_LATENCY_MS", () => {
    expect(providerFromEnv({ OFFLINE_LLM_LATENCY_MS: "5" }).name).toBe("offline");
  });

  it("rejects an unknown LLM_PROVIDER, naming the variable and the value", () => {
    expect(() => providerFromEnv({ LLM_PROVIDER: "nope" })).toThrow(/LLM_PROVIDER="nope".*supported: offline/);
  });

  it.each(["abc", "-1", "1.5", " 5 ", "1e3", "0x10"])("rejects OFFLINE_LLM_LATENCY_MS=%j, naming the variable", (raw) => {
    expect(() => providerFromEnv({ OFFLINE_LLM_LATENCY_MS: raw })).toThrow(
      `OFFLINE_LLM_LATENCY_MS must be a whole number of milliseconds, got "${raw}"`,
    );
  });
});

import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { keysSchema, type JsonSchema } from "../llm/json-schema.js";
import type { LlmChunk, LlmProvider, LlmRequest, LlmResponse, ModelTierName } from "../llm/llm-provider.js";
import { buildPrompt, parseOutput, runAgent, type AgentCall } from "./agent-runtime.js";
import type { AgentDefinition } from "./catalog.js";
import { maxProblems } from "./schema-validator.js";

const agent: AgentDefinition = {
  id: "ad_variants",
  system: "v2",
  displayName: "Ad Variants",
  department: "creative",
  description: "Writes ad variants.",
  modelTier: "fast",
  promptVersion: "2026-01-01.1",
  tools: [],
  inputs: ["platform", "offer"],
  outputs: ["variants", "testing_matrix"],
  // The schemas a catalog entry without its own stands for: the keys, each of any value.
  inputSchema: keysSchema(["platform", "offer"], "input"),
  outputSchema: keysSchema(["variants", "testing_matrix"], "output"),
  examples: [],
  systemPrompt: "# Ad Variants\n\nReturn `variants` and `testing_matrix`.",
};

/** segmentsOutput is a typed output schema in the strict subset, as a catalog's. */
const segmentsOutput: JsonSchema = {
  type: "object",
  properties: {
    segments: {
      type: "array",
      description: "Segments, largest first.",
      minItems: 1,
      maxItems: 3,
      items: {
        type: "object",
        properties: {
          name: { type: "string", description: "The segment's name.", maxLength: 40 },
          size: { type: "integer", description: "People in it.", minimum: 0 },
          priority: { type: "string", description: "How much it matters.", enum: ["high", "low"] },
        },
        required: ["name", "size", "priority"],
        additionalProperties: false,
      },
    },
    summary: { type: "string", description: "One sentence." },
  },
  required: ["segments", "summary"],
  additionalProperties: false,
};

/** typed is an agent with typed input and output schemas. */
const typed: AgentDefinition = {
  ...agent,
  id: "market_intel",
  inputs: ["budget", "channels"],
  outputs: ["segments", "summary"],
  inputSchema: {
    type: "object",
    properties: {
      budget: { type: "number", description: "Budget in US dollars.", minimum: 0 },
      channels: { type: "array", description: "Channels.", items: { type: "string" } },
    },
    required: [],
    additionalProperties: true,
  },
  outputSchema: segmentsOutput,
  systemPrompt: "# Market Intel\n\nReturn `segments` and `summary`.",
};

const typedGood = JSON.stringify({ segments: [{ name: "commuters", size: 1200, priority: "high" }], summary: "Commuters lead." });

const call: AgentCall = {
  input: "Write three LinkedIn ads for our bike launch",
  parameters: { platform: "linkedin", offer: "10% off" },
  context: { market_intel: { segments: ["commuters"] } },
};

/** Scripted is one answer the fake model gives. */
interface Scripted {
  readonly text: string;
  readonly inputTokens: number;
  readonly outputTokens: number;
}

/**
 * fakeProvider answers `complete` with the scripted texts in order and
 * records every request it received; it fails the test when asked more
 * often than scripted.
 */
function fakeProvider(script: Scripted[]): LlmProvider & { requests: LlmRequest[] } {
  const requests: LlmRequest[] = [];
  const models: Record<ModelTierName, string> = { fast: "fake-fast", capable: "fake-capable" };
  const next = (req: LlmRequest): LlmResponse => {
    requests.push(req);
    const s = script[requests.length - 1];
    if (!s) throw new Error(`fake provider called ${requests.length} times, scripted ${script.length}`);
    return { text: s.text, model: `${models[req.tier]}#${requests.length}`, usage: { inputTokens: s.inputTokens, outputTokens: s.outputTokens } };
  };
  return {
    name: "fake",
    requests,
    model: (tier) => models[tier],
    complete: async (req) => next(req),
    async *stream(req): AsyncIterable<LlmChunk> {
      const res = next(req);
      yield { delta: res.text };
      yield { done: res };
    },
  };
}

const good = JSON.stringify({ variants: ["A", "B"], testing_matrix: { A: "price" } });

describe("buildPrompt", () => {
  it("has the request, the inputs, the shared context and the output keys in their sections", () => {
    const prompt = buildPrompt(agent, call);
    expect(prompt).toContain(`## Request\n<user_request>\n${call.input}\n</user_request>`);
    expect(prompt).toContain(`## Inputs\n<inputs>\n${JSON.stringify(call.parameters)}\n</inputs>`);
    expect(prompt).toContain(`## Shared context\n<shared_context>\n${JSON.stringify(call.context)}\n</shared_context>`);
    expect(prompt).toContain("variants, testing_matrix");
    expect(prompt.indexOf("## Request")).toBeLessThan(prompt.indexOf("## Inputs"));
    expect(prompt.indexOf("## Inputs")).toBeLessThan(prompt.indexOf("## Shared context"));
  });

  it("shows the output JSON Schema, compact, so a model knows the shape", () => {
    const prompt = buildPrompt(typed, call);
    const output = prompt.slice(prompt.indexOf("## Output"));
    expect(output).toContain("segments, summary");
    expect(output).toContain(JSON.stringify(segmentsOutput));
  });

  it("says there is no shared context yet when the context is empty", () => {
    const prompt = buildPrompt(agent, { ...call, context: {} });
    expect(prompt).toContain("## Shared context\n<shared_context>\n(none yet)\n</shared_context>");
  });
});

describe("parseOutput", () => {
  it("accepts a JSON object with the keys and keeps only the agent's keys", () => {
    const r = parseOutput(agent, JSON.stringify({ variants: [1], testing_matrix: "m", extra: true }));
    expect(r).toEqual({ output: { variants: [1], testing_matrix: "m" } });
  });

  it("accepts an object wrapped in prose", () => {
    const r = parseOutput(agent, `Sure! Here is the answer:\n${good}\nLet me know if you need more.`);
    expect(r).toEqual({ output: { variants: ["A", "B"], testing_matrix: { A: "price" } } });
  });

  it("accepts an object in a ```json fence", () => {
    const r = parseOutput(agent, "```json\n" + good + "\n```");
    expect(r).toEqual({ output: { variants: ["A", "B"], testing_matrix: { A: "price" } } });
  });

  it("accepts keys whose value is null or falsy", () => {
    const r = parseOutput(agent, JSON.stringify({ variants: null, testing_matrix: 0 }));
    expect(r).toEqual({ output: { variants: null, testing_matrix: 0 } });
  });

  it("reports every missing key", () => {
    expect(parseOutput(agent, "{}")).toEqual({ problems: ['missing key "variants"', 'missing key "testing_matrix"'] });
    expect(parseOutput(agent, JSON.stringify({ variants: [] }))).toEqual({ problems: ['missing key "testing_matrix"'] });
  });

  it("reports an answer that is not JSON", () => {
    const r = parseOutput(agent, "I cannot help with that.");
    expect("problems" in r && r.problems).toHaveLength(1);
    expect("problems" in r && r.problems[0]).toMatch(/not valid JSON/);
  });

  it("reports broken JSON inside braces", () => {
    const r = parseOutput(agent, "{ variants: [A] }");
    expect("problems" in r && r.problems[0]).toMatch(/not valid JSON/);
  });

  it("reports JSON that is not an object", () => {
    expect(parseOutput(agent, "[1, 2]")).toEqual({ problems: ["the answer must be a JSON object"] });
    expect(parseOutput(agent, "42")).toEqual({ problems: ["the answer must be a JSON object"] });
  });
});

describe("parseOutput against a typed output schema", () => {
  it("accepts an answer that satisfies the schema", () => {
    expect(parseOutput(typed, typedGood)).toEqual({ output: JSON.parse(typedGood) });
  });

  it("names the JSON pointer and what is wrong", () => {
    const r = parseOutput(typed, JSON.stringify({ segments: [{ name: "commuters", size: "1.2k", priority: "high" }], summary: "x" }));
    expect(r).toEqual({ problems: ["/segments/0/size: must be integer"] });
  });

  it("names a missing key, a missing nested property, an extra nested property and a value outside the enum", () => {
    const r = parseOutput(typed, JSON.stringify({ segments: [{ name: "a", priority: "urgent", colour: "red" }] }));
    expect("problems" in r && r.problems).toEqual(
      expect.arrayContaining([
        'missing key "summary"',
        '/segments/0: missing property "size"',
        '/segments/0: has the property "colour", which is not allowed',
        '/segments/0/priority: must be one of "high", "low"',
      ]),
    );
  });

  it("names broken array and string bounds", () => {
    const r = parseOutput(typed, JSON.stringify({ segments: [], summary: "x" }));
    expect(r).toEqual({ problems: ["/segments: must NOT have fewer than 1 items"] });
    const long = parseOutput(typed, JSON.stringify({ segments: [{ name: "n".repeat(41), size: 1, priority: "low" }], summary: "x" }));
    expect(long).toEqual({ problems: ["/segments/0/name: must NOT have more than 40 characters"] });
  });

  it(`shows at most ${maxProblems} problems and counts the rest`, () => {
    const bad = Array.from({ length: 3 }, () => ({ name: 1, size: "x", priority: 2 }));
    const wide: AgentDefinition = { ...typed, outputSchema: { ...segmentsOutput, properties: { ...segmentsOutput.properties, segments: { ...segmentsOutput.properties!.segments, maxItems: 20 } } } };
    const r = parseOutput(wide, JSON.stringify({ segments: [...bad, ...bad, ...bad], summary: 3 }));
    expect("problems" in r && r.problems).toHaveLength(maxProblems + 1);
    expect("problems" in r && r.problems.at(-1)).toMatch(/^… and \d+ more problems$/);
  });

  it("drops keys other than the agent's before validating, as before", () => {
    const r = parseOutput(typed, JSON.stringify({ ...JSON.parse(typedGood), notes: "extra" }));
    expect(r).toEqual({ output: JSON.parse(typedGood) });
  });
});

describe("runAgent with typed schemas", () => {
  it("sends the output schema with the request, for providers that can constrain output", async () => {
    const provider = fakeProvider([{ text: typedGood, inputTokens: 1, outputTokens: 1 }]);
    await runAgent(provider, typed, { ...call, parameters: { budget: 5000 } });
    expect(provider.requests[0].outputSchema).toBe(segmentsOutput);
    expect(provider.requests[0].outputKeys).toEqual(["segments", "summary"]);
  });

  it("fails with INVALID_ARGUMENT naming each bad field before any model call", async () => {
    const provider = fakeProvider([]);
    const err = await runAgent(provider, typed, { ...call, parameters: { budget: "5k", channels: ["email", 3], platform: "any other key is fine" } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toContain("parameters.budget: must be number");
    expect((err as ConnectError).rawMessage).toContain("parameters.channels[1]: must be string");
    expect(provider.requests).toHaveLength(0);
  });

  it("repairs an answer of the wrong shape by naming the JSON path, then fails with INTERNAL naming it again", async () => {
    const wrong = JSON.stringify({ segments: [{ name: "commuters", size: 1.5, priority: "high" }], summary: "x" });
    const provider = fakeProvider([
      { text: wrong, inputTokens: 1, outputTokens: 1 },
      { text: wrong, inputTokens: 1, outputTokens: 1 },
    ]);
    const err = await runAgent(provider, typed, call).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(provider.requests[1].prompt).toContain("Your previous answer was rejected\n/segments/0/size: must be integer");
    expect((err as ConnectError).code).toBe(Code.Internal);
    expect((err as ConnectError).rawMessage).toContain("/segments/0/size: must be integer");
  });
});

describe("runAgent", () => {
  it("makes one call when the first answer is good, on the agent's default tier", async () => {
    const provider = fakeProvider([{ text: good, inputTokens: 100, outputTokens: 20 }]);
    const out = await runAgent(provider, agent, call);
    expect(provider.requests).toHaveLength(1);
    expect(out).toEqual({
      output: { variants: ["A", "B"], testing_matrix: { A: "price" } },
      model: "fake-fast#1",
      tier: "fast",
      inputTokens: 100,
      outputTokens: 20,
      calls: 1,
      toolCalls: [],
    });
    const req = provider.requests[0];
    expect(req.system).toBe(agent.systemPrompt);
    expect(req.prompt).toBe(buildPrompt(agent, call));
    expect(req.outputKeys).toEqual(agent.outputs);
    expect(req.tier).toBe("fast");
  });

  it("repairs once when the first answer is bad, showing the model its problems, and sums the usage", async () => {
    const provider = fakeProvider([
      { text: JSON.stringify({ variants: ["A"] }), inputTokens: 100, outputTokens: 10 },
      { text: good, inputTokens: 130, outputTokens: 25 },
    ]);
    const out = await runAgent(provider, agent, call);
    expect(provider.requests).toHaveLength(2);
    const repair = provider.requests[1];
    expect(repair.prompt.startsWith(buildPrompt(agent, call))).toBe(true);
    expect(repair.prompt).toContain("Your previous answer was rejected");
    expect(repair.prompt).toContain('missing key "testing_matrix"');
    expect(repair.prompt).not.toContain('missing key "variants"');
    expect(repair.system).toBe(agent.systemPrompt);
    expect(repair.tier).toBe("fast");
    expect(out.output).toEqual({ variants: ["A", "B"], testing_matrix: { A: "price" } });
    expect(out.calls).toBe(2);
    expect(out.inputTokens).toBe(230);
    expect(out.outputTokens).toBe(35);
    expect(out.model).toBe("fake-fast#2");
  });

  it("shows the model that its answer was not JSON", async () => {
    const provider = fakeProvider([
      { text: "Here you go: variants are A and B.", inputTokens: 1, outputTokens: 1 },
      { text: good, inputTokens: 1, outputTokens: 1 },
    ]);
    await runAgent(provider, agent, call);
    expect(provider.requests[1].prompt).toMatch(/not valid JSON/);
  });

  it("fails with INTERNAL naming the problems after two bad answers", async () => {
    const provider = fakeProvider([
      { text: "not json", inputTokens: 1, outputTokens: 1 },
      { text: JSON.stringify({ testing_matrix: {} }), inputTokens: 1, outputTokens: 1 },
    ]);
    const err = await runAgent(provider, agent, call).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Internal);
    expect((err as ConnectError).rawMessage).toContain("ad_variants");
    expect((err as ConnectError).rawMessage).toContain('missing key "variants"');
    expect(provider.requests).toHaveLength(2);
  });

  it("uses the call's tier over the agent's default", async () => {
    const provider = fakeProvider([{ text: good, inputTokens: 1, outputTokens: 1 }]);
    const out = await runAgent(provider, agent, { ...call, tier: "capable" });
    expect(provider.requests[0].tier).toBe("capable");
    expect(out.tier).toBe("capable");
    expect(out.model).toBe("fake-capable#1");
  });

  it("uses the agent's default tier when the call has none", async () => {
    const capableAgent: AgentDefinition = { ...agent, modelTier: "capable" };
    const provider = fakeProvider([{ text: good, inputTokens: 1, outputTokens: 1 }]);
    const out = await runAgent(provider, capableAgent, call);
    expect(provider.requests[0].tier).toBe("capable");
    expect(out.tier).toBe("capable");
  });

  it("passes the call's signal to the provider", async () => {
    const provider = fakeProvider([{ text: good, inputTokens: 1, outputTokens: 1 }]);
    const signal = new AbortController().signal;
    await runAgent(provider, agent, { ...call, signal });
    expect(provider.requests[0].signal).toBe(signal);
  });

  it("validates a response it is given (from a stream) without calling the model", async () => {
    const provider = fakeProvider([]);
    const out = await runAgent(provider, agent, call, { text: good, model: "streamed", usage: { inputTokens: 7, outputTokens: 3 } });
    expect(provider.requests).toHaveLength(0);
    expect(out).toMatchObject({ model: "streamed", inputTokens: 7, outputTokens: 3, calls: 1 });
  });

  it("repairs a bad response it is given with one model call", async () => {
    const provider = fakeProvider([{ text: good, inputTokens: 5, outputTokens: 5 }]);
    const out = await runAgent(provider, agent, call, { text: "{}", model: "streamed", usage: { inputTokens: 7, outputTokens: 3 } });
    expect(provider.requests).toHaveLength(1);
    expect(provider.requests[0].prompt).toContain('missing key "variants"');
    expect(out).toMatchObject({ calls: 2, inputTokens: 12, outputTokens: 8 });
  });
});

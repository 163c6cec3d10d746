import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { schemaProblems, type JsonSchema } from "../llm/json-schema.js";
import { loadCatalog, type Catalog } from "./catalog.js";

const servicesDir = join(import.meta.dirname, "..", "..", "services");

/** departments counts the agents of a catalog per department. */
function departments(catalog: Catalog): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const a of catalog.agents) counts[a.department] = (counts[a.department] ?? 0) + 1;
  return counts;
}

describe("the agents' typed schemas", () => {
  it("gives an input field the same type in every agent of both catalogs, since one run's parameters reach several agents", () => {
    const seen = new Map<string, { type: string; by: string }>();
    const clashes: string[] = [];
    for (const a of [...loadCatalog(join(servicesDir, "v1-agents")).agents, ...loadCatalog(join(servicesDir, "v2-agents")).agents]) {
      for (const [field, s] of Object.entries(a.inputSchema.properties ?? {})) {
        if (!s.type) continue;
        const type = s.type === "array" ? `array of ${s.items?.type ?? "any"}` : s.type;
        const first = seen.get(field);
        if (!first) seen.set(field, { type, by: a.id });
        else if (first.type !== type) clashes.push(`${field}: ${first.type} in ${first.by}, ${type} in ${a.id}`);
      }
    }
    expect(clashes).toEqual([]);
  });

  it("keeps the cohort tag generator's 50 tags and the V1 records' field limits in the V1 schemas", () => {
    const v1 = loadCatalog(join(servicesDir, "v1-agents"));
    const tags = v1.get("cohort_tag_generator")!.outputSchema.properties!.interest_tags;
    expect(tags).toMatchObject({ type: "array", minItems: 50, maxItems: 50, items: { type: "string", maxLength: 100 } });
    const icp = v1.get("icp_builder")!.outputSchema.properties!.icp.properties!;
    expect(Object.keys(icp)).toEqual(expect.arrayContaining(["display_name", "industry", "company_size"]));
    expect(v1.get("plan_generator")!.inputSchema.properties!.budget.type).toBe("number");
  });

  it("derives every agent's inputs and outputs from its schemas, in order, with output schemas in the strict subset", () => {
    for (const service of ["v1-agents", "v2-agents"]) {
      for (const a of loadCatalog(join(servicesDir, service)).agents) {
        expect(a.inputs, a.id).toEqual(Object.keys(a.inputSchema.properties ?? {}));
        expect(a.outputs, a.id).toEqual(Object.keys(a.outputSchema.properties ?? {}));
        expect(schemaProblems(a.outputSchema, "output"), a.id).toEqual([]);
        expect(schemaProblems(a.inputSchema, "input"), a.id).toEqual([]);
      }
    }
  });
});

describe("loadCatalog on the real catalogs", () => {
  const v1 = loadCatalog(join(servicesDir, "v1-agents"));
  const v2 = loadCatalog(join(servicesDir, "v2-agents"));

  it("loads the V1 catalog: 16 agents in 4 departments, all v1", () => {
    expect(v1.system).toBe("v1");
    expect(v1.agents).toHaveLength(16);
    expect(Object.keys(departments(v1))).toHaveLength(4);
    expect(v1.agents.every((a) => a.system === "v1")).toBe(true);
  });

  it("loads the V2 catalog: 54 agents in 9 departments, all v2", () => {
    expect(v2.system).toBe("v2");
    expect(v2.agents).toHaveLength(54);
    expect(Object.keys(departments(v2))).toHaveLength(9);
    expect(departments(v2).creative).toBe(7);
    expect(v2.agents.every((a) => a.system === "v2")).toBe(true);
  });

  it("has ids unique across both catalogs", () => {
    const ids = [...v1.agents, ...v2.agents].map((a) => a.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toHaveLength(70);
  });

  it("finds every agent by id and nothing else", () => {
    for (const c of [v1, v2]) {
      for (const a of c.agents) expect(c.get(a.id)).toBe(a);
    }
    expect(v2.get("no_such_agent")).toBeUndefined();
    expect(v1.get(v2.agents[0].id)).toBeUndefined();
  });

  it("gives every agent a system prompt titled with its display name that mentions every output key", () => {
    for (const a of [...v1.agents, ...v2.agents]) {
      expect(a.systemPrompt.trim(), a.id).not.toBe("");
      expect(a.systemPrompt.split("\n")[0], a.id).toBe(`# ${a.displayName}`);
      for (const key of a.outputs) expect(a.systemPrompt, `${a.id} mentions ${key}`).toContain(key);
      expect(a.outputs.length, a.id).toBeGreaterThan(0);
      expect(["fast", "capable"], a.id).toContain(a.modelTier);
    }
  });
});

describe("loadCatalog on malformed catalogs", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  /** agent returns a valid catalog entry with the given id. */
  const agent = (id: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    id,
    display_name: `Agent ${id}`,
    department: "testing",
    description: `The ${id} agent.`,
    model_tier: "fast",
    prompt_version: "2026-01-01.1",
    tools: [],
    input_schema: { type: "object", properties: { goal: { type: "string", description: "The goal." } }, required: [], additionalProperties: true },
    output_schema: { type: "object", properties: { answer: { type: "string", description: "The answer." } }, required: ["answer"], additionalProperties: false },
    examples: ["Do the thing."],
    ...extra,
  });

  /**
   * writeCatalog writes `catalog.json` and a prompt file for every listed
   * prompt id into a fresh temp dir and returns the dir.
   */
  function writeCatalog(catalog: unknown, prompts: string[]): string {
    const dir = mkdtempSync(join(tmpdir(), "raptorflow-catalog-"));
    dirs.push(dir);
    mkdirSync(join(dir, "prompts"));
    writeFileSync(join(dir, "catalog.json"), JSON.stringify(catalog));
    for (const id of prompts) writeFileSync(join(dir, "prompts", `${id}.md`), `# Agent ${id}\n\nReturn \`answer\`.\n`);
    return dir;
  }

  it("names the file when catalog.json is not JSON, and the index when an entry is not an object", () => {
    const dir = writeCatalog({}, []);
    writeFileSync(join(dir, "catalog.json"), "{ not json");
    expect(loadError(dir)).toContain(join(dir, "catalog.json"));
    expect(loadError(writeCatalog({ system: "v1", agents: [agent("a"), null] }, ["a"]))).toMatch(/agents\[1\] must be an object/);
  });

  it("names the agent by id, not only by position", () => {
    expect(loadError(writeCatalog({ system: "v1", agents: [agent("a", { model_tier: "huge" })] }, ["a"]))).toContain('agent "a"');
  });

  /** loadError loads the catalog and returns the error message it fails with. */
  function loadError(dir: string): string {
    try {
      loadCatalog(dir);
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error(`loadCatalog(${dir}) did not fail`);
  }

  it("loads a small valid catalog (the baseline the failures below differ from)", () => {
    const dir = writeCatalog({ system: "v2", agents: [agent("alpha"), agent("beta", { model_tier: "capable" })] }, ["alpha", "beta"]);
    const c = loadCatalog(dir);
    expect(c.agents.map((a) => a.id)).toEqual(["alpha", "beta"]);
    expect(c.get("beta")?.modelTier).toBe("capable");
    expect(c.get("alpha")?.systemPrompt).toContain("# Agent alpha");
  });

  it("fails on a missing prompt file, naming the catalog, the agent and the prompt file", () => {
    const dir = writeCatalog({ system: "v2", agents: [agent("alpha"), agent("beta")] }, ["alpha"]);
    const msg = loadError(dir);
    expect(msg).toContain(join(dir, "catalog.json"));
    expect(msg).toContain("agents[1]");
    expect(msg).toContain(join(dir, "prompts", "beta.md"));
    expect(msg).toMatch(/missing/);
  });

  it("fails on a duplicate id, naming the catalog and the id", () => {
    const dir = writeCatalog({ system: "v1", agents: [agent("alpha"), agent("alpha")] }, ["alpha"]);
    const msg = loadError(dir);
    expect(msg).toContain(join(dir, "catalog.json"));
    expect(msg).toContain("agents[1]");
    expect(msg).toContain('"alpha"');
    expect(msg).toMatch(/twice/);
  });

  it.each(["Alpha", "9lives", "has-dash", "../escape", "a".repeat(65)])("fails on the bad id %j, naming the catalog and the id", (id) => {
    const dir = writeCatalog({ system: "v2", agents: [agent("alpha"), agent(id)] }, ["alpha"]);
    const msg = loadError(dir);
    expect(msg).toContain(join(dir, "catalog.json"));
    expect(msg).toContain(`agents[1].id "${id}"`);
  });

  it("fails on a missing id", () => {
    const bad = agent("x");
    delete bad.id;
    const dir = writeCatalog({ system: "v2", agents: [bad] }, []);
    const msg = loadError(dir);
    expect(msg).toContain(join(dir, "catalog.json"));
    expect(msg).toContain("agents[0].id");
  });

  it("fails on a bad model_tier, naming the catalog, the agent and the field", () => {
    const dir = writeCatalog({ system: "v2", agents: [agent("alpha"), agent("beta", { model_tier: "huge" })] }, ["alpha", "beta"]);
    const msg = loadError(dir);
    expect(msg).toContain(join(dir, "catalog.json"));
    expect(msg).toContain("agents[1].model_tier");
    expect(msg).toMatch(/"fast" or "capable"/);
  });

  it.each(["input_schema", "output_schema"])("fails on an entry without %s, naming the catalog, the agent and the field", (field) => {
    const dir = writeCatalog({ system: "v2", agents: [agent("alpha"), agent("beta", { [field]: undefined })] }, ["alpha", "beta"]);
    const msg = loadError(dir);
    expect(msg).toContain(join(dir, "catalog.json"));
    expect(msg).toContain(`agents[1].${field} is required (agent "beta")`);
  });

  it("fails on an empty required string field", () => {
    const dir = writeCatalog({ system: "v2", agents: [agent("alpha", { display_name: "" })] }, ["alpha"]);
    const msg = loadError(dir);
    expect(msg).toContain(join(dir, "catalog.json"));
    expect(msg).toContain("agents[0].display_name must be a non-empty string");
  });

  it.each([["v3"], [""], [undefined], [2]])('fails on a bad "system" (%j), naming the catalog', (system) => {
    const dir = writeCatalog({ system, agents: [agent("alpha")] }, ["alpha"]);
    const msg = loadError(dir);
    expect(msg).toContain(join(dir, "catalog.json"));
    expect(msg).toContain('"system" must be "v1" or "v2"');
  });

  /** answerSchema is a valid output schema with the one key `answer`. */
  const answerSchema = (answer: Record<string, unknown> = { type: "string", description: "The answer." }): Record<string, unknown> => ({
    type: "object",
    properties: { answer },
    required: ["answer"],
    additionalProperties: false,
  });
  const goalSchema = { type: "object", properties: { goal: { type: "string", description: "The goal." } }, required: [], additionalProperties: true };

  it("loads an entry with schemas: inputs and outputs come from them", () => {
    const dir = writeCatalog({ system: "v1", agents: [agent("alpha", { input_schema: goalSchema, output_schema: answerSchema() })] }, ["alpha"]);
    const a = loadCatalog(dir).get("alpha")!;
    expect(a.inputs).toEqual(["goal"]);
    expect(a.outputs).toEqual(["answer"]);
    expect(a.outputSchema).toEqual(answerSchema());
    expect(a.inputSchema).toEqual(goalSchema);
  });

  it.each([
    ["a keyword outside the subset", answerSchema({ type: "string", description: "x", format: "email" }), '/properties/answer: keyword "format" is not allowed'],
    ["an array of types", answerSchema({ type: ["string", "null"], description: "x" }), '/properties/answer: "type" must be one of'],
    ["a property without a description", answerSchema({ type: "string" }), '/properties/answer: a property needs a "description"'],
    ["an array without items", answerSchema({ type: "array", description: "x" }), '/properties/answer: an array needs "items"'],
    ["an enum of numbers", answerSchema({ type: "string", description: "x", enum: [1, 2] }), '/properties/answer: "enum" must be a non-empty array of strings'],
    [
      "a nested object that is not closed",
      answerSchema({ type: "object", description: "x", properties: { a: { type: "string", description: "a" } }, required: ["a"] }),
      '/properties/answer: an output object needs "additionalProperties": false',
    ],
    [
      "a nested object that does not require every property",
      answerSchema({ type: "object", description: "x", properties: { a: { type: "string", description: "a" } }, required: [], additionalProperties: false }),
      '/properties/answer: "required" must list every property (missing "a")',
    ],
    ["$ref", { ...answerSchema(), $ref: "#/x" }, '/: keyword "$ref" is not allowed'],
    ["a root that is not an object", { type: "string", description: "x" }, '/: the root must have "type": "object"'],
  ])("fails on an output schema with %s, naming the agent and the JSON path", (_what, schema, problem) => {
    const dir = writeCatalog({ system: "v1", agents: [agent("alpha"), agent("beta", { output_schema: schema })] }, ["alpha", "beta"]);
    const msg = loadError(dir);
    expect(msg).toContain(join(dir, "catalog.json"));
    expect(msg).toContain("agents[1].output_schema");
    expect(msg).toContain('agent "beta"');
    expect(msg).toContain(problem);
  });

  it("fails on an input schema whose root is closed", () => {
    const dir = writeCatalog({ system: "v1", agents: [agent("alpha", { input_schema: { ...goalSchema, additionalProperties: false } })] }, ["alpha"]);
    expect(loadError(dir)).toMatch(/agents\[0\]\.input_schema .*\(agent "alpha"\).*\/: an input schema needs "additionalProperties": true at its root/);
  });

  it("fails on an output schema without properties to answer", () => {
    const dir = writeCatalog({ system: "v1", agents: [agent("alpha", { output_schema: { type: "object", properties: {}, required: [], additionalProperties: false } })] }, ["alpha"]);
    expect(loadError(dir)).toContain('agents[0].output_schema must have at least one property (agent "alpha")');
  });

  it.each([
    [{ reads: [{ kinds: ["gossip"], into: "goal" }] }, 'memory.reads[0].kinds[0] "gossip" must be one of brand, preference, knowledge, lesson'],
    [{ reads: [{ kinds: ["brand"], into: "nope" }] }, 'memory.reads[0].into must be "context" or one of the agent\'s inputs (goal)'],
    [{ writes: [{ kind: "brand", from: ["nope"] }] }, "memory.writes[0].from must name output keys of the agent (answer)"],
    [{ reads: [], forget: true }, "memory has unknown fields: forget"],
  ])("fails on a malformed memory entry %j, naming the agent", (memory, problem) => {
    const msg = loadError(writeCatalog({ system: "v2", agents: [agent("alpha", { memory })] }, ["alpha"]));
    expect(msg).toContain(`agents[0].${problem} (agent "alpha")`);
  });

  it('fails when "agents" is not an array', () => {
    const dir = writeCatalog({ system: "v1", agents: { alpha: agent("alpha") } }, ["alpha"]);
    const msg = loadError(dir);
    expect(msg).toContain(join(dir, "catalog.json"));
    expect(msg).toContain('"agents" must be an array');
  });
});

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { schemaProblems, type JsonSchema, type SchemaRole } from "../llm/json-schema.js";
import type { ModelTierName } from "../llm/llm-provider.js";
import { memoryKinds, type MemoryKindName, type MemorySpec } from "./agent-memory.js";
import { compileSchema } from "./schema-validator.js";

/** AgentDefinition is one agent: data plus its system prompt file. */
export interface AgentDefinition {
  /** id is unique across both catalogs, for example `icp_builder`. */
  readonly id: string;
  /** system is the generation: `v1` or `v2`. */
  readonly system: "v1" | "v2";
  /** displayName is the human-readable name. */
  readonly displayName: string;
  /** department groups agents, for example `market_intelligence`. */
  readonly department: string;
  /** description says what the agent does and when to use it. */
  readonly description: string;
  /** modelTier is the default tier. */
  readonly modelTier: ModelTierName;
  /** promptVersion versions the system prompt file. */
  readonly promptVersion: string;
  /** tools are the deterministic tools the agent may call. */
  readonly tools: readonly string[];
  /** inputs are the fields the agent mainly needs: the properties of inputSchema, in order. */
  readonly inputs: readonly string[];
  /** outputs are the top-level keys of its JSON answer: the properties of outputSchema, in order. */
  readonly outputs: readonly string[];
  /**
   * inputSchema is the JSON Schema the call's parameters must satisfy: an
   * open object (one run's parameters reach several agents).
   */
  readonly inputSchema: JsonSchema;
  /**
   * outputSchema is the JSON Schema the answer must satisfy; it is in the
   * strict subset (every object closed, every property required) unless the
   * catalog entry has no schema and it was derived from the output keys.
   */
  readonly outputSchema: JsonSchema;
  /** examples are requests it is the right agent for. */
  readonly examples: readonly string[];
  /** systemPrompt is the text of `prompts/<id>.md`. */
  readonly systemPrompt: string;
  /** memory is how the agent reads and writes the organization's memory, when it does. */
  readonly memory?: MemorySpec;
}

/** Catalog is the agents one service runs, by id, in catalog order. */
export interface Catalog {
  /** system is the generation of every agent in it. */
  readonly system: "v1" | "v2";
  /** agents in catalog order. */
  readonly agents: readonly AgentDefinition[];
  /** get returns an agent by id. */
  get(id: string): AgentDefinition | undefined;
}

const idPattern = /^[a-z][a-z0-9_]{0,63}$/;

/**
 * schemaOf reads an entry's `input_schema` or `output_schema`: it is
 * required, must be in the agents' subset of JSON Schema (schemaProblems)
 * and must compile with ajv. Its properties, in order, are the agent's
 * input or output keys.
 */
function schemaOf(entry: Record<string, unknown>, role: SchemaRole, where: string, named: string): JsonSchema {
  const field = `${role}_schema`;
  const schema = entry[field];
  if (schema === undefined) throw new Error(`${where}.${field} is required${named}`);
  const problems = schemaProblems(schema, role);
  if (problems.length) throw new Error(`${where}.${field} is not in the agents' JSON Schema subset${named}: ${problems.join("; ")}`);
  try {
    compileSchema(schema as JsonSchema);
  } catch (e) {
    throw new Error(`${where}.${field} is not valid JSON Schema${named}: ${(e as Error).message}`);
  }
  return schema as JsonSchema;
}

/**
 * memoryOf reads an entry's optional `memory`: `reads` of memory kinds into
 * an input key (or `context`), `writes` of output keys as a memory kind.
 */
function memoryOf(raw: unknown, input: JsonSchema, output: JsonSchema, where: string, named: string): MemorySpec | undefined {
  if (raw === undefined) return undefined;
  const fail = (what: string): never => {
    throw new Error(`${where}.memory${what}${named}`);
  };
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) fail(" must be an object with reads and writes");
  const { reads = [], writes = [], ...rest } = raw as { reads?: unknown; writes?: unknown };
  if (Object.keys(rest).length) fail(` has unknown fields: ${Object.keys(rest).join(", ")}`);
  if (!Array.isArray(reads) || !Array.isArray(writes)) fail(".reads and .writes must be arrays");
  const kind = (k: unknown, at: string): MemoryKindName => (memoryKinds.includes(k as MemoryKindName) ? (k as MemoryKindName) : fail(`${at} "${String(k)}" must be one of ${memoryKinds.join(", ")}`));
  const inputs = Object.keys(input.properties ?? {});
  const outputs = Object.keys(output.properties ?? {});
  return {
    reads: (reads as { kinds?: unknown; into?: unknown }[]).map((r, i) => {
      if (!Array.isArray(r?.kinds) || r.kinds.length === 0) fail(`.reads[${i}].kinds must name at least one kind`);
      const into = r.into;
      if (typeof into !== "string" || (into !== "context" && !inputs.includes(into))) fail(`.reads[${i}].into must be "context" or one of the agent's inputs (${inputs.join(", ")})`);
      return { kinds: (r.kinds as unknown[]).map((k, j) => kind(k, `.reads[${i}].kinds[${j}]`)), into: into as string };
    }),
    writes: (writes as { kind?: unknown; from?: unknown }[]).map((w, i) => {
      const from = w?.from;
      if (!Array.isArray(from) || from.length === 0 || from.some((k) => !outputs.includes(k as string))) {
        fail(`.writes[${i}].from must name output keys of the agent (${outputs.join(", ")})`);
      }
      return { kind: kind(w.kind, `.writes[${i}].kind`), from: from as string[] };
    }),
  };
}

/**
 * loadCatalog reads `<dir>/catalog.json` and every `<dir>/prompts/<id>.md`,
 * and fails at start-up with a message naming the file and the agent when
 * anything is missing or malformed, rather than at the first request. Each
 * agent's input and output JSON Schemas are checked against the subset and
 * compiled here, once.
 */
export function loadCatalog(dir: string): Catalog {
  const file = join(dir, "catalog.json");
  let raw: { system?: unknown; agents?: unknown };
  try {
    raw = JSON.parse(readFileSync(file, "utf8")) as typeof raw;
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  if (raw.system !== "v1" && raw.system !== "v2") throw new Error(`${file}: "system" must be "v1" or "v2"`);
  if (!Array.isArray(raw.agents)) throw new Error(`${file}: "agents" must be an array`);
  const system = raw.system;
  const byId = new Map<string, AgentDefinition>();
  for (const [i, a] of (raw.agents as unknown[]).entries()) {
    if (a === null || typeof a !== "object" || Array.isArray(a)) throw new Error(`${file}: agents[${i}] must be an object`);
    const entry = a as Record<string, unknown>;
    const where = `${file}: agents[${i}]`;
    // Name the agent too when it has an id, so a message points at it by name.
    const named = typeof entry.id === "string" && entry.id !== "" ? ` (agent "${entry.id}")` : "";
    const str = (k: string): string => {
      const v = entry[k];
      if (typeof v !== "string" || v === "") throw new Error(`${where}.${k} must be a non-empty string${named}`);
      return v;
    };
    const list = (k: string): string[] => {
      const v = entry[k] ?? [];
      if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw new Error(`${where}.${k} must be an array of strings${named}`);
      return v as string[];
    };
    const id = str("id");
    if (!idPattern.test(id)) throw new Error(`${where}.id "${id}" must match ${idPattern}`);
    if (byId.has(id)) throw new Error(`${where}.id "${id}" is listed twice`);
    const tier = str("model_tier");
    if (tier !== "fast" && tier !== "capable") throw new Error(`${where}.model_tier must be "fast" or "capable"${named}`);
    const inputSchema = schemaOf(entry, "input", where, named);
    const outputSchema = schemaOf(entry, "output", where, named);
    const outputs = Object.keys(outputSchema.properties ?? {});
    if (outputs.length === 0) {
      throw new Error(`${where}.output_schema must have at least one property${named}`);
    }
    const promptFile = join(dir, "prompts", `${id}.md`);
    let systemPrompt: string;
    try {
      systemPrompt = readFileSync(promptFile, "utf8");
    } catch {
      throw new Error(`${where}: the system prompt file ${promptFile} is missing${named}`);
    }
    byId.set(id, {
      id,
      system,
      displayName: str("display_name"),
      department: str("department"),
      description: str("description"),
      modelTier: tier,
      promptVersion: str("prompt_version"),
      tools: list("tools"),
      inputs: Object.keys(inputSchema.properties ?? {}),
      outputs,
      inputSchema,
      outputSchema,
      examples: list("examples"),
      systemPrompt,
      memory: memoryOf(entry.memory, inputSchema, outputSchema, where, named),
    });
  }
  const agents = [...byId.values()];
  return { system, agents, get: (id) => byId.get(id) };
}

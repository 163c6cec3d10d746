import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { MemoryBank } from "../memory/memory-bank.js";
import type { AgentDefinition } from "./catalog.js";

/** memoryKinds are the kinds of memory an agent can read or write. */
export const memoryKinds = ["brand", "preference", "knowledge", "lesson"] as const;

/** MemoryKindName is one of memoryKinds. */
export type MemoryKindName = (typeof memoryKinds)[number];

/**
 * MemorySpec is how an agent uses the organization's memory, from its
 * catalog entry's `memory`: what it reads before it runs (the memories
 * nearest its request, of some kinds, into one of its inputs when the caller
 * left it empty and it takes text, else into the shared context under
 * `memory`) and which of its output keys it writes back, as memories of a kind.
 */
export interface MemorySpec {
  readonly reads: readonly { readonly kinds: readonly MemoryKindName[]; readonly into: string }[];
  readonly writes: readonly { readonly kind: MemoryKindName; readonly from: readonly string[] }[];
}

/** Recalled is what memory adds to a call before it runs. */
export interface Recalled {
  /** parameters the caller left empty, filled from memory. */
  readonly parameters: JsonObject;
  /** context entries added under `memory`, by kind. */
  readonly context: JsonObject;
  /** names of the memories used, most relevant first. */
  readonly names: readonly string[];
}

/** AgentMemory reads an organization's memory for an agent call and writes what the answer teaches. */
export interface AgentMemory {
  /** recall finds what the agent should know for this request; undefined when the agent uses no memory. */
  recall(org: string, agent: AgentDefinition, input: string, parameters: JsonObject): Promise<Recalled | undefined>;
  /** remember stores the answer's items of the agent's written keys and returns the new memories' names. */
  remember(org: string, agent: AgentDefinition, output: JsonObject, run: string): Promise<string[]>;
}

/** AgentMemoryOptions tune how much is read and written. */
export interface AgentMemoryOptions {
  /** recallLimit is the most memories read per read of a spec (default 5). */
  readonly recallLimit?: number;
  /** rememberLimit is the most memories written per call (default 20). */
  readonly rememberLimit?: number;
  /** duplicateSimilarity is the similarity from which a new item counts as already known (default 0.97). */
  readonly duplicateSimilarity?: number;
}

/**
 * createAgentMemory gives agents a MemoryBank: before a call, the memories
 * nearest the request (by meaning) of the kinds the agent reads; after it,
 * each item of the keys the agent writes (an array's elements, or the value)
 * as one memory, unless a near-identical one is already there.
 */
export function createAgentMemory(bank: MemoryBank, options: AgentMemoryOptions = {}): AgentMemory {
  const recallLimit = options.recallLimit ?? 5;
  const rememberLimit = options.rememberLimit ?? 20;
  const duplicate = options.duplicateSimilarity ?? 0.97;
  return {
    async recall(org, agent, input, parameters) {
      if (!agent.memory?.reads.length) return undefined;
      const filled: Record<string, JsonValue> = {};
      const context: Record<string, JsonValue> = {};
      const names: string[] = [];
      for (const read of agent.memory.reads) {
        const found = await bank.search(org, input, { kinds: read.kinds, k: recallLimit });
        if (found.length === 0) continue;
        names.push(...found.map((f) => `memories/${f.item.id}`));
        const texts = found.map((f) => f.item.content);
        const type = agent.inputSchema.properties?.[read.into];
        const empty = parameters[read.into] === undefined || parameters[read.into] === "" || (Array.isArray(parameters[read.into]) && (parameters[read.into] as JsonValue[]).length === 0);
        // Only text inputs are filled from memory; anything else goes to the context, which takes any JSON.
        if (type && empty && type.type === "string") filled[read.into] = texts.join("\n");
        else if (type && empty && type.type === "array" && type.items?.type === "string") filled[read.into] = texts;
        else for (const f of found) ((context[f.item.kind] ??= []) as JsonValue[]).push(f.item.content);
      }
      if (names.length === 0) return undefined;
      const added: JsonObject = Object.keys(context).length ? { memory: context } : {};
      return { parameters: filled, context: added, names: [...new Set(names)] };
    },
    async remember(org, agent, output, run) {
      const names: string[] = [];
      for (const write of agent.memory?.writes ?? []) {
        for (const key of write.from) {
          const value = output[key];
          for (const item of Array.isArray(value) ? value : value === undefined || value === null ? [] : [value]) {
            if (names.length >= rememberLimit) return names;
            const content = textOf(item).slice(0, 8000);
            if (content.trim() === "") continue;
            const [nearest] = await bank.search(org, content, { kinds: [write.kind], k: 1 });
            if (nearest && nearest.similarity >= duplicate) continue;
            const labels: Record<string, string> = { key };
            if (run) labels.run = run;
            const added = await bank.add(org, { kind: write.kind, content, source: `agents/${agent.id}`, labels });
            names.push(`memories/${added.id}`);
          }
        }
      }
      return names;
    },
  };
}

/** textOf writes an output item as the text of a memory: strings as they are, objects as `field: value` pairs. */
export function textOf(value: JsonValue): string {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.map(textOf).join(", ");
  if (value !== null && typeof value === "object") {
    return Object.entries(value)
      .map(([k, v]) => `${k.replaceAll("_", " ")}: ${textOf(v as JsonValue)}`)
      .join("; ");
  }
  return String(value);
}

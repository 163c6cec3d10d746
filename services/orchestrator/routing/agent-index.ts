import { AgentSystem, type Agent } from "../../../gen/raptorflow/agent/v1/agent_pb.js";
import { DenseQuery, type SparseVector, type TextEmbedder } from "./text-embedding.js";

/** AgentMatch is an agent and how near a text is to what it does. */
export interface AgentMatch {
  /** agent is the catalog's agent. */
  readonly agent: Agent;
  /** score blends the nearest of its example requests with its description, from 0 to 1. */
  readonly score: number;
}

/** AgentIndex finds the agents of a system nearest to a text, from their catalog examples and descriptions. */
export interface AgentIndex {
  /** nearest returns the system's agents, nearest first. */
  nearest(system: AgentSystem, text: string): AgentMatch[];
}

/**
 * departmentOrder is the order in which a plan runs a system's departments:
 * research before strategy, strategy before campaigns, campaigns before
 * creative, creative before distribution, and the checks last.
 */
export const departmentOrder: readonly string[] = [
  "market_intelligence",
  "customer_intelligence",
  "strategy",
  "offer_and_positioning",
  "moves_and_campaigns",
  "execution",
  "creative",
  "distribution",
  "analytics",
  "memory_and_learning",
  "safety_and_quality",
];

/** unplanned are agents the router never picks itself: the planner is added by its own rule. */
const unplanned = new Set(["agents/orchestrator"]);

interface Entry {
  readonly agent: Agent;
  readonly examples: readonly SparseVector[];
  readonly description: SparseVector;
}

/** AgentIndexOptions weigh the parts of an agent's score. */
export interface AgentIndexOptions {
  /** descriptionWeight is the share of the description in the score; the nearest examples have the rest (default 0.75). */
  readonly descriptionWeight?: number;
  /** examplesAveraged is how many of the nearest examples are averaged (default 2). */
  readonly examplesAveraged?: number;
}

/**
 * createAgentIndex embeds every agent's examples and its description (with
 * its name). An agent's score for a text blends the description (which says
 * what the agent is for, in general words) with its two nearest examples
 * (which catch particular phrasings); the blend was chosen by how often an
 * agent's own example, left out, finds the agent again (docs/routing.md).
 */
export function createAgentIndex(agents: readonly Agent[], embedder: TextEmbedder, options: AgentIndexOptions = {}): AgentIndex {
  const dw = options.descriptionWeight ?? 0.75;
  const ka = options.examplesAveraged ?? 2;
  const entries: Entry[] = agents
    .filter((a) => !unplanned.has(a.name))
    .map((a) => ({
      agent: a,
      examples: a.examples.map((e) => embedder.embed(e)),
      description: embedder.embed(`${a.displayName}. ${a.name.slice("agents/".length).replaceAll("_", " ")}. ${a.description}`),
    }));
  const bySystem = new Map<AgentSystem, Entry[]>();
  for (const e of entries) bySystem.set(e.agent.system, [...(bySystem.get(e.agent.system) ?? []), e]);
  const query = new DenseQuery(embedder.dimensions);
  return {
    nearest(system, text) {
      query.load(embedder.embed(text));
      const out: AgentMatch[] = [];
      for (const e of bySystem.get(system) ?? []) {
        // The mean of the ka nearest examples, kept without sorting.
        const top: number[] = [];
        for (const v of e.examples) {
          const s = query.cosine(v);
          if (top.length < ka) top.push(s);
          else {
            const low = top.indexOf(Math.min(...top));
            if (s > top[low]) top[low] = s;
          }
        }
        const example = top.length ? top.reduce((a, b) => a + b, 0) / top.length : 0;
        out.push({ agent: e.agent, score: (1 - dw) * Math.max(0, example) + dw * Math.max(0, query.cosine(e.description)) });
      }
      return out.sort((x, y) => y.score - x.score);
    },
  };
}

/** inPlanOrder orders a system's chosen agents by department, then by how near they are. */
export function inPlanOrder<M extends AgentMatch>(matches: readonly M[]): M[] {
  const rank = (d: string) => {
    const i = departmentOrder.indexOf(d);
    return i < 0 ? departmentOrder.length : i;
  };
  return [...matches].sort((x, y) => rank(x.agent.department) - rank(y.agent.department) || y.score - x.score);
}

/** systemName names a system for reasons. */
export function systemName(system: AgentSystem): string {
  return system === AgentSystem.V1 ? "V1" : "V2";
}

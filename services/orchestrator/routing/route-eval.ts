import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { Code, ConnectError, createClient, createRouterTransport, type Client, type ServiceImpl } from "@connectrpc/connect";
import { AgentService, type Agent } from "../../../gen/raptorflow/agent/v1/agent_pb.js";
import { OrchestratorService, Target, type RouteDecision } from "../../../gen/raptorflow/v3/orchestrator_pb.js";
import { toAgentMessage } from "../../../platform/agents/agent-service.js";
import { loadCatalog } from "../../../platform/agents/catalog.js";
import { createMemoryKeyValueStore } from "../../../platform/kv/memory-kv-store.js";
import { createOrchestratorImpl } from "../orchestrator-service.js";
import type { Router } from "../router.js";
import { createRunEvents } from "../run-events.js";
import { createMemoryRunStore } from "../run-store.js";
import { createSharedContext } from "../shared-context.js";
import { createSemanticRouter } from "./semantic-router.js";

/** Labelled is one labelled request: the input and the target it should route to. */
export interface Labelled {
  readonly input: string;
  readonly target: Target.V1 | Target.V2 | Target.HYBRID;
}

/** classes are the targets evaluated, in the order reports show them. */
export const classes = [Target.V1, Target.V2, Target.HYBRID] as const;

/** targetLabel is a target's proto name, as the labelled files spell it. */
export const targetLabel = (t: Target): string => `TARGET_${Target[t]}`;

/** readLabelled reads a JSON Lines file of `{"input": …, "target": "TARGET_V1" | "TARGET_V2" | "TARGET_HYBRID"}`. */
export function readLabelled(path: string): Labelled[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "")
    .map((l, i) => {
      const row = JSON.parse(l) as { input?: unknown; target?: unknown };
      const target = classes.find((t) => targetLabel(t) === row.target);
      if (typeof row.input !== "string" || target === undefined) throw new Error(`${path}:${i + 1}: want {"input": string, "target": TARGET_V1|TARGET_V2|TARGET_HYBRID}`);
      return { input: row.input, target };
    });
}

/** Part is a part of a labelled file: all of it, the tuning part or the held-out part. */
export type Part = "all" | "tune" | "held-out";

/**
 * partOf puts a request in the tuning or the held-out part, by the first
 * byte of the SHA-256 of its input (even: held out). The split does not
 * depend on the file's order or on anything the router does, and the router
 * was tuned on the tuning part only.
 */
export function partOf(input: string): "tune" | "held-out" {
  return createHash("sha256").update(input).digest()[0] % 2 === 0 ? "held-out" : "tune";
}

/** selectPart keeps the requests of one part. */
export function selectPart(rows: readonly Labelled[], part: Part): Labelled[] {
  return part === "all" ? [...rows] : rows.filter((r) => partOf(r.input) === part);
}

/** ClassMetrics are one class's precision, recall and support. */
export interface ClassMetrics {
  readonly target: Target;
  readonly precision: number;
  readonly recall: number;
  readonly support: number;
}

/** Evaluation is how a router did on labelled requests. */
export interface Evaluation {
  readonly total: number;
  readonly correct: number;
  readonly accuracy: number;
  readonly perClass: readonly ClassMetrics[];
  /** confusion[expected][got], in the order of `classes` (a fourth column counts any other answer). */
  readonly confusion: readonly (readonly number[])[];
  /** misses are the requests routed wrongly. */
  readonly misses: readonly { readonly input: string; readonly expected: Target; readonly got: Target }[];
  /** router is the name the decisions gave. */
  readonly router: string;
}

/** evaluate routes every labelled request through `explain` (ExplainRoute) and scores the targets. */
export async function evaluate(rows: readonly Labelled[], explain: (input: string) => Promise<RouteDecision>): Promise<Evaluation> {
  const confusion = classes.map(() => [0, 0, 0, 0]);
  const misses: { input: string; expected: Target; got: Target }[] = [];
  let router = "";
  for (const r of rows) {
    const d = await explain(r.input);
    router = d.router;
    const col = classes.indexOf(d.target as (typeof classes)[number]);
    confusion[classes.indexOf(r.target)][col < 0 ? 3 : col]++;
    if (d.target !== r.target) misses.push({ input: r.input, expected: r.target, got: d.target });
  }
  const correct = classes.reduce((s, _, i) => s + confusion[i][i], 0);
  const perClass = classes.map((t, i) => {
    const predicted = confusion.reduce((s, row) => s + row[i], 0);
    const support = confusion[i].reduce((s, v) => s + v, 0);
    return { target: t, precision: predicted ? confusion[i][i] / predicted : 0, recall: support ? confusion[i][i] / support : 0, support };
  });
  return { total: rows.length, correct, accuracy: rows.length ? correct / rows.length : 0, perClass, confusion, misses, router };
}

/** formatEvaluation prints an evaluation: accuracy, per-class precision and recall, the confusion matrix. */
export function formatEvaluation(e: Evaluation, title: string, showMisses = false): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const lines = [
    `${title} — router ${e.router || "?"}`,
    `accuracy ${e.correct}/${e.total} = ${pct(e.accuracy)}`,
    "",
    "class          precision  recall  support",
    ...e.perClass.map((c) => `${targetLabel(c.target).padEnd(14)} ${pct(c.precision).padStart(9)} ${pct(c.recall).padStart(7)} ${String(c.support).padStart(8)}`),
    "",
    "confusion (rows: expected, columns: routed)",
    `${"".padEnd(14)} ${classes.map((t) => targetLabel(t).slice(7).padStart(7)).join(" ")}   other`,
    ...e.confusion.map((row, i) => `${targetLabel(classes[i]).padEnd(14)} ${row.slice(0, 3).map((v) => String(v).padStart(7)).join(" ")} ${String(row[3]).padStart(7)}`),
  ];
  if (showMisses && e.misses.length) {
    lines.push("", "misses:", ...e.misses.map((m) => `  expected ${targetLabel(m.expected)}, routed ${targetLabel(m.got)}: ${m.input}`));
  }
  return lines.join("\n");
}

/** catalogAgents reads both catalogs from disk as the orchestrator gets them over ListAgents (V1 first). */
export function catalogAgents(root = "."): Agent[] {
  return [...loadCatalog(`${root}/services/v1-agents`).agents, ...loadCatalog(`${root}/services/v2-agents`).agents].map(toAgentMessage);
}

/**
 * inProcessOrchestrator is the real orchestrator service over an in-memory
 * Connect transport, with the catalogs read from disk and a router (the
 * semantic router by default). Its agent services refuse every call:
 * ExplainRoute never runs an agent.
 */
export function inProcessOrchestrator(options: { readonly agents?: readonly Agent[]; readonly router?: (agents: readonly Agent[]) => Router } = {}): Client<typeof OrchestratorService> {
  const agents = options.agents ?? catalogAgents();
  const refuse = (): never => {
    throw new ConnectError("the in-process evaluation runs no agents", Code.Unimplemented);
  };
  const none: ServiceImpl<typeof AgentService> = { listAgents: () => ({ agents: [...agents] }), getAgent: refuse, runAgent: refuse, streamAgent: refuse };
  const client = createClient(AgentService, createRouterTransport(({ service }) => service(AgentService, none)));
  const kv = createMemoryKeyValueStore();
  const store = createMemoryRunStore();
  const impl = createOrchestratorImpl({
    agents: { v1: client, v2: client },
    catalog: async () => agents,
    router: options.router ?? ((a) => createSemanticRouter(a)),
    store,
    context: createSharedContext(kv, store, 60_000),
    events: createRunEvents(kv),
  });
  return createClient(OrchestratorService, createRouterTransport(({ service }) => service(OrchestratorService, impl)));
}

import { create, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { AgentSystem, type Agent } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { PlannedStepSchema, RouteMode, Target, type CreateRunRequest, type PlannedStep, type RouteDecision } from "../../gen/raptorflow/v3/orchestrator_pb.js";

/** plannerAgent is V2's orchestration agent, which plans multi-agent V2 work. */
export const plannerAgent = "agents/orchestrator";

/** plannerThreshold is the complexity from which a V2 request is planned by the planner agent. */
export const plannerThreshold = 0.5;

/**
 * wantsPlanner tells whether a request goes to V2's orchestration agent
 * first: a complex V2 request the router planned itself (no forced mode, no
 * named agents).
 */
export function wantsPlanner(req: Pick<CreateRunRequest, "agents" | "mode">, decision: RouteDecision): boolean {
  return decision.target === Target.V2 && decision.complexity >= plannerThreshold && req.agents.length === 0 && req.mode === RouteMode.UNSPECIFIED;
}

/** plannerStep is the planning step put first in the plan. */
export function plannerStep(): PlannedStep {
  return create(PlannedStepSchema, { agent: plannerAgent, system: AgentSystem.V2, reason: "complex V2 request: the orchestration agent plans the agents" });
}

/**
 * planFrom reads the planner's `plan` (ordered steps, each naming an agent by
 * `agent`, `agent_id` or `id`, with or without `agents/`) and keeps the V2
 * agents that exist, in order, without repeats, at most 8. An answer without
 * a usable plan (the offline provider's text) gives none, and the router's
 * plan stands.
 */
export function planFrom(output: JsonObject | undefined, agents: readonly Agent[]): PlannedStep[] {
  const plan = output?.plan;
  if (!Array.isArray(plan)) return [];
  const v2 = new Map(agents.filter((a) => a.system === AgentSystem.V2).map((a) => [a.name, a]));
  const out: PlannedStep[] = [];
  for (const item of plan as JsonValue[]) {
    const o = item && typeof item === "object" && !Array.isArray(item) ? (item as JsonObject) : undefined;
    const raw = typeof item === "string" ? item : (o?.agent ?? o?.agent_id ?? o?.id);
    if (typeof raw !== "string") continue;
    const name = raw.startsWith("agents/") ? raw : `agents/${raw}`;
    if (name === plannerAgent || !v2.has(name) || out.some((s) => s.agent === name)) continue;
    const purpose = typeof o?.purpose === "string" ? `: ${o.purpose}` : "";
    out.push(create(PlannedStepSchema, { agent: name, system: AgentSystem.V2, reason: `planned by the orchestration agent${purpose}` }));
    if (out.length === 8) break;
  }
  return out;
}

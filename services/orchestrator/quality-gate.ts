import { create, type JsonObject } from "@bufbuild/protobuf";
import { AgentSystem, ModelTier, type Agent } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { Checks, PlannedStepSchema, type PlannedStep, type RouteDecision } from "../../gen/raptorflow/v3/orchestrator_pb.js";

/** checkAgents run, in this order, after creative output. */
export const checkAgents = ["brand_safety", "compliance", "ethical_guardrail", "quality_rater"] as const;

/** passingScore is the least quality_rater overall_score (1-10) that needs no rewrite. */
export const passingScore = 7;

/**
 * withQualityGate appends the safety and quality checks to a plan: after a
 * creative step (department `creative`) unless the request turns them off,
 * or always with CHECKS_ON. Checks already in the plan are not repeated. The
 * decision is changed in place and its reasons say so.
 */
export function withQualityGate(decision: RouteDecision, checks: Checks, agents: readonly Agent[]): RouteDecision {
  if (checks === Checks.OFF) return decision;
  const byName = new Map(agents.map((a) => [a.name, a]));
  const creative = decision.steps.some((s) => byName.get(s.agent)?.department === "creative");
  if (!creative && checks !== Checks.ON) return decision;
  const present = new Set(decision.steps.map((s) => s.agent));
  const added: PlannedStep[] = [];
  for (const id of checkAgents) {
    const name = `agents/${id}`;
    if (present.has(name) || !byName.has(name)) continue;
    added.push(create(PlannedStepSchema, { agent: name, system: AgentSystem.V2, modelTier: ModelTier.FAST, reason: "safety and quality check of the output before it is returned" }));
  }
  if (added.length) {
    decision.steps.push(...added);
    decision.reasons.push(`checks: ${added.map((s) => s.agent.slice(7)).join(", ")} run on the output`);
  }
  return decision;
}

/**
 * needsRewrite reads quality_rater's answer: a rewrite is due when it says
 * `pass: false` or gives an `overall_score` below the passing score. An answer
 * without a usable rating (the offline provider's text) asks for nothing.
 */
export function needsRewrite(output: JsonObject | undefined): boolean {
  if (!output) return false;
  if (output.pass === false) return true;
  const score = typeof output.overall_score === "number" ? output.overall_score : Number.NaN;
  return Number.isFinite(score) && score < passingScore;
}

/** rewriteStep is the step that repairs output the rating failed. */
export function rewriteStep(): PlannedStep {
  return create(PlannedStepSchema, {
    agent: "agents/rewrite_fixer",
    system: AgentSystem.V2,
    modelTier: ModelTier.CAPABLE,
    reason: `quality_rater failed the output (below ${passingScore}/10); rewrite_fixer repairs it`,
  });
}

import { AgentSystem, type Agent } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import type { PlannedStep } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { checkAgents } from "./quality-gate.js";
import { plannerAgent } from "./v2-planner.js";

/**
 * stageOfDepartment orders the work of a plan: what a department produces is
 * what the later ones read. Analysis first, then strategy, then plans and
 * campaigns, then creative work, its distribution and finally the checks.
 * Departments not listed (none today) count as analysis.
 */
const stageOfDepartment: Readonly<Record<string, number>> = {
  orchestration: 0,
  customer_intelligence: 1,
  market_intelligence: 1,
  analytics: 1,
  memory_and_learning: 1,
  strategy: 2,
  offer_and_positioning: 2,
  execution: 3,
  moves_and_campaigns: 3,
  creative: 4,
  distribution: 5,
};

/** The checks come last: safety checks side by side, then the rating, then the rewrite it may ask for. */
const checkStage = 6;
const ratingStage = 7;
const rewriteStage = 8;
/** hybridOffset puts every V2 stage after every V1 stage: in a hybrid plan, V2 reads what V1 found. */
const hybridOffset = 10;

/** checkStageOf is the stage of a check step (brand safety, compliance, ethics; rating; rewrite), or undefined for any other step. */
function checkStageOf(id: string): number | undefined {
  if (id === "rewrite_fixer") return rewriteStage;
  if (id === "quality_rater") return ratingStage;
  return (checkAgents as readonly string[]).includes(id) ? checkStage : undefined;
}

/** stageOf is the stage of one step of a plan; in a sequential plan every step the caller named is a stage of its own. */
function stageOf(step: PlannedStep, index: number, agent: Agent | undefined, options: PlanShape): number {
  const check = checkStageOf(step.agent.slice("agents/".length));
  if (options.sequential) return check === undefined ? index : sequentialChecks + check;
  if (step.agent === plannerAgent) return 0;
  const stage = check ?? stageOfDepartment[agent?.department ?? ""] ?? 1;
  return options.hybrid && step.system === AgentSystem.V2 ? stage + hybridOffset : stage;
}

/** sequentialChecks puts the checks after every step a caller can name (at most 16). */
const sequentialChecks = 100;

/** PlanShape is what decides a plan's stages. */
export interface PlanShape {
  /** hybrid plans put every V2 step after every V1 step. */
  readonly hybrid: boolean;
  /** sequential plans (the caller named the agents) run the named steps in their order. */
  readonly sequential: boolean;
}

/**
 * readsOutputOf tells whether an agent's input names what another agent
 * produces: an input field that is the producer's id or the first words of
 * it (`icp` ← icp_builder, `cohort` ← cohort_builder, `plan` ← plan_generator,
 * `positioning` ← positioning_architect).
 */
function readsOutputOf(reader: Agent | undefined, producerId: string): boolean {
  const fields = Object.keys((reader?.inputSchema?.properties as Record<string, unknown> | undefined) ?? {});
  return fields.some((f) => f === producerId || producerId.startsWith(`${f}_`));
}

/**
 * withDependencies sets `depends_on` and `requires` on every step of a
 * plan, turning the ordered list into a small DAG the orchestrator runs with
 * independent steps side by side:
 *
 * - a step waits for the steps of the nearest earlier stage in the plan
 *   (stages: orchestration, analysis, strategy, plans and campaigns,
 *   creative, distribution, checks, rating, rewrite; in a hybrid plan every
 *   V2 stage comes after every V1 stage, so V2 reads V1's findings; in a
 *   sequential plan — the caller named the agents — each named step is a
 *   stage, so it waits for the one before it);
 * - a step also waits for an earlier step whose output its input names
 *   (cohort_builder's `icp` ← icp_builder), even within a stage;
 * - it `requires` the steps whose output its input names, and a check
 *   requires what it checks: when none of those succeeds it is skipped.
 *   Other dependencies only order the work: a V2 step whose V1 analysis
 *   failed still runs, from the request and whatever the context holds.
 *
 * Steps only ever wait for steps before them, so the graph has no cycle and
 * the plan's order is one valid order of it. Existing entries are replaced.
 * Returns the steps, changed in place.
 */
export function withDependencies(steps: PlannedStep[], agents: readonly Agent[], shape: PlanShape): PlannedStep[] {
  const byName = new Map(agents.map((a) => [a.name, a]));
  const stages = steps.map((s, i) => stageOf(s, i, byName.get(s.agent), shape));
  steps.forEach((step, i) => {
    const earlier = steps.slice(0, i).map((s, j) => ({ agent: s.agent, stage: stages[j] }));
    const below = earlier.filter((e) => e.stage < stages[i]);
    const nearest = Math.max(-1, ...below.map((e) => e.stage));
    const reader = byName.get(step.agent);
    const read = new Set(earlier.filter((e) => readsOutputOf(reader, e.agent.slice("agents/".length))).map((e) => e.agent));
    const waits = new Set([...below.filter((e) => e.stage === nearest).map((e) => e.agent), ...read]);
    const isCheck = checkStageOf(step.agent.slice("agents/".length)) !== undefined;
    const needed = isCheck ? waits : read;
    // In plan order; never itself (an agent runs once per run).
    step.dependsOn = earlier.map((e) => e.agent).filter((a) => waits.has(a) && a !== step.agent);
    step.requires = step.dependsOn.filter((a) => needed.has(a));
  });
  return steps;
}

/**
 * depthAfter is, for each step, the number of steps on the longest chain of
 * dependants that starts with it (itself included): how many steps must
 * still run one after another once it starts. A run's remaining time is
 * shared out by it.
 */
export function depthAfter(steps: readonly PlannedStep[]): number[] {
  const depth = steps.map(() => 1);
  const index = new Map(steps.map((s, i) => [s.agent, i]));
  // Dependencies point backwards, so one pass from the end settles every chain.
  for (let i = steps.length - 1; i >= 0; i--) {
    for (const d of steps[i].dependsOn) {
      const j = index.get(d);
      if (j !== undefined && j < i) depth[j] = Math.max(depth[j], depth[i] + 1);
    }
  }
  return depth;
}

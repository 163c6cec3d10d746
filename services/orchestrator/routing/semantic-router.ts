import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { AgentSystem, ModelTier, type Agent } from "../../../gen/raptorflow/agent/v1/agent_pb.js";
import { PlannedStepSchema, RouteDecisionSchema, RouteMode, Target, type PlannedStep } from "../../../gen/raptorflow/v3/orchestrator_pb.js";
import { createPriceTable } from "../../../platform/llm/prices.js";
import type { Router } from "../router.js";
import { createAgentIndex, inPlanOrder, systemName, type AgentMatch } from "./agent-index.js";
import { complexityOf } from "./complexity.js";
import type { LearnedExamples } from "./learned-examples.js";
import { estimatePlanCost, type Pricing } from "./plan-cost.js";
import { createRouteClassifier, type ClassifierParams, type Classification } from "./route-classifier.js";
import { routeExamples, type RouteExamples } from "./route-examples.js";
import { createTextEmbedder, type FeatureWeights } from "./text-embedding.js";
import { clauses, tasks, tokenize, type Clause } from "./text-features.js";

/** semanticRouterName names the router in decisions and capabilities. */
export const semanticRouterName = "semantic-v1";

/** offlinePricing prices plans at the offline provider's models, which cost nothing. */
export const offlinePricing: Pricing = { prices: createPriceTable({}), models: { fast: "offline-fast-1", capable: "offline-capable-1" } };

/** SemanticRouterOptions configure createSemanticRouter. */
export interface SemanticRouterOptions {
  /** learned are the examples learned from feedback (per organization); none when absent. */
  readonly learned?: LearnedExamples;
  /** pricing prices plans (default: the offline models, free). */
  readonly pricing?: Pricing;
  /**
   * capableThreshold is the step difficulty from which a step runs on the
   * capable model rather than the fast one (RouteLLM's threshold between a
   * weak and a strong model); default 0.5.
   */
  readonly capableThreshold?: number;
  /** examples replace the built-in route examples. */
  readonly examples?: readonly RouteExamples[];
  /** classifier and weights override the tuned defaults, for experiments. */
  readonly classifier?: Partial<ClassifierParams>;
  readonly weights?: Partial<FeatureWeights>;
}

/** agentFeatureWeights embed texts for choosing agents: words and bigrams, little of the concepts, nothing of the question form. */
export const agentFeatureWeights: Partial<FeatureWeights> = { concept: 0.3, question: 0, chars: 0.8 };

/** minTaskScore is the least nearness (0-1) at which a task's nearest agent joins the plan. */
const minTaskScore = 0.1;

/** depthFor is how many agents of each system a plan of this complexity runs. */
export function depthFor(complexity: number): number {
  return complexity >= 0.7 ? 3 : complexity >= 0.4 ? 2 : 1;
}

/**
 * stepDifficulty is how hard a step looks: mostly the request's complexity,
 * partly whether the agent's own default is the capable model.
 */
export function stepDifficulty(complexity: number, agent: Agent): number {
  return 0.7 * complexity + 0.3 * (agent.defaultModelTier === ModelTier.FAST ? 0 : 1);
}

const targetOfMode: Partial<Record<RouteMode, Target>> = { [RouteMode.V1]: Target.V1, [RouteMode.V2]: Target.V2, [RouteMode.HYBRID]: Target.HYBRID };
const targetName = (t: Target): string => (t === Target.HYBRID ? "hybrid" : t === Target.V1 ? "V1" : "V2");
const quote = (s: string, n = 70): string => `"${s.length > n ? `${s.slice(0, n - 1)}…` : s}"`;

/**
 * createSemanticRouter builds the default router ("semantic-v1") for a
 * catalog. It needs no network and no keys. The target comes from the
 * route classifier (example utterances per route on a local embedding, the
 * request's clauses, what the organization's feedback taught); the agents
 * are the catalog's nearest to each task the request asks for (in a hybrid
 * plan, analysis tasks to V1 and production tasks to V2), as many as the
 * complexity allows, in department order (V1 analysis first); each
 * step's model tier comes from its difficulty against a threshold; and the
 * plan is priced. A forced mode keeps its target; named agents are the plan.
 */
export function createSemanticRouter(agents: readonly Agent[], options: SemanticRouterOptions = {}): Router {
  const examples = options.examples ?? routeExamples;
  const corpus = [...examples.flatMap((r) => r.utterances), ...agents.flatMap((a) => [a.description, ...a.examples])];
  const embedder = createTextEmbedder({ corpus, weights: options.weights });
  const classifier = createRouteClassifier({ embedder, examples, learned: options.learned, params: options.classifier });
  // Agents are told apart by what they are about, not by the kind of act: few concept features.
  const index = createAgentIndex(agents, createTextEmbedder({ corpus, weights: agentFeatureWeights }));
  const byName = new Map(agents.map((a) => [a.name, a]));
  const pricing = options.pricing ?? offlinePricing;
  const threshold = options.capableThreshold ?? 0.5;
  const planner = byName.get("agents/orchestrator");

  const step = (a: Agent, complexity: number, reason: string): MessageInitShape<typeof PlannedStepSchema> => {
    const d = stepDifficulty(complexity, a);
    const tier = d >= threshold ? ModelTier.CAPABLE : ModelTier.FAST;
    return { agent: a.name, system: a.system, modelTier: tier, reason: `${reason}; ${tier === ModelTier.CAPABLE ? "capable" : "fast"} model (difficulty ${d.toFixed(2)})` };
  };

  /**
   * pick chooses a system's agents: the nearest agent of each task that
   * names one clearly (one agent per thing asked), the nearest first when
   * there are more than `depth`, in department order; the whole text's
   * nearest agent when no task names one.
   */
  const pick = (system: AgentSystem, parts: readonly Clause[], whole: string, depth: number): (AgentMatch & { task: string })[] => {
    const picks = new Map<string, AgentMatch & { task: string }>();
    for (const t of parts) {
      if (tokenize(t.text).length === 0) continue;
      const m = index.nearest(system, t.text)[0];
      if (!m || m.score < minTaskScore) continue;
      const prev = picks.get(m.agent.name);
      if (!prev || prev.score < m.score) picks.set(m.agent.name, { ...m, task: t.text });
    }
    if (picks.size === 0) {
      const m = index.nearest(system, whole)[0];
      if (m) picks.set(m.agent.name, { ...m, task: whole });
    }
    return inPlanOrder([...picks.values()].sort((x, y) => y.score - x.score).slice(0, depth));
  };

  const costOf = (steps: readonly PlannedStep[], input: string) => estimatePlanCost(steps, byName, input, pricing);

  return {
    name: semanticRouterName,
    estimateCost: (decision, input) => costOf(decision.steps, input).usd,
    learn: (feedback) => options.learned?.add(feedback),
    route(req) {
      const parts = clauses(req.input);
      if (req.agents.length > 0) {
        const named = req.agents.map((name, i) => {
          const a = byName.get(name);
          if (!a) throw new ConnectError(`agents[${i}]: "${name}" is in neither catalog`, Code.InvalidArgument);
          return a;
        });
        const systems = new Set(named.map((a) => a.system));
        const target = systems.size > 1 ? Target.HYBRID : systems.has(AgentSystem.V1) ? Target.V1 : Target.V2;
        const complexity = complexityOf(req.input, parts, target === Target.HYBRID);
        const steps = named.map((a) => create(PlannedStepSchema, step(a, complexity.score, "named by the caller")));
        const cost = costOf(steps, req.input);
        return create(RouteDecisionSchema, {
          target,
          steps,
          complexity: complexity.score,
          confidence: 1,
          reasons: ["the caller named the agents", `complexity ${complexity.score.toFixed(2)}`, costReason(cost, pricing)],
          router: semanticRouterName,
          estimatedCostUsd: cost.usd,
        });
      }

      const reasons: string[] = [];
      const content = tokenize(req.input).length;
      const c: Classification = classifier.classify(req.input, req.organization, parts);
      const forced = targetOfMode[req.mode];
      let target: Target = forced ?? c.target;
      let confidence = forced ? 1 : c.confidence;
      if (forced) {
        reasons.push(`the caller forced ${targetName(forced)} (the router would have chosen ${targetName(c.target)})`);
      } else if (content === 0) {
        target = Target.V2;
        confidence = 0;
        reasons.push("the request has no words to route on: V2's orchestration agent interprets it");
      } else {
        reasons.push(explain(c));
      }
      if (!forced && content > 0 && c.nearest) {
        reasons.push(
          `${c.learned ? "learned from feedback" : "nearest example"}: ${quote(c.nearest.text)} (${targetName(c.nearest.target)}${c.nearest.learned ? ", from feedback" : ""}, similarity ${c.nearest.similarity.toFixed(2)})`,
        );
      }

      const hybrid = target === Target.HYBRID;
      const complexity = complexityOf(req.input, parts, hybrid);
      const depth = depthFor(complexity.score);
      reasons.push(`complexity ${complexity.score.toFixed(2)}${complexity.parts.length ? ` (${complexity.parts.join(", ")})` : ""}: up to ${depth} agent(s) per system`);

      // One agent per task; in a hybrid plan each task goes to the side it leans to (analysis: V1, production: V2).
      const asked = tasks(req.input);
      // A task that is a whole clause already has its lean.
      const leanOfClause = new Map(c.clauses.map((x) => [x.text, x.lean]));
      const leans = hybrid ? asked.map((t) => leanOfClause.get(t.text) ?? classifier.leanOf(t.text, t.act)) : [];
      const steps: PlannedStep[] = [];
      const add = (system: AgentSystem, parts: readonly Clause[]) => {
        for (const m of pick(system, parts, req.input, depth)) {
          steps.push(create(PlannedStepSchema, step(m.agent, complexity.score, `nearest ${systemName(system)} agent for ${quote(m.task, 50)} (${m.score.toFixed(2)})`)));
        }
      };
      if (content === 0 && !forced && planner) {
        steps.push(create(PlannedStepSchema, step(planner, complexity.score, "interprets a request the router cannot place")));
      } else {
        if (target === Target.V1 || hybrid) add(AgentSystem.V1, hybrid ? asked.filter((_, i) => leans[i] > 0) : asked);
        if (target === Target.V2 || hybrid) add(AgentSystem.V2, hybrid ? asked.filter((_, i) => leans[i] <= 0) : asked);
      }
      if (steps.length === 0) throw new ConnectError("no agents are available to route to", Code.Unavailable);
      const cost = costOf(steps, req.input);
      reasons.push(costReason(cost, pricing));
      return create(RouteDecisionSchema, {
        target,
        steps,
        complexity: complexity.score,
        confidence: Math.round(confidence * 1000) / 1000,
        reasons,
        router: semanticRouterName,
        estimatedCostUsd: cost.usd,
      });
    },
  };
}

/** explain says in words why the classifier chose its target. */
function explain(c: Classification): string {
  const s = `V1 ${c.scores.v1.toFixed(2)}, V2 ${c.scores.v2.toFixed(2)}, hybrid ${c.scores.hybrid.toFixed(2)}`;
  const side = (lean: number) => (lean > 0 ? "analysis" : "production");
  const parts = c.clauses.length > 1 ? `; clauses: ${c.clauses.map((x) => `${quote(x.text, 40)} → ${side(x.lean)}`).join(", ")}` : "";
  if (c.learned) return `an example learned from this organization's feedback decides (${s})`;
  if (c.target === Target.HYBRID) return `hybrid: the request asks for analysis and for production (${s})${parts}`;
  return `${targetName(c.target)}: its examples are nearest (${s})${parts}`;
}

/** costReason says what the plan is estimated to cost and at which models. */
function costReason(cost: { inputTokens: number; outputTokens: number; usd: number }, pricing: Pricing): string {
  return `estimated cost $${cost.usd.toFixed(4)}: about ${cost.inputTokens} input and ${cost.outputTokens} output tokens (fast ${pricing.models.fast}, capable ${pricing.models.capable})`;
}

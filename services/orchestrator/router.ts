import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { AgentSystem, ModelTier, type Agent } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import {
  RouteDecisionSchema,
  RouteMode,
  Target,
  type PlannedStepSchema,
  type RouteDecision,
} from "../../gen/raptorflow/v3/orchestrator_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";

/** RouteRequest is what the router decides on. */
export interface RouteRequest {
  /** input is the user's request. */
  readonly input: string;
  /** mode forces the target. */
  readonly mode: RouteMode;
  /** agents name the plan explicitly, for example `agents/icp_builder`. */
  readonly agents: readonly string[];
  /** organization selects what the router learned from that organization's feedback; none when absent. */
  readonly organization?: string;
}

/** RouteFeedback is feedback naming the target a run's request should have taken. */
export interface RouteFeedback {
  /** organization is whose run it was. */
  readonly organization: string;
  /** input is the run's request. */
  readonly input: string;
  /** target is the right target. */
  readonly target: Target;
}

/** Router decides where a request goes. */
export interface Router {
  /** name identifies the router in decisions, for example `semantic-v1`. */
  readonly name: string;
  /** route returns the decision; an unknown explicit agent is INVALID_ARGUMENT. */
  route(req: RouteRequest): RouteDecision;
  /** estimateCost re-estimates a plan's cost in US dollars after steps were added to it (planning, checks). */
  estimateCost?(decision: RouteDecision, input: string): number;
  /** learn takes feedback naming a run's right target; later requests like it route there. */
  learn?(feedback: RouteFeedback): void;
  /** refine may revise a decision asynchronously (asking a model when unsure), within its own small time budget. */
  refine?(req: RouteRequest, decision: RouteDecision): Promise<RouteDecision>;
}

const stop = new Set(
  "a an and are as at be by can could do for from give how i in into is it its me my need of on or our please should so some that the their them then this to us want we what when which who why will with would you your".split(
    " ",
  ),
);

/** tokens splits text into lower-case content words, with a light plural fold. */
export function tokens(text: string): string[] {
  return (text.toLowerCase().match(/[a-z][a-z0-9]+/g) ?? [])
    .filter((w) => !stop.has(w))
    .map((w) => (w.length > 4 && w.endsWith("s") && !w.endsWith("ss") ? w.slice(0, -1) : w));
}

interface Profile {
  readonly agent: Agent;
  readonly weights: Map<string, number>;
}

/**
 * createKeywordRouter is the first, simple router ("keyword-v0"): it scores
 * every agent by the overlap of the request's words with the words of the
 * agent's name, description and example requests (rarer words weigh more),
 * picks the best system, and goes hybrid when both systems score well. The
 * semantic router (routing/semantic-router.ts) replaced it; it stays as the
 * baseline the evaluation and the benchmark compare against.
 */
export function createKeywordRouter(agents: readonly Agent[]): Router {
  const docs = agents.map((a) => ({ agent: a, words: tokens([a.displayName, a.description, ...a.examples, a.name.slice(7).replaceAll("_", " ")].join(" ")) }));
  const df = new Map<string, number>();
  for (const d of docs) for (const w of new Set(d.words)) df.set(w, (df.get(w) ?? 0) + 1);
  // BM25 weights: rarer words weigh more, repeated words saturate, and long
  // agent descriptions do not win by length alone.
  const avgLen = docs.reduce((n, d) => n + d.words.length, 0) / Math.max(1, docs.length);
  const k1 = 1.2;
  const b = 0.75;
  const profiles: Profile[] = docs.map((d) => {
    const tf = new Map<string, number>();
    for (const w of d.words) tf.set(w, (tf.get(w) ?? 0) + 1);
    const weights = new Map<string, number>();
    for (const [w, f] of tf) {
      const idf = Math.log(1 + (docs.length - (df.get(w) ?? 0) + 0.5) / ((df.get(w) ?? 0) + 0.5));
      weights.set(w, (idf * f * (k1 + 1)) / (f + k1 * (1 - b + (b * d.words.length) / avgLen)));
    }
    return { agent: d.agent, weights };
  });
  const byName = new Map(agents.map((a) => [a.name, a]));

  const step = (a: Agent, tier: ModelTier, reason: string): MessageInitShape<typeof PlannedStepSchema> => ({
    agent: a.name,
    system: a.system,
    modelTier: tier,
    reason,
  });

  return {
    name: "keyword-v0",
    route(req) {
      const words = tokens(req.input);
      const complexity = Math.min(1, words.length / 60 + (req.input.match(/\b(and|then|also|plus)\b/gi)?.length ?? 0) * 0.1);
      const tier = complexity >= 0.5 ? ModelTier.CAPABLE : ModelTier.FAST;
      if (req.agents.length > 0) {
        const steps = req.agents.map((name, i) => {
          const a = byName.get(name);
          if (!a) throw new ConnectError(`agents[${i}]: "${name}" is in neither catalog`, Code.InvalidArgument);
          return step(a, tier, "named by the caller");
        });
        const systems = new Set(steps.map((s) => s.system));
        const target = systems.size > 1 ? Target.HYBRID : systems.has(AgentSystem.V1) ? Target.V1 : Target.V2;
        return create(RouteDecisionSchema, {
          target,
          steps,
          complexity,
          confidence: 1,
          reasons: ["the caller named the agents"],
          router: "keyword-v0",
        });
      }
      const scored = profiles
        .map((p) => ({ agent: p.agent, score: words.reduce((s, w) => s + (p.weights.get(w) ?? 0), 0) }))
        .sort((x, y) => y.score - x.score);
      const best = (system: AgentSystem) => scored.find((s) => s.agent.system === system);
      const v1 = best(AgentSystem.V1);
      const v2 = best(AgentSystem.V2);
      const v1Score = v1?.score ?? 0;
      const v2Score = v2?.score ?? 0;
      const total = v1Score + v2Score;
      let target: Target;
      const reasons: string[] = [];
      if (req.mode !== RouteMode.UNSPECIFIED) {
        target = req.mode === RouteMode.V1 ? Target.V1 : req.mode === RouteMode.V2 ? Target.V2 : Target.HYBRID;
        reasons.push("the caller forced the mode");
      } else if (total === 0) {
        target = Target.V2;
        reasons.push("no agent matched the request's words; defaulting to the V2 orchestration agent");
      } else if (Math.min(v1Score, v2Score) / Math.max(v1Score, v2Score) > 0.8 && complexity >= 0.3) {
        target = Target.HYBRID;
        reasons.push("both systems match the request about equally and it has several parts");
      } else {
        target = v1Score >= v2Score ? Target.V1 : Target.V2;
      }
      const fallbackV2 = byName.get("agents/orchestrator");
      const pick = (s: { agent: Agent; score: number } | undefined, fallback?: Agent): Agent | undefined =>
        s && s.score > 0 ? s.agent : (fallback ?? s?.agent);
      const steps: MessageInitShape<typeof PlannedStepSchema>[] = [];
      if (target === Target.V1 || target === Target.HYBRID) {
        const a = pick(v1);
        if (a) steps.push(step(a, tier, `best V1 match (score ${v1Score.toFixed(2)})`));
      }
      if (target === Target.V2 || target === Target.HYBRID) {
        const a = pick(v2, fallbackV2);
        if (a) steps.push(step(a, tier, `best V2 match (score ${v2Score.toFixed(2)})`));
      }
      if (steps.length === 0) throw new ConnectError("no agents are available to route to", Code.Unavailable);
      reasons.push(`V1 score ${v1Score.toFixed(2)}, V2 score ${v2Score.toFixed(2)}`);
      return create(RouteDecisionSchema, {
        target,
        steps,
        complexity,
        confidence: total === 0 ? 0 : Math.max(v1Score, v2Score) / total,
        reasons,
        router: "keyword-v0",
        estimatedCostUsd: 0,
      });
    },
  };
}

import { Target } from "../../../gen/raptorflow/v3/orchestrator_pb.js";
import type { RouteFeedback } from "../router.js";

/**
 * LearnedExample is a request a user said belongs on a route: feedback
 * naming a run's correct target. It steers only its organization's requests.
 */
export type LearnedExample = RouteFeedback;

/**
 * LearnedExamples are the route examples learned from feedback, per
 * organization. They outlive the routers built on them: the orchestrator
 * builds a new router whenever the agent catalogs change, and every router
 * reads the same learned examples.
 */
export interface LearnedExamples {
  /** add learns one example; a later example for the same organization and input replaces the earlier one. */
  add(example: LearnedExample): void;
  /** of returns an organization's examples, oldest first. */
  of(organization: string): readonly LearnedExample[];
}

/** LearnedExamplesOptions configure createLearnedExamples. */
export interface LearnedExamplesOptions {
  /** maxPerOrganization bounds each organization's examples; the oldest go first (default 2000). */
  readonly maxPerOrganization?: number;
}

/** routable are the targets an example can teach. */
const routable = new Set([Target.V1, Target.V2, Target.HYBRID]);

/** createLearnedExamples keeps learned examples in memory; replayRouteFeedback fills it from the run store at start-up. */
export function createLearnedExamples(options: LearnedExamplesOptions = {}): LearnedExamples {
  const max = options.maxPerOrganization ?? 2000;
  const byOrg = new Map<string, Map<string, LearnedExample>>();
  return {
    add(example) {
      if (!routable.has(example.target) || example.input.trim() === "") return;
      const mine = byOrg.get(example.organization) ?? new Map<string, LearnedExample>();
      byOrg.set(example.organization, mine);
      // Delete first, so the replaced example moves to the newest end.
      mine.delete(example.input);
      mine.set(example.input, example);
      while (mine.size > max) mine.delete(mine.keys().next().value!);
    },
    of(organization) {
      return [...(byOrg.get(organization)?.values() ?? [])];
    },
  };
}

/** RouteFeedbackSource gives every stored feedback that names a target, oldest first (the run store does). */
export interface RouteFeedbackSource {
  /** listRouteFeedback lists, over all organizations, the feedback that names a run's correct target. */
  listRouteFeedback(): Promise<LearnedExample[]>;
}

/** replayRouteFeedback learns every stored route feedback, oldest first; it returns how many it learned. */
export async function replayRouteFeedback(source: RouteFeedbackSource, learned: LearnedExamples): Promise<number> {
  const all = await source.listRouteFeedback();
  for (const e of all) learned.add(e);
  return all.length;
}

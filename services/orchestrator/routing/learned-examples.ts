import { Target } from "../../../gen/raptorflow/v3/orchestrator_pb.js";
import type { KeyValueStore } from "../../../platform/kv/kv-store.js";
import { logger } from "../../../mesh/logger.js";
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

/** learnedChannel is the channel on which orchestrator instances tell each other what feedback taught them. */
export const learnedChannel = "rf:route-feedback";

/**
 * shareLearnedExamples makes every orchestrator instance learn feedback any
 * of them receives, at once rather than at its next start: `add` learns
 * locally and publishes the example on the key-value store's channel (Redis
 * pub/sub across instances), and examples published by other instances are
 * learned as they arrive (learning one twice changes nothing). A publish that
 * fails is logged; the feedback is stored either way, and replayed at
 * start-up. Start-up waits at most 2 s for the subscription.
 */
export async function shareLearnedExamples(
  learned: LearnedExamples,
  kv: Pick<KeyValueStore, "publish" | "subscribe">,
  warn: (m: string) => void = (m) => logger("learned-examples").warn(m),
): Promise<LearnedExamples & { close(): Promise<void> }> {
  let stop: (() => Promise<void>) | undefined;
  const subscribed = kv.subscribe(learnedChannel, (m) => {
    try {
      const e = JSON.parse(m) as { organization?: unknown; input?: unknown; target?: unknown };
      if (typeof e.organization === "string" && typeof e.input === "string" && typeof e.target === "number") {
        learned.add({ organization: e.organization, input: e.input, target: e.target as Target });
      }
    } catch (err) {
      warn(`ignored a malformed route example on ${learnedChannel}: ${(err as Error).message}`);
    }
  }).then(
    (s) => (stop = s),
    (err: unknown) => warn(`this instance learns other instances' feedback only at its next start: ${(err as Error).message}`),
  );
  // Start-up does not wait on a Redis that is down: the subscription completes when it can.
  await Promise.race([subscribed, new Promise((r) => setTimeout(r, 2_000).unref())]);
  return {
    add(example) {
      learned.add(example);
      kv.publish(learnedChannel, JSON.stringify(example)).catch((err: unknown) =>
        warn(`other orchestrator instances learn this feedback at their next start: ${(err as Error).message}`),
      );
    },
    of: (organization) => learned.of(organization),
    close: async () => {
      await stop?.();
    },
  };
}

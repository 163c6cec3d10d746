import { createClient, createRouterTransport, type ServiceImpl } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AgentService } from "../../../gen/raptorflow/agent/v1/agent_pb.js";
import { OrchestratorService, Target } from "../../../gen/raptorflow/v3/orchestrator_pb.js";
import { organizationHeader } from "../../../mesh/call-context.js";
import { createMemoryKeyValueStore } from "../../../platform/kv/memory-kv-store.js";
import { createOrchestratorImpl } from "../orchestrator-service.js";
import { createRunEvents } from "../run-events.js";
import { createMemoryRunStore, type RunStore } from "../run-store.js";
import { createSharedContext } from "../shared-context.js";
import { createLearnedExamples, replayRouteFeedback, shareLearnedExamples, type LearnedExamples } from "./learned-examples.js";
import { createRedisKeyValueStore } from "../../../platform/kv/redis-kv-store.js";
import { redisAvailable, redisUrl } from "../../../test/support/databases.js";
import { catalogAgents } from "./route-eval.js";
import { createSemanticRouter } from "./semantic-router.js";

const agents = catalogAgents();

/** orchestrator is the real orchestrator on a run store, with fake agents that always succeed. */
function orchestrator(store: RunStore, learned: LearnedExamples) {
  const fake: ServiceImpl<typeof AgentService> = {
    listAgents: () => ({ agents }),
    getAgent: (req) => agents.find((a) => a.name === req.name)!,
    runAgent: (req) => ({ agent: req.name, output: { note: "done" }, provider: "fake", usage: {} }),
    async *streamAgent() {},
  };
  const client = createClient(AgentService, createRouterTransport(({ service }) => service(AgentService, fake)));
  const kv = createMemoryKeyValueStore();
  const impl = createOrchestratorImpl({
    agents: { v1: client, v2: client },
    catalog: async () => agents,
    router: (a) => createSemanticRouter(a, { learned }),
    store,
    context: createSharedContext(kv, store, 60_000),
    events: createRunEvents(kv),
  });
  return createClient(OrchestratorService, createRouterTransport(({ service }) => service(OrchestratorService, impl)));
}

const as = (org: string) => ({ headers: { [organizationHeader]: org } });

describe("route feedback", () => {
  // Ambiguous on purpose: the router sends it to V1; this organization means its email marketing.
  const input = "Look at our email program";
  const similar = "Look at our email programme";

  it("teaches the router: after feedback naming the right target, the same and similar requests route there, for that organization only", async () => {
    const store = createMemoryRunStore();
    const orch = orchestrator(store, createLearnedExamples());
    const before = await orch.explainRoute({ input }, as("acme"));
    expect(before.target).toBe(Target.V1);

    const run = await orch.createRun({ input }, as("acme"));
    expect(run.route?.target).toBe(Target.V1);
    const feedback = await orch.createFeedback({ parent: run.name, feedback: { rating: 2, comment: "we meant the emails", correctTarget: Target.V2 } }, as("acme"));
    expect(feedback.correctTarget).toBe(Target.V2);

    const after = await orch.explainRoute({ input }, as("acme"));
    expect(after.target).toBe(Target.V2);
    expect(after.reasons.join(" ")).toContain("learned from feedback");
    expect((await orch.explainRoute({ input: similar }, as("acme"))).target).toBe(Target.V2);
    expect((await orch.createRun({ input: similar }, as("acme"))).route?.target).toBe(Target.V2);
    // Another organization's requests are not steered by it.
    expect((await orch.explainRoute({ input }, as("globex"))).target).toBe(Target.V1);
    // Feedback that names no target teaches nothing.
    const other = await orch.createRun({ input: "Rank our stores by gross margin" }, as("acme"));
    await orch.createFeedback({ parent: other.name, feedback: { rating: 5 } }, as("acme"));
    expect((await store.listRouteFeedback()).map((f) => f.input)).toEqual([input]);
  });

  it("is replayed from the store at start-up", async () => {
    const store = createMemoryRunStore();
    const first = orchestrator(store, createLearnedExamples());
    const run = await first.createRun({ input }, as("acme"));
    await first.createFeedback({ parent: run.name, feedback: { rating: 1, correctTarget: Target.V2 } }, as("acme"));

    // A new orchestrator on the same store: what it learned comes back from the stored feedback.
    const learned = createLearnedExamples();
    expect(await replayRouteFeedback(store, learned)).toBe(1);
    const restarted = orchestrator(store, learned);
    expect((await restarted.explainRoute({ input }, as("acme"))).target).toBe(Target.V2);
    expect((await orchestrator(store, createLearnedExamples()).explainRoute({ input }, as("acme"))).target).toBe(Target.V1);
  });

  it("keeps the latest target for a request and a bounded number of examples per organization", () => {
    const learned = createLearnedExamples({ maxPerOrganization: 2 });
    learned.add({ organization: "acme", input: "a", target: Target.V1 });
    learned.add({ organization: "acme", input: "b", target: Target.V1 });
    learned.add({ organization: "acme", input: "a", target: Target.HYBRID });
    learned.add({ organization: "acme", input: "c", target: Target.V2 });
    learned.add({ organization: "acme", input: "d", target: Target.UNSPECIFIED });
    expect(learned.of("acme")).toEqual([
      { organization: "acme", input: "a", target: Target.HYBRID },
      { organization: "acme", input: "c", target: Target.V2 },
    ]);
    expect(learned.of("globex")).toEqual([]);
  });

  it("teaches every running instance at once: two orchestrators on one Redis, feedback given to one steers the other", async (ctx) => {
    if (!(await redisAvailable("route feedback shared over Redis"))) return ctx.skip();
    // Two instances, each with its own Redis connections and its own learned examples, on one run store.
    const kvs = [createRedisKeyValueStore(redisUrl()), createRedisKeyValueStore(redisUrl())];
    const [a, b] = await Promise.all(kvs.map((kv) => shareLearnedExamples(createLearnedExamples(), kv)));
    try {
      const store = createMemoryRunStore();
      const org = `shared-${Date.now()}`;
      const one = orchestrator(store, a);
      const two = orchestrator(store, b);
      expect((await two.explainRoute({ input }, as(org))).target).toBe(Target.V1);
      const run = await one.createRun({ input }, as(org));
      await one.createFeedback({ parent: run.name, feedback: { rating: 2, correctTarget: Target.V2 } }, as(org));
      // The other instance learns it from the channel, without a restart.
      let target = Target.V1;
      for (let i = 0; i < 100 && target !== Target.V2; i++) {
        target = (await two.explainRoute({ input }, as(org))).target;
        if (target !== Target.V2) await new Promise((r) => setTimeout(r, 20));
      }
      expect(target).toBe(Target.V2);
      expect(b.of(org)).toEqual([{ organization: org, input, target: Target.V2 }]);
    } finally {
      await a.close();
      await b.close();
      await Promise.all(kvs.map((kv) => kv.close()));
    }
  });

  it("a malformed message on the channel is ignored with a warning, and learning goes on", async () => {
    const kv = createMemoryKeyValueStore();
    const warnings: string[] = [];
    const learned = await shareLearnedExamples(createLearnedExamples(), kv, (m) => warnings.push(m));
    await kv.publish("rf:route-feedback", "{not json");
    await kv.publish("rf:route-feedback", JSON.stringify({ organization: "acme", input: "Look at our funnel", target: Target.HYBRID }));
    // Delivery is asynchronous, even in process: wait until the good message has arrived.
    for (let i = 0; i < 100 && learned.of("acme").length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(warnings).toHaveLength(1);
    expect(learned.of("acme")).toEqual([{ organization: "acme", input: "Look at our funnel", target: Target.HYBRID }]);
    await learned.close();
  });
});

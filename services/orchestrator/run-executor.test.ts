import { create, type JsonObject } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  createContextValues,
  createHandlerContext,
  createRouterTransport,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AgentService, AgentSystem, type RunAgentRequest } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { Checks, CreateRunRequestSchema, OrchestratorService, PlannedStepSchema, RouteMode, Run_State, type RunEvent } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { toAgentMessage } from "../../platform/agents/agent-service.js";
import { loadCatalog } from "../../platform/agents/catalog.js";
import { createMemoryKeyValueStore } from "../../platform/kv/memory-kv-store.js";
import { createMeshServer } from "../../mesh/grpc-server.js";
import { createGrpcTransport } from "../../mesh/grpc-transport.js";
import { createOrchestratorImpl } from "./orchestrator-service.js";
import { depthAfter, withDependencies } from "./plan-graph.js";
import { createSemanticRouter } from "./routing/semantic-router.js";
import { createRunEvents } from "./run-events.js";
import { createMemoryRunStore } from "./run-store.js";
import { createSharedContext } from "./shared-context.js";

const agents = [...loadCatalog("services/v1-agents").agents, ...loadCatalog("services/v2-agents").agents].map(toAgentMessage);
const systemOf = (name: string) => agents.find((a) => a.name === name)!.system;
const plan = (...names: string[]) => names.map((n) => create(PlannedStepSchema, { agent: `agents/${n}`, system: systemOf(`agents/${n}`) }));
const deps = (steps: ReturnType<typeof plan>) => Object.fromEntries(steps.map((s) => [s.agent.slice(7), s.dependsOn.map((d) => d.slice(7))]));

/** Behaviour is how a fake agent answers: its output, or an error, after the test releases it. */
type Behaviour = { output?: JsonObject; fail?: Code };

/**
 * harness wires the real orchestrator to fake agent services whose calls
 * wait until the test releases them, so a test sees which calls are in
 * flight together and what context each received.
 */
function harness(behaviours: Record<string, Behaviour> = {}, options: { hold?: boolean; storeDown?: () => boolean } = {}) {
  const inFlight = new Set<string>();
  let most = 0;
  const seen: { agent: string; context: JsonObject; with: string[]; timeoutMs?: number }[] = [];
  const waiting = new Map<string, () => void>();
  const started: string[] = [];
  const fake: ServiceImpl<typeof AgentService> = {
    listAgents: () => ({ agents }),
    getAgent: (req) => agents.find((a) => a.name === req.name)!,
    async runAgent(req: RunAgentRequest, ctx: HandlerContext) {
      inFlight.add(req.name);
      started.push(req.name);
      most = Math.max(most, inFlight.size);
      seen.push({ agent: req.name, context: (req.context ?? {}) as JsonObject, with: [...inFlight].filter((a) => a !== req.name), timeoutMs: ctx.timeoutMs() });
      if (options.hold) await new Promise<void>((resolve) => waiting.set(req.name, resolve));
      inFlight.delete(req.name);
      const b = behaviours[req.name] ?? {};
      if (b.fail !== undefined) throw new ConnectError(`${req.name} is down`, b.fail);
      const output = b.output ?? { from: req.name, read: Object.keys(req.context ?? {}).sort().join(",") };
      return { agent: req.name, output, summary: `${req.name} answered`, provider: "fake", usage: { inputTokens: 1n, outputTokens: 1n, calls: 1 } };
    },
    async *streamAgent(req, ctx) {
      yield { event: { case: "result", value: await fake.runAgent(req, ctx) } };
    },
  };
  const client = createClient(AgentService, createRouterTransport(({ service }) => service(AgentService, fake)));
  const kv = createMemoryKeyValueStore();
  const memory = createMemoryRunStore();
  // A store whose writes fail while the test says the database is down.
  const store: typeof memory = {
    ...memory,
    save: (org, run) => (options.storeDown?.() ? Promise.reject(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })) : memory.save(org, run)),
  };
  const impl = createOrchestratorImpl({
    retrySaveMs: 10,
    agents: { v1: client, v2: client },
    catalog: async () => agents,
    router: (catalog) => createSemanticRouter(catalog),
    store,
    context: createSharedContext(kv, store, 60_000),
    events: createRunEvents(kv),
  });
  const orch = createClient(OrchestratorService, createRouterTransport(({ service }) => service(OrchestratorService, impl)));
  /** release lets the named agent's call answer, once it has started. */
  const release = async (name: string): Promise<void> => {
    while (!waiting.has(`agents/${name}`)) await new Promise((r) => setTimeout(r, 2));
    waiting.get(`agents/${name}`)!();
    waiting.delete(`agents/${name}`);
  };
  /** waitFor resolves when every named agent has started. */
  const waitFor = async (...names: string[]): Promise<void> => {
    while (!names.every((n) => started.includes(`agents/${n}`))) await new Promise((r) => setTimeout(r, 2));
  };
  return { impl, orch, store, seen, release, waitFor, started, concurrency: () => most };
}

const hybridPlan = ["icp_builder", "competitor_surface", "positioning_architect", "copywriter"].map((a) => `agents/${a}`);

describe("a plan as a DAG", () => {
  it("runs independent steps together and dependants after them; V1 steps first in a hybrid plan", () => {
    const steps = withDependencies(plan("icp_builder", "competitor_surface", "positioning_architect", "copywriter", "brand_safety", "compliance", "quality_rater"), agents, {
      hybrid: true,
      sequential: false,
    });
    expect(deps(steps)).toEqual({
      icp_builder: [],
      competitor_surface: [],
      positioning_architect: ["icp_builder", "competitor_surface"],
      copywriter: ["positioning_architect"],
      brand_safety: ["copywriter"],
      compliance: ["copywriter"],
      quality_rater: ["brand_safety", "compliance"],
    });
    // A check needs what it checks; a V2 step does not need V1's analysis to run.
    expect(steps[4].requires).toEqual(["agents/copywriter"]);
    expect(steps[2].requires).toEqual([]);
    expect(depthAfter(steps)).toEqual([5, 5, 4, 3, 2, 2, 1]);
  });

  it("waits for a step whose output the input names, even within a stage; named agents run in the caller's order", () => {
    const steps = withDependencies(plan("icp_builder", "cohort_builder", "trend_scraper"), agents, { hybrid: false, sequential: false });
    expect(deps(steps)).toEqual({ icp_builder: [], cohort_builder: ["icp_builder"], trend_scraper: [] });
    expect(steps[1].requires).toEqual(["agents/icp_builder"]);
    const named = withDependencies(plan("trend_scraper", "icp_builder", "copywriter", "brand_safety"), agents, { hybrid: false, sequential: true });
    expect(deps(named)).toEqual({ trend_scraper: [], icp_builder: ["trend_scraper"], copywriter: ["icp_builder"], brand_safety: ["copywriter"] });
  });

  it("ExplainRoute shows each step's dependencies", async () => {
    const { orch } = harness();
    const d = await orch.explainRoute({ input: "Position us against our competitors and write the launch copy", mode: RouteMode.HYBRID });
    const v1 = d.steps.filter((s) => s.system === AgentSystem.V1).map((s) => s.agent);
    const firstV2 = d.steps.find((s) => s.system === AgentSystem.V2)!;
    expect(v1.length).toBeGreaterThan(0);
    expect(firstV2.dependsOn).toEqual(v1);
  });
});

describe("running a DAG", () => {
  it("named agents run one after another, each reading every earlier step's output from the shared context", async () => {
    const h = harness();
    const done = await h.orch.createRun({ input: "Position us and write the copy", agents: hybridPlan, checks: Checks.OFF });
    expect(h.concurrency()).toBe(1);
    expect(done.state).toBe(Run_State.SUCCEEDED);
    expect(h.seen.find((s) => s.agent === "agents/copywriter")!.context).toMatchObject({
      icp_builder: { from: "agents/icp_builder" },
      competitor_surface: { from: "agents/competitor_surface" },
      positioning_architect: { from: "agents/positioning_architect", read: "competitor_surface,icp_builder" },
    });
  });

  it("a routed hybrid plan runs its independent V1 steps at the same time, and V2 waits for both", async () => {
    const h = harness({}, { hold: true });
    const input = "Build our ICP and map our competitors, then write the launch copy for the campaign";
    const d = await h.orch.explainRoute({ input, mode: RouteMode.HYBRID, checks: Checks.OFF });
    const v1 = d.steps.filter((s) => s.system === AgentSystem.V1).map((s) => s.agent.slice(7));
    const v2 = d.steps.filter((s) => s.system === AgentSystem.V2).map((s) => s.agent.slice(7));
    expect(v1.length).toBeGreaterThanOrEqual(2);
    const run = h.orch.createRun({ input, mode: RouteMode.HYBRID, checks: Checks.OFF });
    // Every V1 step is in flight before any is released.
    await h.waitFor(...v1);
    expect(h.started.filter((a) => v2.includes(a.slice(7)))).toEqual([]);
    for (const a of v1) await h.release(a);
    for (const a of v2) {
      await h.waitFor(a);
      await h.release(a);
    }
    const done = await run;
    expect(done.state).toBe(Run_State.SUCCEEDED);
    expect(h.concurrency()).toBeGreaterThanOrEqual(2);
    // The first V2 step saw every V1 result, and the run's output has every step's.
    const firstV2 = h.seen.find((s) => s.agent === `agents/${v2[0]}`)!;
    expect(Object.keys(firstV2.context).sort()).toEqual([...v1].sort());
    expect(Object.keys(done.output ?? {}).sort()).toEqual([...v1, ...v2].sort());
  });

  it("one side failing ends the run PARTIAL: the failed step's error kept, the other side's outputs intact", async () => {
    const h = harness({ "agents/competitor_surface": { fail: Code.Unavailable } });
    const run = await h.orch.createRun({ input: "Map our competitors and write the launch copy", agents: [], mode: RouteMode.HYBRID, checks: Checks.OFF });
    const byAgent = Object.fromEntries(run.steps.map((s) => [s.agent.slice(7), s]));
    if (!byAgent.competitor_surface) return expect.fail(`the plan has no competitor_surface: ${run.steps.map((s) => s.agent).join(", ")}`);
    expect(run.state).toBe(Run_State.PARTIAL);
    expect(byAgent.competitor_surface.state).toBe(Run_State.FAILED);
    expect(byAgent.competitor_surface.error).toBe("Unavailable: agents/competitor_surface is down");
    expect(run.error).toContain("agents/competitor_surface: Unavailable");
    // V2 still ran, from the request and what the context held.
    const v2 = run.steps.filter((s) => s.system === AgentSystem.V2);
    expect(v2.length).toBeGreaterThan(0);
    expect(v2.every((s) => s.state === Run_State.SUCCEEDED)).toBe(true);
    for (const s of v2) expect(run.output?.[s.agent.slice(7)]).toMatchObject({ from: s.agent });
    expect(run.output).not.toHaveProperty("competitor_surface");
  });

  it("a step whose required input failed is skipped, its checks too, and the rest of the plan goes on", async () => {
    const h = harness({ "agents/icp_builder": { fail: Code.Internal } });
    const run = await h.orch.createRun({ input: "Cohorts for our ICP", agents: ["agents/trend_scraper", "agents/icp_builder", "agents/cohort_builder"] });
    const state = Object.fromEntries(run.steps.map((s) => [s.agent.slice(7), Run_State[s.state]]));
    // Named agents run in order; cohort_builder needs the ICP.
    expect(state).toEqual({ trend_scraper: "SUCCEEDED", icp_builder: "FAILED", cohort_builder: "SKIPPED" });
    expect(run.steps[2].error).toContain("agents/icp_builder, whose output it needs, ended FAILED");
    expect(run.state).toBe(Run_State.PARTIAL);
    expect(h.started).toEqual(["agents/trend_scraper", "agents/icp_builder"]);
  });

  it("nothing succeeding ends the run FAILED with the first failure, as before plans had branches", async () => {
    const h = harness({ "agents/icp_builder": { fail: Code.Internal } });
    const run = await h.orch.createRun({ input: "Cohorts for our ICP", agents: ["agents/icp_builder", "agents/cohort_builder"] });
    expect(run.state).toBe(Run_State.FAILED);
    expect(run.error).toBe("Internal: agents/icp_builder is down");
  });

  it("shares the caller's remaining time out along the longest chain of steps", async () => {
    const h = harness();
    await h.orch.createRun({ input: "Write the launch copy", agents: ["agents/icp_builder", "agents/positioning_architect", "agents/copywriter"], checks: Checks.OFF }, { timeoutMs: 9_000 });
    const budgets = h.seen.map((s) => s.timeoutMs ?? Number.NaN);
    // Three steps one after another: the first gets about a third of 9 s, the last most of what is left.
    expect(budgets[0]).toBeGreaterThan(2_000);
    expect(budgets[0]).toBeLessThanOrEqual(3_000);
    expect(budgets[2]).toBeGreaterThan(budgets[0]);
    expect(budgets[2]).toBeLessThanOrEqual(9_000);
  });

  it("StreamRun reports each step as it starts and ends, with the fraction of the plan done", async () => {
    const h = harness();
    const events: RunEvent[] = [];
    for await (const e of h.orch.streamRun({ input: "Write the launch copy", agents: ["agents/icp_builder", "agents/copywriter"], checks: Checks.OFF })) events.push(e);
    const kinds = events.map((e) => (e.event.case === "progress" ? `progress ${e.event.value.fraction}` : `${e.event.case}${e.event.value && "agent" in e.event.value ? ` ${e.event.value.agent.slice(7)}` : ""}`));
    expect(kinds).toEqual([
      "routed",
      "stepStarted icp_builder",
      "stepFinished icp_builder",
      "progress 0.5",
      "stepStarted copywriter",
      "stepFinished copywriter",
      "progress 1",
      "run",
    ]);
  });

  it("a StreamRun caller that goes away mid-run leaves the run CANCELLED and recorded, not RUNNING (over the mesh's gRPC server)", async () => {
    const h = harness({}, { hold: true });
    // Served as the mesh serves it: grpc-js stops reading the handler when the call is cancelled.
    const server = createMeshServer({ services: [{ service: OrchestratorService, impl: h.impl }], drainTimeoutMs: 1_000 });
    const transport = createGrpcTransport({ address: `127.0.0.1:${await server.listen(0, "127.0.0.1")}` });
    try {
      const abort = new AbortController();
      const stream = createClient(OrchestratorService, transport).streamRun(
        { input: "Write the launch copy", agents: ["agents/icp_builder", "agents/copywriter"], checks: Checks.OFF },
        { signal: abort.signal },
      );
      const read = await (async () => {
        for await (const e of stream) if (e.event.case === "stepStarted") abort.abort();
      })().catch((e: unknown) => ConnectError.from(e));
      expect(read).toMatchObject({ code: Code.Canceled });
      const [run] = (await h.store.list("default", 10, "")).runs;
      let stored = run;
      for (let i = 0; i < 200 && (stored.state === Run_State.RUNNING || stored.state === Run_State.PENDING); i++) {
        await new Promise((r) => setTimeout(r, 10));
        stored = (await h.store.get("default", run.name))!;
      }
      expect(Run_State[stored.state]).toBe("CANCELLED");
    } finally {
      transport.close();
      await server.shutdown();
    }
  });
});

describe("a run the caller's deadline cuts short", () => {
  it("answers DEADLINE_EXCEEDED also when the handler's deadline signal fired before the run ended", async () => {
    // The agent never answers, and the final save of the CANCELLED run takes a while: the run ends after
    // the deadline has aborted the handler's signal (its step's own share of the deadline may fire first).
    const h = harness({}, { hold: true });
    const save = h.store.save;
    h.store.save = async (org, run) => {
      if (run.state === Run_State.CANCELLED) await new Promise((r) => setTimeout(r, 100));
      return save(org, run);
    };
    const ctx = createHandlerContext({
      service: OrchestratorService,
      method: OrchestratorService.method.createRun,
      protocolName: "grpc",
      requestMethod: "POST",
      url: "/raptorflow.v3.OrchestratorService/CreateRun",
      timeoutMs: 50,
      requestHeader: new Headers(),
      contextValues: createContextValues(),
    });
    const err = await Promise.resolve(h.impl.createRun(create(CreateRunRequestSchema, { input: "Build our ICP", agents: ["agents/icp_builder"], checks: Checks.OFF }), ctx)).catch(
      (e: unknown) => ConnectError.from(e),
    );
    expect(ctx.signal.aborted).toBe(true);
    expect(err).toMatchObject({ code: Code.DeadlineExceeded });
    const [run] = (await h.store.list("default", 10, "")).runs;
    expect(Run_State[run.state]).toBe("CANCELLED");
  });
});

describe("contexts across runs", () => {
  it("a run naming a context starts from what earlier runs wrote there; GetContext shows both kinds", async () => {
    const h = harness();
    const first = await h.orch.createRun({ input: "Build our ICP", agents: ["agents/icp_builder"], contextId: "spring-launch" });
    expect(first.contextId).toBe("spring-launch");
    const second = await h.orch.createRun({ input: "Write the launch copy", agents: ["agents/copywriter"], checks: Checks.OFF, contextId: "spring-launch" });
    // The second run's agent read the first run's ICP.
    expect(h.seen.find((s) => s.agent === "agents/copywriter")!.context).toMatchObject({ icp_builder: { from: "agents/icp_builder" } });
    // The run's output is its own steps'; its context holds what it started from too.
    expect(Object.keys(second.output ?? {})).toEqual(["copywriter"]);
    const named = await h.orch.getContext({ name: "contexts/spring-launch" });
    expect(Object.keys(named.values ?? {}).sort()).toEqual(["copywriter", "icp_builder"]);
    expect(named.updateTime).toBeDefined();
    const ofRun = await h.orch.getContext({ name: `${second.name}/context` });
    expect(Object.keys(ofRun.values ?? {}).sort()).toEqual(["copywriter", "icp_builder"]);
    // A context no run wrote, and another run's context that does not exist, are NOT_FOUND.
    const missing = await h.orch.getContext({ name: "contexts/never-written" }).catch((e: unknown) => ConnectError.from(e));
    expect((missing as ConnectError).code).toBe(Code.NotFound);
    const noRun = await h.orch.getContext({ name: "runs/0193aaaa-0000-7000-8000-000000000000/context" }).catch((e: unknown) => ConnectError.from(e));
    expect((noRun as ConnectError).code).toBe(Code.NotFound);
  });
});

describe("batches", () => {
  it("runs each request on its own, a few at a time; a bad request gets its error and the others run", async () => {
    const h = harness({}, { hold: true });
    const batch = h.orch.batchCreateRuns({
      maxConcurrency: 2,
      requests: [
        { input: "Build our ICP", agents: ["agents/icp_builder"] },
        { input: "" },
        { input: "Map competitors", agents: ["agents/competitor_surface"] },
        { input: "Trends", agents: ["agents/trend_scraper"] },
        { input: "Unknown", agents: ["agents/no_such_agent"] },
      ],
    });
    await h.waitFor("icp_builder", "competitor_surface");
    // Two at a time: the third run waits for a free slot.
    expect(h.started).not.toContain("agents/trend_scraper");
    await h.release("icp_builder");
    await h.release("competitor_surface");
    await h.release("trend_scraper");
    const res = await batch;
    expect(res.results.map((r) => r.index)).toEqual([0, 1, 2, 3, 4]);
    expect(res.results.map((r) => r.outcome.case)).toEqual(["run", "error", "run", "run", "error"]);
    const bad = res.results[1].outcome.value as { code: number; message: string };
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.message).toContain("requests[1].input");
    const unknown = res.results[4].outcome.value as { code: number; message: string };
    expect(unknown.message).toMatch(/^requests\[4\]: agents\[0\]/);
    expect(res.runs.map((r) => r.state)).toEqual([Run_State.SUCCEEDED, Run_State.SUCCEEDED, Run_State.SUCCEEDED]);
  });

  it("one Idempotency-Key for a batch makes one key per request, so a retried batch returns the same runs", async () => {
    const h = harness();
    const requests = [
      { input: "Build our ICP", agents: ["agents/icp_builder"] },
      { input: "Trends", agents: ["agents/trend_scraper"] },
    ];
    const headers = { "idempotency-key": "batch-7" };
    const a = await h.orch.batchCreateRuns({ requests }, { headers });
    const b = await h.orch.batchCreateRuns({ requests }, { headers });
    expect(a.runs).toHaveLength(2);
    expect(b.runs.map((r) => r.name)).toEqual(a.runs.map((r) => r.name));
  });
});

describe("the database going away during a run", () => {
  it("the caller gets the error at once, and the run's final state is recorded once the database is back: never left RUNNING", async () => {
    let down = false;
    const h = harness({}, { hold: true, storeDown: () => down });
    const run = h.orch.createRun({ input: "Build our ICP", agents: ["agents/icp_builder"], checks: Checks.OFF }).catch((e: unknown) => ConnectError.from(e));
    await h.waitFor("icp_builder");
    down = true;
    await h.release("icp_builder");
    // The caller gets the store's error at once (over gRPC, mesh/grpc-errors.ts makes it UNAVAILABLE).
    const err = await run;
    expect(err).toBeInstanceOf(ConnectError);
    const [stuck] = (await h.store.list("default", 10, "")).runs;
    expect(stuck.state).toBe(Run_State.RUNNING);
    down = false;
    let stored = stuck;
    for (let i = 0; i < 200 && stored.state === Run_State.RUNNING; i++) {
      await new Promise((r) => setTimeout(r, 10));
      stored = (await h.store.get("default", stuck.name))!;
    }
    expect(stored.state).not.toBe(Run_State.RUNNING);
  });

  it("between the run's creation and its first save: the run still ends FAILED, recorded once the database is back, never left PENDING", async () => {
    let down = false;
    const h = harness({}, { storeDown: () => down });
    // The create goes through; every save after it fails until the database is back.
    const create = h.store.create;
    h.store.create = async (...args) => {
      const created = await create(...args);
      down = true;
      return created;
    };
    const err = await h.orch.createRun({ input: "Build our ICP", agents: ["agents/icp_builder"], checks: Checks.OFF }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect(h.started, "no agent runs for a run that could not be marked RUNNING").toEqual([]);
    const [accepted] = (await h.store.list("default", 10, "")).runs;
    down = false;
    let stored = accepted;
    for (let i = 0; i < 200 && stored.state === Run_State.PENDING; i++) {
      await new Promise((r) => setTimeout(r, 10));
      stored = (await h.store.get("default", accepted.name))!;
    }
    expect(stored.state).toBe(Run_State.FAILED);
    expect(stored.error).toMatch(/ECONNREFUSED/);
  });
});

import type { DescService, JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type ServiceImpl } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AgentService, type AgentResult } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { CohortService } from "../../gen/raptorflow/v1/cohort_pb.js";
import { IcpService } from "../../gen/raptorflow/v1/icp_pb.js";
import { IntelligenceService } from "../../gen/raptorflow/v1/intelligence_pb.js";
import { MoveService } from "../../gen/raptorflow/v1/move_pb.js";
import { PlanService } from "../../gen/raptorflow/v1/plan_pb.js";
import { Checks, OrchestratorService, Run_State, type Run } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { organizationHeader } from "../../mesh/call-context.js";
import { toAgentMessage } from "../../platform/agents/agent-service.js";
import { loadCatalog } from "../../platform/agents/catalog.js";
import { createMemoryKeyValueStore } from "../../platform/kv/memory-kv-store.js";
import { createResultCache } from "../../platform/kv/result-cache.js";
import { createOrchestratorImpl } from "../orchestrator/orchestrator-service.js";
import { createKeywordRouter } from "../orchestrator/router.js";
import { createRunEvents } from "../orchestrator/run-events.js";
import { createMemoryRunStore } from "../orchestrator/run-store.js";
import { createSharedContext } from "../orchestrator/shared-context.js";
import { scriptedProvider, startV1InProcess, v1Catalog, type V1InProcess } from "../../test/support/v1-agents.js";
import { v1Resources, type V1Collection } from "./v1-resources.js";

/** recordsOf says which collection each V1 agent's results become, and the insight kind where it is an insight. */
const recordsOf: Record<string, { collection: V1Collection; kind?: string }> = {
  icp_builder: { collection: "icps" },
  cohort_builder: { collection: "cohorts" },
  cohort_tag_generator: { collection: "cohorts" },
  jtbd_mapper: { collection: "jtbdMaps" },
  competitor_surface: { collection: "competitorSurfaces" },
  strategy_profile: { collection: "strategyProfiles" },
  positioning_parse: { collection: "positionings" },
  monetization: { collection: "monetizationModels" },
  plan_generator: { collection: "plans" },
  move_assembly: { collection: "moves" },
  trend_scraper: { collection: "insights", kind: "trend_report" },
  company_enrich: { collection: "insights", kind: "company_profile" },
  tech_stack_seed: { collection: "insights", kind: "tech_stack" },
  barrier_engine: { collection: "insights", kind: "barrier_map" },
  content_idea: { collection: "insights", kind: "content_ideas" },
  muse: { collection: "insights", kind: "creative_directions" },
};

const as = (org: string) => ({ headers: { [organizationHeader]: org } });
const code = (p: Promise<unknown>) => p.then(() => "ok", (e: unknown) => ConnectError.from(e).code);

type AnyRecord = { name: string; origin?: { agent: string; run: string; provider: string; model: string; promptVersion: string }; kind?: string; tags?: string[] };

/** getRecord reads a record by name through its own resource service, as a client would. */
async function getRecord(v1: V1InProcess, name: string, org: string): Promise<AnyRecord> {
  const collection = name.split("/")[0] as V1Collection;
  const [service] = v1Resources[collection];
  const client = v1.client(service as DescService) as unknown as Record<string, (req: { name: string }, o: unknown) => Promise<AnyRecord>>;
  const get = Object.keys(client).find((k) => k.startsWith("get"))!;
  return client[get]({ name }, as(org));
}

/** orchestrate serves the real orchestrator in process over the V1 service; V2 answers with the given outputs. */
function orchestrate(v1: V1InProcess, v2Outputs: Record<string, JsonObject> = {}) {
  const v2Catalog = loadCatalog("services/v2-agents");
  const agents = [...v1Catalog.agents, ...v2Catalog.agents].map(toAgentMessage);
  const v2: Partial<ServiceImpl<typeof AgentService>> = {
    runAgent: (req) => ({ agent: req.name, output: v2Outputs[req.name] ?? { note: "v2" }, provider: "fake", usage: {} }),
  };
  const kv = createMemoryKeyValueStore();
  const store = createMemoryRunStore();
  const impl = createOrchestratorImpl({
    agents: { v1: createClient(AgentService, v1.transport), v2: createClient(AgentService, createRouterTransport(({ service }) => service(AgentService, v2))) },
    catalog: async () => agents,
    router: createKeywordRouter,
    store,
    context: createSharedContext(kv, store, 60_000),
    events: createRunEvents(kv),
  });
  return createClient(OrchestratorService, createRouterTransport(({ service }) => service(OrchestratorService, impl)));
}

const stepResult = (run: Run, agent: string): AgentResult => run.steps.find((s) => s.agent === agent)!.result!;

describe("V1 agent results become records", () => {
  const v1 = startV1InProcess({ provider: scriptedProvider() });
  const orchestrator = orchestrate(v1);

  it.each(v1Catalog.agents.map((a) => [a.id, a] as const))("%s, called directly (RunAgent) and through the orchestrator, keeps its answer as records of the caller's organization", async (id, agent) => {
    const { collection, kind } = recordsOf[id];
    const input = agent.examples[0] ?? agent.description;

    const direct = await v1.agents.runAgent({ name: `agents/${id}`, input }, as("acme"));
    expect(direct.records.length, id).toBeGreaterThan(0);
    for (const name of direct.records) {
      expect(name).toMatch(new RegExp(`^${collection}/[0-9a-f-]{36}$`));
      const record = await getRecord(v1, name, "acme");
      expect(record.origin).toMatchObject({ agent: `agents/${id}`, run: "", provider: "offline", model: direct.model, promptVersion: agent.promptVersion });
      if (kind) expect(record.kind).toBe(kind);
      // Another organization does not see it.
      expect(await code(getRecord(v1, name, "globex"))).toBe(Code.NotFound);
    }

    const run = await orchestrator.createRun({ input, agents: [`agents/${id}`], checks: Checks.OFF }, as("acme"));
    expect(run.state, run.error).toBe(Run_State.SUCCEEDED);
    const result = stepResult(run, `agents/${id}`);
    expect(result.records.length).toBeGreaterThan(0);
    for (const name of result.records) {
      expect((await getRecord(v1, name, "acme")).origin).toMatchObject({ agent: `agents/${id}`, run: run.name });
    }
  });

  it("a streamed run (StreamRun -> StreamAgent) keeps the records too", async () => {
    let finished: Run | undefined;
    for await (const ev of orchestrator.streamRun({ input: "Map our competitors", agents: ["agents/competitor_surface"], checks: Checks.OFF }, as("acme"))) {
      if (ev.event.case === "run") finished = ev.event.value;
    }
    const [name] = stepResult(finished!, "agents/competitor_surface").records;
    expect((await getRecord(v1, name, "acme")).origin).toMatchObject({ agent: "agents/competitor_surface", run: finished!.name });
  });

  it("the cohort tag generator's 50 tags go to the cohort its `cohort` parameter names", async () => {
    const cohorts = v1.client(CohortService);
    const target = await cohorts.createCohort({ cohort: { displayName: "Weekend hikers", description: "buy gear on Saturdays" } }, as("acme"));
    const res = await v1.agents.runAgent({ name: "agents/cohort_tag_generator", input: "Tags for weekend hikers who buy gear on Saturdays", parameters: { cohort: target.name } }, as("acme"));
    expect(res.records).toEqual([target.name]);
    const tagged = await cohorts.getCohort({ name: target.name }, as("acme"));
    expect(tagged.tags).toHaveLength(50);
    expect(tagged.description).toBe("buy gear on Saturdays");
    // A cohort made from scratch by the generator carries its 50 tags too.
    const fresh = await v1.agents.runAgent({ name: "agents/cohort_tag_generator", input: "Tags for night owls" }, as("acme"));
    expect((await cohorts.getCohort({ name: fresh.records[0] }, as("acme"))).tags).toHaveLength(50);
  });

  it("a parameter naming a record that does not exist is NOT_FOUND before any model call", async () => {
    const provider = scriptedProvider();
    const isolated = startV1InProcess({ provider });
    const err = await isolated.agents.runAgent({ name: "agents/cohort_builder", input: "Split our customers", parameters: { icp: "icps/0193a000-0000-7000-8000-000000000000" } }, as("acme")).catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.NotFound);
    expect((err as ConnectError).rawMessage).toContain("parameters.icp");
    expect(provider.requests).toEqual([]);
    // Another organization's ICP is not found either.
    const icp = await isolated.client(IcpService).createIcp({ icp: { displayName: "Theirs" } }, as("globex"));
    expect(await code(isolated.agents.runAgent({ name: "agents/cohort_builder", input: "Split", parameters: { icp: icp.name } }, as("acme")))).toBe(Code.NotFound);
  });

  it("every call keeps its own records, a cached one too", async () => {
    const cached = startV1InProcess({ cache: createResultCache(createMemoryKeyValueStore(), 60_000) });
    const first = await cached.agents.runAgent({ name: "agents/icp_builder", input: "Our ICP" }, as("acme"));
    const again = await cached.agents.runAgent({ name: "agents/icp_builder", input: "Our ICP" }, as("globex"));
    expect(again.cached).toBe(true);
    expect(again.records).toHaveLength(1);
    expect(again.records).not.toEqual(first.records);
    expect((await getRecord(cached, again.records[0], "globex")).origin?.agent).toBe("agents/icp_builder");
    expect(await code(getRecord(cached, first.records[0], "globex"))).toBe(Code.NotFound);
  });

  it("the legacy actions keep their agents' results too: enrich as a company profile, radar as a trend report and a competitor surface", async () => {
    const intelligence = v1.client(IntelligenceService);
    const enriched = await intelligence.enrichCompany({ domain: "acme.com", companyName: "Acme" }, as("acme"));
    expect(enriched.result?.records[0]).toMatch(/^insights\//);
    const radar = await intelligence.scanRadar({ topic: "B2B analytics for retailers", competitors: ["Looker"] }, as("acme"));
    expect(radar.results.map((r) => r.records[0].split("/")[0])).toEqual(["insights", "competitorSurfaces"]);
  });
});

describe("V1 agents share a run's context", () => {
  it("positioning reads the ICP an earlier step made; a V2 step's output reaches a V1 agent; each step's output is the context of the next", async () => {
    const provider = scriptedProvider({ icp_builder: { icp: { display_name: "Mid-market grocers", customer_type: "b2b", industry: "grocery", company_size: "50-200", traits: ["multi-store"], context: "c", behaviours: [], budget_signals: [] } } });
    const v1 = startV1InProcess({ provider });
    const orchestrator = orchestrate(v1, { "agents/audience_insight": { insights: "Grocers fear stock-outs before holidays" } });
    const run = await orchestrator.createRun(
      { input: "Who should we sell to, and how do we position?", agents: ["agents/audience_insight", "agents/icp_builder", "agents/positioning_parse"], checks: Checks.OFF },
      as("acme"),
    );
    expect(run.state, run.error).toBe(Run_State.SUCCEEDED);
    const prompt = provider.requests.find((r) => r.agent === "positioning_parse")!.request.prompt;
    const shared = JSON.parse(prompt.split("<shared_context>\n")[1].split("\n</shared_context>")[0]) as JsonObject;
    expect(Object.keys(shared)).toEqual(["audience_insight", "icp_builder"]);
    expect((shared.icp_builder as { icp: { display_name: string } }).icp.display_name).toBe("Mid-market grocers");
    expect(shared.audience_insight).toEqual({ insights: "Grocers fear stock-outs before holidays" });
    // The ICP builder saw the V2 step's output.
    expect(provider.requests.find((r) => r.agent === "icp_builder")!.request.prompt).toContain("Grocers fear stock-outs before holidays");
    // The run's output is the shared context: every step's output by agent id.
    expect(Object.keys(run.output ?? {})).toEqual(["audience_insight", "icp_builder", "positioning_parse"]);
  });

  it("records made later in a run refer to those made earlier: cohorts to the run's ICP, moves to the run's plan", async () => {
    const v1 = startV1InProcess();
    const orchestrator = orchestrate(v1);
    const run = await orchestrator.createRun({ input: "ICP, then cohorts", agents: ["agents/icp_builder", "agents/cohort_builder"], checks: Checks.OFF }, as("acme"));
    const [icp] = stepResult(run, "agents/icp_builder").records;
    const cohorts = stepResult(run, "agents/cohort_builder").records;
    for (const name of cohorts) expect((await v1.client(CohortService).getCohort({ name }, as("acme"))).icp).toBe(icp);
    expect((await v1.client(CohortService).listCohorts({ icp }, as("acme"))).cohorts.map((c) => c.name).sort()).toEqual([...cohorts].sort());

    const planned = await orchestrator.createRun({ input: "Plan, then moves", agents: ["agents/plan_generator", "agents/move_assembly"], parameters: { timeline_weeks: 8 }, checks: Checks.OFF }, as("acme"));
    const [plan] = stepResult(planned, "agents/plan_generator").records;
    const moves = stepResult(planned, "agents/move_assembly").records;
    expect(moves.length).toBeGreaterThanOrEqual(3);
    expect((await v1.client(MoveService).listMoves({ plan }, as("acme"))).moves.map((m) => m.name).sort()).toEqual([...moves].sort());

    // Deleting what later records refer to needs force, which keeps them and drops the reference.
    expect(await code(v1.client(IcpService).deleteIcp({ name: icp }, as("acme")))).toBe(Code.FailedPrecondition);
    await v1.client(IcpService).deleteIcp({ name: icp, force: true }, as("acme"));
    expect((await v1.client(CohortService).getCohort({ name: cohorts[0] }, as("acme"))).icp).toBe("");
    expect(await code(v1.client(PlanService).deletePlan({ name: plan }, as("acme")))).toBe(Code.FailedPrecondition);
    await v1.client(PlanService).deletePlan({ name: plan, force: true }, as("acme"));
    expect((await v1.client(MoveService).getMove({ name: moves[0] }, as("acme"))).plan).toBe("");
  });
});


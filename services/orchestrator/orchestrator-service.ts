import { clone, create } from "@bufbuild/protobuf";
import { timestampFromDate, timestampNow } from "@bufbuild/protobuf/wkt";
import { createValidator } from "@bufbuild/protovalidate";
import { Code, ConnectError, type Client, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { uuidv7 } from "uuidv7";
import { AgentSchema, AgentService, AgentSystem, type Agent } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import {
  AgentView,
  BatchRunResultSchema,
  CreateRunRequestSchema,
  FeedbackSchema,
  OrchestratorService,
  RouteMode,
  Run_State,
  RunSchema,
  Target,
  type BatchRunResult,
  type CreateRunRequest,
  type ExplainRouteRequest,
  type RouteDecision,
  type Run,
  type RunEvent,
  RunEventSchema,
} from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { paginate } from "../../platform/pagination.js";
import { logger } from "../../mesh/logger.js";
import { callerOrganization, forwardCall, idempotencyKeyOf, idempotencyOf, type Idempotency } from "../../mesh/call-context.js";
import type { Router } from "./router.js";
import type { RunStore } from "./run-store.js";
import type { SharedContext } from "./shared-context.js";
import { withQualityGate } from "./quality-gate.js";
import { plannerAgent, plannerStep, wantsPlanner } from "./v2-planner.js";
import { withDependencies } from "./plan-graph.js";
import { executePlan, type RunEventInit } from "./run-executor.js";
import type { RunEvents } from "./run-events.js";
import type { RunTelemetry } from "./run-telemetry.js";

/** defaultBatchConcurrency is how many runs of a batch run at once when the request does not say. */
const defaultBatchConcurrency = 4;

/** validator checks each request of a batch on its own (the batch's own rules skip its items). */
const validator = createValidator();

/**
 * runIdempotency is a CreateRun's idempotency: the `idempotency-key`
 * metadata, or else `request_id`, with a digest of the request without its
 * request_id, so a retry is told apart from a different request that reuses the key.
 */
function runIdempotency(req: CreateRunRequest, header: Headers): Idempotency | undefined {
  return idempotencyOf(CreateRunRequestSchema, create(CreateRunRequestSchema, { ...req, requestId: "" }), header, req.requestId);
}

/**
 * saveFinal records a run's final state. When the store cannot take it (the
 * database is down), the caller gets the error at once, and the save is
 * tried again in the background, every few seconds for up to ten minutes, so
 * the run does not stay RUNNING once the database is back. (A run that
 * outlasts even that is marked FAILED by the next start's recovery.)
 */
async function saveFinal(store: RunStore, org: string, run: Run, retryEveryMs = 2_000): Promise<void> {
  try {
    await store.save(org, run);
  } catch (e) {
    const log = logger("orchestrator");
    log.warn({ run: run.name, err: (e as Error).message }, "could not record the run's final state; trying again in the background");
    const final = clone(RunSchema, run);
    const deadline = Date.now() + 10 * 60_000;
    const again = (): void => {
      store.save(org, final).then(
        () => log.info({ run: final.name, state: Run_State[final.state] }, "recorded the run's final state"),
        () => {
          if (Date.now() < deadline) setTimeout(again, retryEveryMs).unref();
          else log.error({ run: final.name }, "gave up recording the run's final state; the next start marks it FAILED");
        },
      );
    };
    setTimeout(again, retryEveryMs).unref();
    throw e;
  }
}

/** basicViews holds each catalog agent's BASIC view, made once per agent object the catalog cache hands out. */
const basicViews = new WeakMap<Agent, Agent>();

/** basicView is an agent without its schemas and example requests (AGENT_VIEW_BASIC): most of a catalog's bytes. */
function basicView(agent: Agent): Agent {
  let basic = basicViews.get(agent);
  if (!basic) {
    basic = clone(AgentSchema, agent);
    basic.inputSchema = undefined;
    basic.outputSchema = undefined;
    basic.examples = [];
    basicViews.set(agent, basic);
  }
  return basic;
}

/** OrchestratorDeps are what the orchestrator needs, injected so tests can pass their own. */
export interface OrchestratorDeps {
  /** agents are the clients of the two agent services. */
  readonly agents: { readonly v1: Client<typeof AgentService>; readonly v2: Client<typeof AgentService> };
  /** catalog returns both catalogs (V1 first), cached by the caller. */
  readonly catalog: () => Promise<readonly Agent[]>;
  /** router builds a router for a catalog. */
  readonly router: (agents: readonly Agent[]) => Router;
  /** store keeps runs. */
  readonly store: RunStore;
  /** context is where the steps of a run share their outputs. */
  readonly context: SharedContext;
  /** events carries run events to watchers on any instance. */
  readonly events: RunEvents;
  /** retrySaveMs is how often a final state the store refused is tried again (default 2 s). */
  readonly retrySaveMs?: number;
  /** telemetry traces and counts runs, steps and routes, and remembers them for the status; none when undefined. */
  readonly telemetry?: RunTelemetry;
}

/**
 * createOrchestratorImpl implements `raptorflow.v3.OrchestratorService`:
 * route, run the plan's agents over gRPC as a DAG (run-executor.ts: each
 * step sees the outputs of the steps it depends on in the run's shared
 * context), and record the run at every change, so an accepted request
 * always ends in a recorded state (SUCCEEDED, PARTIAL, FAILED, CANCELLED or
 * BUDGET_EXCEEDED).
 */
export function createOrchestratorImpl(deps: OrchestratorDeps): ServiceImpl<typeof OrchestratorService> {
  let routerFor: { agents: readonly Agent[]; router: Router } | undefined;
  /** routerOf is the router of a catalog, built once per catalog the caller's cache hands out. */
  const routerOf = (agents: readonly Agent[]): Router => {
    if (routerFor?.agents !== agents) routerFor = { agents, router: deps.router(agents) };
    return routerFor.router;
  };
  const router = async (): Promise<Router> => routerOf(await deps.catalog());

  /**
   * decide is the route of a request, as ExplainRoute shows it and a run
   * takes it: the router's decision (with what it learned from the
   * organization's feedback), the planning step for a complex V2 request,
   * the checks, and the cost of the whole plan.
   */
  const decide = async (req: ExplainRouteRequest | CreateRunRequest, org: string, agents?: readonly Agent[]): Promise<RouteDecision> => {
    const catalog = agents ?? (await deps.catalog());
    const r = routerOf(catalog);
    const twice = req.agents.findIndex((a, i) => req.agents.indexOf(a) !== i);
    if (twice >= 0) throw new ConnectError(`agents[${twice}]: "${req.agents[twice]}" is named twice; an agent runs once per run`, Code.InvalidArgument);
    const routeReq = { input: req.input, mode: req.mode, agents: req.agents, organization: org };
    let routed = r.route(routeReq);
    if (r.refine) routed = await r.refine(routeReq, routed);
    // A complex V2 request is planned by V2's orchestration agent first.
    // An agent runs once per run (its output is one context entry, and steps wait for each other by agent):
    // the planner is not also one of the steps it plans.
    if (wantsPlanner(req, routed)) routed.steps = [plannerStep(), ...routed.steps.filter((st) => st.agent !== plannerAgent)];
    const decision = withQualityGate(routed, req.checks, catalog);
    // The plan's order becomes a DAG: independent steps will run side by side.
    withDependencies(decision.steps, catalog, { hybrid: decision.target === Target.HYBRID, sequential: req.agents.length > 0 });
    if (r.estimateCost) decision.estimatedCostUsd = r.estimateCost(decision, req.input);
    return decision;
  };

  async function* execute(
    req: CreateRunRequest,
    ctx: HandlerContext,
    streaming: boolean,
    idempotency = runIdempotency(req, ctx.requestHeader),
  ): AsyncGenerator<RunEventInit> {
    const org = callerOrganization(ctx);
    const catalog = await deps.catalog();
    const decision = await decide(req, org, catalog);
    const now = timestampNow();
    const accepted: Run = create(RunSchema, {
      name: `runs/${uuidv7()}`,
      input: req.input,
      route: decision,
      state: Run_State.PENDING,
      createTime: now,
      updateTime: now,
      requestId: req.requestId,
      contextId: req.contextId,
      usage: {},
    });
    // The run is stored before anything is acknowledged or done. A retry with
    // the same idempotency key gets the run the first attempt created.
    const { run, created } = await deps.store.create(org, accepted, idempotency);
    if (!created) {
      yield { event: { case: "run", value: run } };
      return;
    }
    const startedMs = performance.now();
    deps.telemetry?.routed(decision);
    // Every event of an accepted run also goes to its watchers, on any instance.
    const emit = async (ev: RunEventInit): Promise<RunEvent> => {
      const e = create(RunEventSchema, ev);
      await deps.events.publish(org, run.name, e);
      return e;
    };
    // From here on the run is accepted: whatever fails, it ends in a recorded final state
    // (the database can go away between the create and the next save). callerLeft stays true
    // only when a StreamRun caller went away and closed this generator at a yield.
    let callerLeft = true;
    try {
      run.state = Run_State.RUNNING;
      await deps.store.save(org, run);
      yield await emit({ event: { case: "routed", value: decision } });
      // A named context seeds the run's own: its steps read what earlier runs wrote there.
      if (req.contextId) {
        const named = await deps.store.getNamedContext(org, req.contextId);
        for (const [key, value] of Object.entries(named.values)) await deps.context.put(org, run.name, key, value);
      }
      const plan = executePlan({
        org,
        req,
        run,
        decision,
        catalog,
        agents: deps.agents,
        store: deps.store,
        context: deps.context,
        telemetry: deps.telemetry,
        signal: ctx.signal,
        // The caller's deadline and cancellation travel to every hop, shared out among the steps.
        timeoutMs: ctx.timeoutMs(),
        headers: forwardCall(ctx),
        streaming,
      });
      for await (const ev of plan) yield await emit(ev);
      callerLeft = false;
    } catch (e) {
      callerLeft = false;
      // Only the stores can fail here (a step's failure is the step's): the run still ends recorded.
      const err = ConnectError.from(e);
      run.state = ctx.signal.aborted ? Run_State.CANCELLED : Run_State.FAILED;
      run.error = `${Code[err.code]}: ${err.rawMessage}`;
    } finally {
      if (callerLeft) {
        run.state = Run_State.CANCELLED;
        run.error = "CANCELLED: the caller went away before the run ended";
      }
      run.updateTime = timestampNow();
      const saved = saveFinal(deps.store, org, run, deps.retrySaveMs);
      // The caller gets the store's error; when the caller went away, no one is left to tell.
      await (callerLeft ? saved.catch(() => undefined) : saved);
      deps.telemetry?.finished(org, run, startedMs);
    }
    yield await emit({ event: { case: "run", value: run } });
  }

  const runToEnd = async (req: CreateRunRequest, ctx: HandlerContext, idempotency?: Idempotency): Promise<Run> => {
    let last: Run | undefined;
    for await (const ev of execute(req, ctx, false, idempotency ?? runIdempotency(req, ctx.requestHeader))) {
      if (ev.event?.case === "run") last = ev.event.value as Run;
    }
    // A run cut short by the caller's own deadline answers DEADLINE_EXCEEDED, as the caller's clock
    // says, whether the recorded CANCELLED run is ready a moment before that clock runs out or a moment
    // after (the handler's deadline signal fired first). Only a caller that cancelled gets the run.
    const callerCancelled = ctx.signal.aborted && ConnectError.from(ctx.signal.reason).code !== Code.DeadlineExceeded;
    if (last!.state === Run_State.CANCELLED && ctx.timeoutMs() !== undefined && !callerCancelled) {
      throw new ConnectError(`the run could not finish within the caller's deadline; ${last!.name} is recorded as CANCELLED`, Code.DeadlineExceeded);
    }
    return last!;
  };

  const mustGet = async (org: string, name: string): Promise<Run> => {
    const run = await deps.store.get(org, name);
    if (!run) throw new ConnectError(`run "${name}" not found`, Code.NotFound);
    return run;
  };

  return {
    createRun: runToEnd,
    streamRun(req, ctx) {
      return execute(req, ctx, true);
    },
    async *watchRun(req, ctx) {
      const org = callerOrganization(ctx);
      // Subscribe before reading the run, so no event falls between the two.
      const queue: RunEvent[] = [];
      let wake: (() => void) | undefined;
      const stop = await deps.events.subscribe(org, req.name, (e) => {
        queue.push(e);
        wake?.();
      });
      try {
        const run = await mustGet(org, req.name);
        if (run.state !== Run_State.PENDING && run.state !== Run_State.RUNNING) {
          yield { event: { case: "run", value: run } };
          return;
        }
        yield { event: { case: "progress", value: { run: run.name, completedSteps: run.steps.filter((s) => s.state === Run_State.SUCCEEDED).length, totalSteps: run.route?.steps.length ?? 0 } } };
        for (;;) {
          while (queue.length) {
            const e = queue.shift()!;
            yield e;
            if (e.event.case === "run") return;
          }
          await new Promise<void>((resolve) => {
            wake = resolve;
            ctx.signal.addEventListener("abort", () => resolve(), { once: true });
          });
          ctx.signal.throwIfAborted();
        }
      } finally {
        await stop();
      }
    },
    getRun: (req, ctx) => mustGet(callerOrganization(ctx), req.name),
    async getRunStatus(req, ctx) {
      const run = await mustGet(callerOrganization(ctx), `runs/${req.runId}`);
      return {
        runId: req.runId,
        name: run.name,
        state: run.state,
        completedSteps: run.steps.filter((s) => s.state === Run_State.SUCCEEDED).length,
        totalSteps: run.route?.steps.length ?? 0,
        error: run.error,
        createTime: run.createTime,
        updateTime: run.updateTime,
      };
    },
    async getRunResult(req, ctx) {
      const run = await mustGet(callerOrganization(ctx), `runs/${req.runId}`);
      return {
        runId: req.runId,
        name: run.name,
        state: run.state,
        route: run.route,
        output: run.output,
        summary: run.summary,
        usage: run.usage,
        error: run.error,
      };
    },
    async getCapabilities() {
      const agents = await deps.catalog();
      const systems = [AgentSystem.V1, AgentSystem.V2].map((system) => {
        const mine = agents.filter((a) => a.system === system);
        const departments = [...new Set(mine.map((a) => a.department))].map((department) => ({
          department,
          agentCount: mine.filter((a) => a.department === department).length,
        }));
        return { system, agentCount: mine.length, departments };
      });
      return {
        systems,
        routeModes: [RouteMode.V1, RouteMode.V2, RouteMode.HYBRID],
        router: (await router()).name,
      };
    },
    async batchCreateRuns(req, ctx) {
      // Each request is checked and run on its own, a few at a time: one that
      // is refused gets its error in its result and the others go on.
      const results: BatchRunResult[] = [];
      const one = async (i: number): Promise<BatchRunResult> => {
        const item = req.requests[i];
        try {
          const checked = validator.validate(CreateRunRequestSchema, item);
          if (checked.kind !== "valid") {
            const problems = checked.kind === "invalid" ? checked.violations.map((v) => `requests[${i}].${String(v)}`) : [checked.error.message];
            throw new ConnectError(problems.join("; "), Code.InvalidArgument);
          }
          // One Idempotency-Key for the batch makes one key per request: `<key>.<index>`.
          const header = new Headers(ctx.requestHeader);
          const key = idempotencyKeyOf(header);
          if (key !== undefined) header.set("idempotency-key", `${key}.${i}`);
          const run = await runToEnd(item, ctx, runIdempotency(item, header));
          return create(BatchRunResultSchema, { index: i, outcome: { case: "run", value: run } });
        } catch (e) {
          const err = ConnectError.from(e);
          const message = err.rawMessage.startsWith(`requests[${i}]`) ? err.rawMessage : `requests[${i}]: ${err.rawMessage}`;
          return create(BatchRunResultSchema, { index: i, outcome: { case: "error", value: { code: err.code, message } } });
        }
      };
      // A fixed pool of workers takes the next request as it frees up: bounded concurrency in four lines, no library needed.
      let next = 0;
      const workers = Array.from({ length: Math.min(req.maxConcurrency || defaultBatchConcurrency, req.requests.length) }, async () => {
        while (next < req.requests.length) {
          const i = next++;
          results[i] = await one(i);
        }
      });
      await Promise.all(workers);
      return { results, runs: results.flatMap((r) => (r.outcome.case === "run" ? [r.outcome.value] : [])) };
    },
    async getContext(req, ctx) {
      const org = callerOrganization(ctx);
      if (req.name.startsWith("contexts/")) {
        const named = await deps.store.getNamedContext(org, req.name.slice("contexts/".length));
        if (!named.updateTime) throw new ConnectError(`context "${req.name}" not found: no run has written to it yet`, Code.NotFound);
        return { name: req.name, values: named.values, updateTime: timestampFromDate(named.updateTime) };
      }
      const run = await mustGet(org, req.name.slice(0, -"/context".length));
      // The durable copy: the key-value store's copy expires after the run.
      return { name: req.name, values: await deps.store.getContext(org, run.name), updateTime: run.updateTime };
    },
    async createFeedback(req, ctx) {
      const org = callerOrganization(ctx);
      const run = await mustGet(org, req.parent);
      const feedback = create(FeedbackSchema, {
        rating: req.feedback?.rating,
        comment: req.feedback?.comment,
        correctTarget: req.feedback?.correctTarget,
        name: `${req.parent}/feedback/${uuidv7()}`,
        createTime: timestampNow(),
      });
      await deps.store.addFeedback(org, feedback);
      // Feedback naming the right target teaches the router at once; at start-up it is replayed from the store.
      if (feedback.correctTarget !== Target.UNSPECIFIED) (await router()).learn?.({ organization: org, input: run.input, target: feedback.correctTarget });
      return feedback;
    },
    async listRuns(req, ctx) {
      return deps.store.list(callerOrganization(ctx), req.pageSize || 50, req.pageToken);
    },
    explainRoute: (req, ctx) => decide(req, callerOrganization(ctx)),
    async listAgents(req) {
      const agents = (await deps.catalog()).filter(
        (a) =>
          (req.system === AgentSystem.UNSPECIFIED || a.system === req.system) &&
          (req.department === "" || a.department === req.department),
      );
      // The view is part of the page token's query: a token is only good for the list it came from.
      const { page, nextPageToken } = paginate(agents, req, `s=${req.system};d=${req.department};v=${req.view}`, 100);
      return { agents: req.view === AgentView.FULL ? page : page.map(basicView), nextPageToken, totalSize: agents.length };
    },
  };
}

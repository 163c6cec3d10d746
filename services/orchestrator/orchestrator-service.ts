import { create, type JsonObject, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { uuidv7 } from "uuidv7";
import { AgentService, AgentSystem, type Agent } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import {
  CreateRunRequestSchema,
  FeedbackSchema,
  OrchestratorService,
  RouteMode,
  Run_State,
  RunSchema,
  RunStepSchema,
  Target,
  type CreateRunRequest,
  type ExplainRouteRequest,
  type RouteDecision,
  type Run,
  type RunEvent,
  RunEventSchema,
  RouteDecisionSchema,
} from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { paginate } from "../../platform/pagination.js";
import { callerOrganization, forwardCall, idempotencyOf, type Idempotency } from "../../mesh/call-context.js";
import type { Router } from "./router.js";
import type { RunStore } from "./run-store.js";
import type { SharedContext } from "./shared-context.js";
import { needsRewrite, rewriteStep, withQualityGate } from "./quality-gate.js";
import { planFrom, plannerAgent, plannerStep, wantsPlanner } from "./v2-planner.js";
import type { RunEvents } from "./run-events.js";
import type { RunTelemetry } from "./run-telemetry.js";
import { context as traceContext } from "@opentelemetry/api";

/**
 * runIdempotency is a CreateRun's idempotency: the `idempotency-key`
 * metadata, or else `request_id`, with a digest of the request without its
 * request_id, so a retry is told apart from a different request that reuses the key.
 */
function runIdempotency(req: CreateRunRequest, header: Headers): Idempotency | undefined {
  return idempotencyOf(CreateRunRequestSchema, create(CreateRunRequestSchema, { ...req, requestId: "" }), header, req.requestId);
}

/** overBudget says how a run's usage went past its budget, or undefined when it did not. */
function overBudget(req: CreateRunRequest, usage: { inputTokens: bigint; outputTokens: bigint; costUsd: number }): string | undefined {
  const b = req.budget;
  if (!b) return undefined;
  const tokens = usage.inputTokens + usage.outputTokens;
  if (b.maxTokens > 0n && tokens > b.maxTokens) return `budget exceeded: ${tokens} tokens used, the budget is ${b.maxTokens}`;
  if (b.maxCostUsd > 0 && usage.costUsd > b.maxCostUsd) return `budget exceeded: $${usage.costUsd.toFixed(6)} spent, the budget is $${b.maxCostUsd}`;
  return undefined;
}

/** runNameOf finds the run an event is about, where it says. */
function runNameOf(e: RunEvent): string | undefined {
  switch (e.event.case) {
    case "run":
      return e.event.value.name;
    case "progress":
      return e.event.value.run;
    default:
      return undefined;
  }
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
  /** telemetry traces and counts runs, steps and routes, and remembers them for the status; none when undefined. */
  readonly telemetry?: RunTelemetry;
}

type RunEventInit = MessageInitShape<typeof RunEventSchema>;

/**
 * createOrchestratorImpl implements `raptorflow.v3.OrchestratorService`:
 * route, run the planned agents one after another over gRPC — each step
 * sees the outputs of the steps before it as the run's shared context — and
 * record the run at every change, so an accepted request always ends in a
 * recorded state (SUCCEEDED, FAILED or CANCELLED).
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
    const routeReq = { input: req.input, mode: req.mode, agents: req.agents, organization: org };
    let routed = r.route(routeReq);
    if (r.refine) routed = await r.refine(routeReq, routed);
    // A complex V2 request is planned by V2's orchestration agent first.
    if (wantsPlanner(req, routed)) routed.steps.unshift(plannerStep());
    const decision = withQualityGate(routed, req.checks, catalog);
    if (r.estimateCost) decision.estimatedCostUsd = r.estimateCost(decision, req.input);
    return decision;
  };

  async function* execute(req: CreateRunRequest, ctx: HandlerContext, streaming: boolean): AsyncGenerator<RunEventInit> {
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
      usage: {},
    });
    // The run is stored before anything is acknowledged or done. A retry with
    // the same idempotency key gets the run the first attempt created.
    const { run, created } = await deps.store.create(org, accepted, runIdempotency(req, ctx.requestHeader));
    if (!created) {
      yield { event: { case: "run", value: run } };
      return;
    }
    const startedMs = performance.now();
    deps.telemetry?.routed(decision);
    run.state = Run_State.RUNNING;
    await deps.store.save(org, run);
    // Every event of an accepted run also goes to its watchers, on any instance.
    const emit = async (ev: RunEventInit): Promise<RunEvent> => {
      const e = create(RunEventSchema, ev);
      await deps.events.publish(org, run.name, e);
      return e;
    };
    yield await emit({ event: { case: "routed", value: decision } });
    let context: JsonObject = {};
    const headers = forwardCall(ctx);
    try {
      // A for-of over the live array: a failed quality rating appends rewrite_fixer while the run goes on.
      for (const planned of decision.steps) {
        ctx.signal.throwIfAborted();
        // Each step reads the run's shared context as stored, so any instance could run it.
        if (run.steps.length > 0) context = await deps.context.get(org, run.name);
        const step = create(RunStepSchema, { agent: planned.agent, system: planned.system, state: Run_State.RUNNING, startTime: timestampNow() });
        run.steps.push(step);
        yield await emit({ event: { case: "stepStarted", value: step } });
        const client = planned.system === AgentSystem.V1 ? deps.agents.v1 : deps.agents.v2;
        const agentReq = {
          name: planned.agent,
          input: req.input,
          parameters: req.parameters,
          context,
          run: run.name,
          modelTier: planned.modelTier,
        };
        // The caller's deadline and cancellation travel to every hop.
        const callOptions = { signal: ctx.signal, timeoutMs: ctx.timeoutMs(), headers };
        // Each step is a span; the call to the agent service is its child.
        const traced = deps.telemetry?.startStep(planned, run.steps.length - 1);
        const inStep = <T>(fn: () => T): T => (traced ? traceContext.with(traced.context, fn) : fn());
        try {
          if (streaming) {
            for await (const ev of inStep(() => client.streamAgent(agentReq, callOptions))) {
              if (ev.event.case === "delta") {
                yield await emit({ event: { case: "partialOutput", value: { agent: planned.agent, delta: ev.event.value } } });
              } else if (ev.event.case === "result") {
                step.result = ev.event.value;
              }
            }
            if (!step.result) throw new ConnectError(`${planned.agent} ended its stream without a result`, Code.Internal);
          } else {
            step.result = await inStep(() => client.runAgent(agentReq, callOptions));
          }
          step.state = Run_State.SUCCEEDED;
        } catch (e) {
          const err = ConnectError.from(e);
          step.state = err.code === Code.Canceled || err.code === Code.DeadlineExceeded ? Run_State.CANCELLED : Run_State.FAILED;
          step.error = `${Code[err.code]}: ${err.rawMessage}`;
          throw err;
        } finally {
          step.endTime = timestampNow();
          run.updateTime = step.endTime;
          traced?.end(step);
        }
        const result = step.result;
        const key = planned.agent.slice("agents/".length);
        context[key] = result.output ?? {};
        // Shared context is written before the next step starts, scoped to the organization and the run.
        await deps.context.put(org, run.name, key, context[key]);
        const usage = run.usage!;
        usage.inputTokens += result.usage?.inputTokens ?? 0n;
        usage.outputTokens += result.usage?.outputTokens ?? 0n;
        usage.calls += result.usage?.calls ?? 0;
        usage.costUsd += result.usage?.costUsd ?? 0;
        if (planned.agent === plannerAgent && run.steps.length === 1 && result.provider === "offline") {
          // The offline provider fills the plan's schema with placeholders: following it would replace a routed plan with nonsense.
          decision.reasons.push("the offline provider does not plan: the router's plan stands");
          run.route = decision;
        } else if (planned.agent === plannerAgent && run.steps.length === 1) {
          const planned2 = planFrom(result.output, catalog);
          if (planned2.length > 0) {
            // The planner's agents replace the router's; the checks follow creative output as before.
            decision.steps.splice(1, decision.steps.length - 1, ...withQualityGate(create(RouteDecisionSchema, { steps: planned2 }), req.checks, catalog).steps);
            decision.reasons.push(`the orchestration agent planned: ${planned2.map((s) => s.agent.slice(7)).join(", ")}`);
            run.route = decision;
          }
        }
        if (planned.agent === "agents/quality_rater" && needsRewrite(result.output) && !decision.steps.some((s) => s.agent === "agents/rewrite_fixer")) {
          decision.steps.push(rewriteStep());
          decision.reasons.push("quality_rater failed the output: rewrite_fixer added");
          run.route = decision;
        }
        const over = overBudget(req, usage);
        if (over) {
          run.state = Run_State.BUDGET_EXCEEDED;
          run.error = over;
        }
        await deps.store.save(org, run);
        yield await emit({ event: { case: "stepFinished", value: step } });
        yield await emit({
          event: {
            case: "progress",
            value: { run: run.name, completedSteps: run.steps.length, totalSteps: decision.steps.length },
          },
        });
        if (run.state === Run_State.BUDGET_EXCEEDED) break;
      }
      if (run.state !== Run_State.BUDGET_EXCEEDED) run.state = Run_State.SUCCEEDED;
      run.output = context;
      run.summary = run.steps.map((s) => s.result?.summary ?? s.agent).join("\n");
    } catch (e) {
      const err = ConnectError.from(e);
      const cancelled = ctx.signal.aborted || err.code === Code.Canceled || err.code === Code.DeadlineExceeded;
      run.state = cancelled ? Run_State.CANCELLED : Run_State.FAILED;
      run.error = `${Code[err.code]}: ${err.rawMessage}`;
      run.output = context;
    }
    run.updateTime = timestampNow();
    await deps.store.save(org, run);
    deps.telemetry?.finished(org, run, startedMs);
    yield await emit({ event: { case: "run", value: run } });
  }

  const runToEnd = async (req: CreateRunRequest, ctx: HandlerContext): Promise<Run> => {
    let last: Run | undefined;
    for await (const ev of execute(req, ctx, false)) {
      if (ev.event?.case === "run") last = ev.event.value as Run;
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
      // Route every request first: one bad request fails the batch before any run starts.
      const r = await router();
      req.requests.forEach((one, i) => {
        try {
          r.route(one);
        } catch (e) {
          const err = ConnectError.from(e);
          throw new ConnectError(`requests[${i}]: ${err.rawMessage}`, err.code);
        }
      });
      const runs: Run[] = [];
      for (const one of req.requests) runs.push(await runToEnd(one, ctx));
      return { runs };
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
      const { page, nextPageToken } = paginate(agents, req, `s=${req.system};d=${req.department}`, 100);
      return { agents: page, nextPageToken, totalSize: agents.length };
    },
  };
}

import { create, type JsonObject, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { uuidv7 } from "uuidv7";
import { AgentService, AgentSystem, type Agent } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import {
  OrchestratorService,
  Run_State,
  RunSchema,
  RunStepSchema,
  type CreateRunRequest,
  type Run,
  type RunEventSchema,
} from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { paginate } from "../../platform/pagination.js";
import { forwardHeaders } from "../../mesh/call-context.js";
import type { Router } from "./router.js";
import type { RunStore } from "./run-store.js";

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
  const router = async (): Promise<Router> => {
    const agents = await deps.catalog();
    if (routerFor?.agents !== agents) routerFor = { agents, router: deps.router(agents) };
    return routerFor.router;
  };

  async function* execute(req: CreateRunRequest, ctx: HandlerContext, streaming: boolean): AsyncGenerator<RunEventInit> {
    if (req.requestId) {
      const existing = await deps.store.findByRequestId(req.requestId);
      if (existing) {
        yield { event: { case: "run", value: existing } };
        return;
      }
    }
    const decision = (await router()).route(req);
    const now = timestampNow();
    const run: Run = create(RunSchema, {
      name: `runs/${uuidv7()}`,
      input: req.input,
      route: decision,
      state: Run_State.RUNNING,
      createTime: now,
      updateTime: now,
      requestId: req.requestId,
      usage: {},
    });
    await deps.store.put(run);
    yield { event: { case: "routed", value: decision } };
    const context: JsonObject = {};
    const headers = forwardHeaders(ctx.requestHeader);
    try {
      for (const planned of decision.steps) {
        ctx.signal.throwIfAborted();
        const step = create(RunStepSchema, { agent: planned.agent, system: planned.system, state: Run_State.RUNNING, startTime: timestampNow() });
        run.steps.push(step);
        yield { event: { case: "stepStarted", value: step } };
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
        try {
          if (streaming) {
            for await (const ev of client.streamAgent(agentReq, callOptions)) {
              if (ev.event.case === "delta") {
                yield { event: { case: "partialOutput", value: { agent: planned.agent, delta: ev.event.value } } };
              } else if (ev.event.case === "result") {
                step.result = ev.event.value;
              }
            }
            if (!step.result) throw new ConnectError(`${planned.agent} ended its stream without a result`, Code.Internal);
          } else {
            step.result = await client.runAgent(agentReq, callOptions);
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
        }
        const result = step.result;
        context[planned.agent.slice("agents/".length)] = result.output ?? {};
        const usage = run.usage!;
        usage.inputTokens += result.usage?.inputTokens ?? 0n;
        usage.outputTokens += result.usage?.outputTokens ?? 0n;
        usage.calls += result.usage?.calls ?? 0;
        usage.costUsd += result.usage?.costUsd ?? 0;
        await deps.store.put(run);
        yield { event: { case: "stepFinished", value: step } };
        yield {
          event: {
            case: "progress",
            value: { run: run.name, completedSteps: run.steps.length, totalSteps: decision.steps.length },
          },
        };
      }
      run.state = Run_State.SUCCEEDED;
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
    await deps.store.put(run);
    yield { event: { case: "run", value: run } };
  }

  return {
    async createRun(req, ctx) {
      let last: Run | undefined;
      for await (const ev of execute(req, ctx, false)) {
        if (ev.event?.case === "run") last = ev.event.value as Run;
      }
      return last!;
    },
    streamRun(req, ctx) {
      return execute(req, ctx, true);
    },
    async getRun(req) {
      const run = await deps.store.get(req.name);
      if (!run) throw new ConnectError(`run "${req.name}" not found`, Code.NotFound);
      return run;
    },
    async listRuns(req) {
      const { page, nextPageToken } = paginate(await deps.store.list(), req, "runs");
      return { runs: page, nextPageToken };
    },
    async explainRoute(req) {
      return (await router()).route(req);
    },
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

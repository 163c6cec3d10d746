import { create, type JsonObject, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { context as traceContext } from "@opentelemetry/api";
import { AgentSystem, type AgentService, type Agent } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import {
  Run_State,
  RouteDecisionSchema,
  RunStepSchema,
  Target,
  type CreateRunRequest,
  type PlannedStep,
  type RouteDecision,
  type Run,
  type RunEventSchema,
  type RunStep,
} from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { depthAfter, withDependencies } from "./plan-graph.js";
import { needsRewrite, rewriteStep, withQualityGate } from "./quality-gate.js";
import type { RunStore } from "./run-store.js";
import type { RunTelemetry } from "./run-telemetry.js";
import type { SharedContext } from "./shared-context.js";
import { planFrom, plannerAgent } from "./v2-planner.js";

/** RunEventInit is one event of a run as the executor hands it out. */
export type RunEventInit = MessageInitShape<typeof RunEventSchema>;

/** PlanRun is what executing one accepted run needs. */
export interface PlanRun {
  readonly org: string;
  readonly req: CreateRunRequest;
  /** run is the accepted run, RUNNING; the executor fills its steps, output, usage and final state. */
  readonly run: Run;
  /** decision is the run's route; the planner and the rating may change its steps as the run goes. */
  readonly decision: RouteDecision;
  readonly catalog: readonly Agent[];
  readonly agents: { readonly v1: Client<typeof AgentService>; readonly v2: Client<typeof AgentService> };
  readonly store: RunStore;
  readonly context: SharedContext;
  readonly telemetry?: RunTelemetry;
  /** signal is the caller's: cancelling it cancels every running step. */
  readonly signal: AbortSignal;
  /** timeoutMs is the caller's remaining time when the run started; undefined without a deadline. */
  readonly timeoutMs?: number;
  /** headers go with every agent call (trace, caller, credentials). */
  readonly headers: Headers;
  /** streaming runs each step with StreamAgent and passes its text on as partial output. */
  readonly streaming: boolean;
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

/** keyOf is the shared-context key of a step's output: the agent's id. */
const keyOf = (agent: string): string => agent.slice("agents/".length);

/**
 * executePlan runs an accepted run's plan as a DAG (plan-graph.ts): every
 * step whose dependencies have ended starts at once, so independent steps
 * run side by side; a step none of whose required steps succeeded is
 * SKIPPED, and one whose other dependencies failed runs with what the
 * context holds, so one failed side of a hybrid plan leaves the other's
 * work intact. Each step reads the run's shared
 * context as stored when it starts and writes its output there (and into
 * the named context, when the run has one) before its dependants start.
 *
 * Deadlines: a step gets the run's remaining time divided by the number of
 * steps that must still run one after another from it (depthAfter), so time
 * a quick step leaves is passed on, and a step that cannot finish in its
 * share is cancelled upstream by its gRPC deadline.
 *
 * The run ends SUCCEEDED when every step did, PARTIAL when some did and
 * others failed or were skipped (their errors on the steps, the successful
 * outputs kept), FAILED when none did, CANCELLED when the caller cancelled
 * or every failure was a deadline, BUDGET_EXCEEDED when a step took it past
 * its budget (running steps are then cancelled). Events are yielded in the
 * order they happen; the run is saved after every step but the last, which
 * the caller's final save records.
 */
export async function* executePlan(p: PlanRun): AsyncGenerator<RunEventInit> {
  const { run, decision, req, org } = p;
  const started = performance.now();
  const deadlineAt = p.timeoutMs === undefined ? undefined : started + p.timeoutMs;
  // One signal for every step: the caller's cancellation, or the run stopping on its budget.
  const stop = new AbortController();
  const onAbort = (): void => stop.abort(p.signal.reason);
  if (p.signal.aborted) onAbort();
  else p.signal.addEventListener("abort", onAbort, { once: true });

  const output: JsonObject = {};
  const stepAt = new Map<number, RunStep>();
  /** recorded are the steps (by plan index) whose end is recorded: output in the shared context, run saved. */
  const recorded = new Set<number>();
  const queue: RunEventInit[] = [];
  const done: { index: number; error?: ConnectError }[] = [];
  let running = 0;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const push = (ev: RunEventInit): void => {
    queue.push(ev);
    notify();
  };

  /** runStep calls the agent of one step, reading the shared context as stored now. */
  const runStep = async (planned: PlannedStep, step: RunStep, index: number, timeoutMs: number | undefined): Promise<void> => {
    const shared = run.steps.some((s) => s.state === Run_State.SUCCEEDED) || req.contextId ? await p.context.get(org, run.name) : {};
    const client = planned.system === AgentSystem.V1 ? p.agents.v1 : p.agents.v2;
    const agentReq = { name: planned.agent, input: req.input, parameters: req.parameters, context: shared, run: run.name, modelTier: planned.modelTier };
    const callOptions = { signal: stop.signal, timeoutMs, headers: p.headers };
    // Each step is a span; the call to the agent service is its child.
    const traced = p.telemetry?.startStep(planned, index);
    const inStep = <T>(fn: () => T): T => (traced ? traceContext.with(traced.context, fn) : fn());
    try {
      if (p.streaming) {
        for await (const ev of inStep(() => client.streamAgent(agentReq, callOptions))) {
          if (ev.event.case === "delta") push({ event: { case: "partialOutput", value: { agent: planned.agent, delta: ev.event.value } } });
          else if (ev.event.case === "result") step.result = ev.event.value;
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
    } finally {
      step.endTime = timestampNow();
      traced?.end(step);
    }
  };

  /** start begins a step whose dependencies have all succeeded. */
  const start = (index: number, depth: number): void => {
    const planned = decision.steps[index];
    const step = create(RunStepSchema, { agent: planned.agent, system: planned.system, state: Run_State.RUNNING, startTime: timestampNow() });
    stepAt.set(index, step);
    run.steps.push(step);
    running++;
    push({ event: { case: "stepStarted", value: step } });
    const timeoutMs = deadlineAt === undefined ? undefined : Math.max(1, Math.floor((deadlineAt - performance.now()) / depth));
    void runStep(planned, step, index, timeoutMs).then(() => {
      running--;
      done.push({ index });
      notify();
    });
  };

  const indexOf = (name: string): number => decision.steps.findIndex((s) => s.agent === name);
  const stepOf = (name: string): RunStep | undefined => stepAt.get(indexOf(name));

  /** skip records a step that will not run because none of what it requires succeeded. */
  const skip = (index: number, planned: PlannedStep, blocked: RunStep): void => {
    const now = timestampNow();
    const why = planned.requires.length > 1 ? `none of ${planned.requires.join(", ")} succeeded` : `${blocked.agent}, whose output it needs, ended ${Run_State[blocked.state]}`;
    const step = create(RunStepSchema, { agent: planned.agent, system: planned.system, state: Run_State.SKIPPED, error: `not run: ${why}`, startTime: now, endTime: now });
    stepAt.set(index, step);
    recorded.add(index);
    run.steps.push(step);
    push({ event: { case: "stepFinished", value: step } });
  };

  /** schedule starts every step that can start and skips every step that never will; it repeats until nothing changes. */
  const schedule = (): void => {
    if (stop.signal.aborted) return;
    const depth = depthAfter(decision.steps);
    for (let changed = true; changed; ) {
      changed = false;
      decision.steps.forEach((planned, i) => {
        // A dependency counts once it is recorded, its output in the shared context, not merely answered.
        if (stepAt.has(i) || !planned.dependsOn.every((name) => recorded.has(indexOf(name)))) return;
        // Every dependency has ended: the step runs unless none of what it requires succeeded.
        const required = planned.requires.map(stepOf);
        if (required.length > 0 && required.every((s) => s!.state !== Run_State.SUCCEEDED)) skip(i, planned, required[0]!);
        else start(i, depth[i]);
        changed = true;
      });
    }
  };

  /** finish records a step that ended: its output into the shared contexts, its usage, and what it changes in the plan. */
  const finish = async (index: number): Promise<void> => {
    const planned = decision.steps[index];
    const step = stepAt.get(index)!;
    run.updateTime = step.endTime;
    const result = step.state === Run_State.SUCCEEDED ? step.result : undefined;
    if (result) {
      const key = keyOf(planned.agent);
      output[key] = result.output ?? {};
      // Written before any dependant starts, scoped to the organization and the run (and the named context).
      await p.context.put(org, run.name, key, output[key]);
      if (req.contextId) await p.store.putNamedContext(org, req.contextId, key, output[key], run.name);
      const usage = run.usage!;
      usage.inputTokens += result.usage?.inputTokens ?? 0n;
      usage.outputTokens += result.usage?.outputTokens ?? 0n;
      usage.calls += result.usage?.calls ?? 0;
      usage.costUsd += result.usage?.costUsd ?? 0;
      replan(planned, index, result.output, result.provider);
      const over = overBudget(req, usage);
      if (over && run.state !== Run_State.BUDGET_EXCEEDED) {
        run.state = Run_State.BUDGET_EXCEEDED;
        run.error = over;
        stop.abort(new ConnectError(over, Code.ResourceExhausted));
      }
    }
    // The last step to end is recorded by the run's final save, which follows at once (orchestrator-service.ts): one write, not two.
    const last = running === 0 && recorded.size + 1 === decision.steps.length;
    if (!last) await p.store.save(org, run);
    recorded.add(index);
    push({ event: { case: "stepFinished", value: step } });
  };

  /** replan applies what a step's answer changes in the plan: the planner's agents, or a rewrite after a failed rating. */
  const replan = (planned: PlannedStep, index: number, answer: JsonObject | undefined, provider: string): void => {
    if (planned.agent === plannerAgent && index === 0) {
      if (provider === "offline") {
        // The offline provider fills the plan's schema with placeholders: following it would replace a routed plan with nonsense.
        decision.reasons.push("the offline provider does not plan: the router's plan stands");
      } else {
        const steps = planFrom(answer, p.catalog);
        if (steps.length > 0) {
          // The planner's agents replace the router's (nothing else has started: every step waits for the planner); the checks follow creative output as before.
          decision.steps.splice(1, decision.steps.length - 1, ...withQualityGate(create(RouteDecisionSchema, { steps }), req.checks, p.catalog).steps);
          withDependencies(decision.steps, p.catalog, { hybrid: false, sequential: false });
          decision.reasons.push(`the orchestration agent planned: ${steps.map((s) => keyOf(s.agent)).join(", ")}`);
        }
      }
    }
    if (planned.agent === "agents/quality_rater" && needsRewrite(answer) && !decision.steps.some((s) => s.agent === "agents/rewrite_fixer")) {
      decision.steps.push(rewriteStep());
      withDependencies(decision.steps, p.catalog, { hybrid: decision.target === Target.HYBRID, sequential: req.agents.length > 0 });
      decision.reasons.push("quality_rater failed the output: rewrite_fixer added");
    }
    run.route = decision;
  };

  const progress = (): RunEventInit => {
    const total = decision.steps.length;
    const finished = recorded.size;
    return { event: { case: "progress", value: { run: run.name, completedSteps: finished, totalSteps: total, fraction: total ? finished / total : 1 } } };
  };

  try {
    schedule();
    for (;;) {
      if (queue.length) {
        const ev = queue.shift()!;
        yield ev;
        // Progress follows each step that ends, so a watcher sees the fraction move.
        if (ev.event?.case === "stepFinished") yield progress();
        continue;
      }
      if (done.length) {
        await finish(done.shift()!.index);
        schedule();
        continue;
      }
      if (running === 0) break;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    p.signal.removeEventListener("abort", onAbort);
  }
  settle(run, p.signal.aborted);
  run.output = output;
  run.summary = run.steps.map((s) => s.result?.summary || `${s.agent}: ${Run_State[s.state].toLowerCase()}`).join("\n");
}

/** settle sets a run's final state from its steps (see executePlan), unless its budget already stopped it. */
function settle(run: Run, cancelled: boolean): void {
  if (run.state === Run_State.BUDGET_EXCEEDED) return;
  const failed = run.steps.filter((s) => s.state !== Run_State.SUCCEEDED);
  const succeeded = run.steps.length - failed.length;
  const reasons = failed.filter((s) => s.state !== Run_State.SKIPPED).map((s) => `${s.agent}: ${s.error}`);
  if (cancelled) {
    run.state = Run_State.CANCELLED;
    run.error = reasons[0] ?? `${Code[Code.Canceled]}: the caller cancelled the run`;
  } else if (failed.length === 0) {
    run.state = Run_State.SUCCEEDED;
    run.error = "";
  } else if (succeeded > 0) {
    run.state = Run_State.PARTIAL;
    run.error = `${failed.length} of ${run.steps.length} steps did not succeed: ${reasons.join("; ")}`;
  } else {
    const allDeadlines = failed.every((s) => s.state === Run_State.CANCELLED || s.state === Run_State.SKIPPED);
    run.state = allDeadlines ? Run_State.CANCELLED : Run_State.FAILED;
    // The first failure is the run's error, as the caller saw it before plans had branches.
    run.error = failed.find((s) => s.state !== Run_State.SKIPPED)?.error ?? "";
  }
}

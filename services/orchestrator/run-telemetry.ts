import { context, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span } from "@opentelemetry/api";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AgentSystem, ModelTier } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import type { StatusInit } from "../../mesh/status-service.js";
import { Run_State, Target, type PlannedStep, type RouteDecision, type Run, type RunStep } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { durationBuckets, instruments, tracer } from "../../mesh/telemetry.js";

const runInstruments = () =>
  instruments("runs", (meter) => ({
    decisions: meter.createCounter("raptorflow.routing.decisions", {
      unit: "{decision}",
      description: "Runs routed, by target (v1, v2, hybrid) and router.",
    }),
    runs: meter.createCounter("raptorflow.runs", {
      unit: "{run}",
      description: "Runs finished, by target and final state.",
    }),
    duration: meter.createHistogram("raptorflow.run.duration", {
      unit: "s",
      description: "Duration of finished runs, by target and final state.",
      advice: { explicitBucketBoundaries: durationBuckets },
    }),
    steps: meter.createCounter("raptorflow.run.steps", {
      unit: "{step}",
      description: "Steps run, by agent and final state.",
    }),
  }));

/** targetName is a route target as telemetry names it: `v1`, `v2`, `hybrid`. */
export function targetName(t: Target): string {
  return t === Target.V1 ? "v1" : t === Target.V2 ? "v2" : t === Target.HYBRID ? "hybrid" : "unspecified";
}

/** stateName is a run state as telemetry names it: `succeeded`, `failed`, `cancelled`, `budget_exceeded` … */
export function stateName(s: Run_State): string {
  return (Run_State[s] ?? "UNSPECIFIED").toLowerCase();
}

interface FinishedRun {
  readonly organization: string;
  readonly name: string;
  readonly target: string;
  readonly state: string;
  readonly durationMs: number;
  readonly finishTime: Date;
  readonly agents: readonly string[];
}

/** RunTelemetryOptions size what the orchestrator remembers for its status. */
export interface RunTelemetryOptions {
  /** windowMs is how far back the routing mix looks (default 15 minutes). */
  readonly windowMs?: number;
  /** recentRuns is how many finished runs it keeps per organization (default 20). */
  readonly recentRuns?: number;
  /** now is the clock (tests). */
  readonly now?: () => number;
}

/** RunTelemetry is what the orchestrator reports about runs: spans per step, metrics, and its status's routing mix and recent runs. */
export interface RunTelemetry {
  /** routed counts a run's route and names it on the run's span. */
  routed(decision: RouteDecision): void;
  /** startStep starts a step's span (child of the run's); run the step's call in `context`, then call `end` with the step. */
  startStep(planned: PlannedStep, index: number): { readonly context: Context; end(step: RunStep): void };
  /** finished counts a finished run and keeps it for the status. */
  finished(organization: string, run: Run, startedMs: number): void;
  /** status is the routing mix of the window and the organization's recent runs, for the service's status. */
  status(organization: string): StatusInit;
}

/**
 * createRunTelemetry traces and measures the orchestrator's runs: the run's
 * span (CreateRun, StreamRun) gets its route, usage and state; each step is
 * a span (`step agents/x`, with the agent, model, tokens and cost) whose
 * child is the call to the agent service; `raptorflow.routing.decisions`,
 * `raptorflow.runs`, `raptorflow.run.duration` and `raptorflow.run.steps`
 * count them. It remembers the routes of the last minutes and each
 * organization's last runs (route, state, duration — no input, no output)
 * for the status page.
 */
export function createRunTelemetry(options: RunTelemetryOptions = {}): RunTelemetry {
  const windowMs = options.windowMs ?? 15 * 60_000;
  const keep = options.recentRuns ?? 20;
  const now = options.now ?? Date.now;
  const routes: { at: number; target: string }[] = [];
  const recent = new Map<string, FinishedRun[]>();
  const prune = (): void => {
    const since = now() - windowMs;
    while (routes.length && routes[0].at < since) routes.shift();
  };
  return {
    routed(decision) {
      const target = targetName(decision.target);
      routes.push({ at: now(), target });
      prune();
      runInstruments().decisions.add(1, { "raptorflow.route.target": target, "raptorflow.route.router": decision.router });
      trace.getActiveSpan()?.setAttributes({
        "raptorflow.route.target": target,
        "raptorflow.route.router": decision.router,
        "raptorflow.route.confidence": decision.confidence,
        "raptorflow.route.steps": decision.steps.length,
      });
    },
    startStep(planned, index) {
      const attributes: Attributes = {
        "raptorflow.agent": planned.agent,
        "raptorflow.agent.system": planned.system === AgentSystem.V1 ? "v1" : "v2",
        "raptorflow.step.index": index,
        "raptorflow.step.model_tier": planned.modelTier === ModelTier.FAST ? "fast" : planned.modelTier === ModelTier.CAPABLE ? "capable" : "default",
      };
      const span: Span = tracer().startSpan(`step ${planned.agent}`, { kind: SpanKind.INTERNAL, attributes });
      return {
        context: trace.setSpan(context.active(), span),
        end(step) {
          const r = step.result;
          span.setAttributes({
            "raptorflow.step.state": stateName(step.state),
            ...(r
              ? {
                  "gen_ai.provider.name": r.provider,
                  "gen_ai.response.model": r.model,
                  "gen_ai.usage.input_tokens": Number(r.usage?.inputTokens ?? 0n),
                  "gen_ai.usage.output_tokens": Number(r.usage?.outputTokens ?? 0n),
                  "raptorflow.cost_usd": r.usage?.costUsd ?? 0,
                  "raptorflow.cache.hit": r.cached,
                }
              : {}),
          });
          if (step.state !== Run_State.SUCCEEDED) span.setStatus({ code: SpanStatusCode.ERROR, message: step.error });
          span.end();
          runInstruments().steps.add(1, { "raptorflow.agent": planned.agent, "raptorflow.step.state": stateName(step.state) });
        },
      };
    },
    finished(organization, run, startedMs) {
      const target = targetName(run.route?.target ?? Target.UNSPECIFIED);
      const state = stateName(run.state);
      const durationMs = performance.now() - startedMs;
      const at = { "raptorflow.route.target": target, "raptorflow.run.state": state };
      runInstruments().runs.add(1, at);
      runInstruments().duration.record(durationMs / 1000, at);
      trace.getActiveSpan()?.setAttributes({
        "raptorflow.run": run.name,
        "raptorflow.run.state": state,
        "gen_ai.usage.input_tokens": Number(run.usage?.inputTokens ?? 0n),
        "gen_ai.usage.output_tokens": Number(run.usage?.outputTokens ?? 0n),
        "raptorflow.cost_usd": run.usage?.costUsd ?? 0,
      });
      const list = recent.get(organization) ?? [];
      list.unshift({ organization, name: run.name, target, state, durationMs, finishTime: new Date(now()), agents: run.steps.map((s) => s.agent) });
      list.length = Math.min(list.length, keep);
      recent.set(organization, list);
    },
    status(organization) {
      prune();
      const counts = new Map<string, number>([["v1", 0], ["v2", 0], ["hybrid", 0]]);
      for (const r of routes) counts.set(r.target, (counts.get(r.target) ?? 0) + 1);
      return {
        routing: { window: durationFromMs(windowMs), targets: [...counts].map(([target, runs]) => ({ target, runs: BigInt(runs) })) },
        recentRuns: (recent.get(organization) ?? []).map((r) => ({
          name: r.name,
          target: r.target,
          state: r.state,
          duration: durationFromMs(Math.round(r.durationMs)),
          finishTime: timestampFromDate(r.finishTime),
          agents: [...r.agents],
        })),
      };
    },
  };
}

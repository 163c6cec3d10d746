import { trace, type Attributes } from "@opentelemetry/api";
import type { AgentResult } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { durationBuckets, instruments } from "../../mesh/telemetry.js";
import type { AgentDefinition } from "./catalog.js";

const agentInstruments = () =>
  instruments("agents", (meter) => ({
    calls: meter.createCounter("raptorflow.agent.calls", {
      unit: "{call}",
      description: "Agent calls answered, by agent, system and whether the answer came from the cache (failures are in rpc.server.call.duration by code).",
    }),
    duration: meter.createHistogram("raptorflow.agent.call.duration", {
      unit: "s",
      description: "Duration of answered agent calls, by agent and cache use.",
      advice: { explicitBucketBoundaries: durationBuckets },
    }),
    tokens: meter.createCounter("raptorflow.agent.tokens", {
      unit: "{token}",
      description: "Tokens the agents' model calls used, by agent and type (input, output).",
    }),
    cost: meter.createCounter("raptorflow.agent.cost", {
      unit: "USD",
      description: "What the agents' model calls cost, in US dollars, by agent.",
    }),
  }));

/** agentAttributes name an agent on spans and metrics. */
function agentAttributes(agent: AgentDefinition): Attributes {
  return { "raptorflow.agent": `agents/${agent.id}`, "raptorflow.agent.system": agent.system };
}

/** annotateAgentCall names the agent on the call's span (the RunAgent or StreamAgent server span), before anything runs. */
export function annotateAgentCall(agent: AgentDefinition): void {
  trace.getActiveSpan()?.setAttributes({ ...agentAttributes(agent), "raptorflow.agent.prompt_version": agent.promptVersion });
}

/**
 * recordAgentResult puts an answered call's model, tokens and cost on the
 * call's span and counts it in the agent metrics (calls, duration, tokens,
 * cost, by agent; a cached answer costs nothing).
 */
export function recordAgentResult(agent: AgentDefinition, result: AgentResult, startedMs: number): void {
  const at = agentAttributes(agent);
  const inputTokens = Number(result.usage?.inputTokens ?? 0n);
  const outputTokens = Number(result.usage?.outputTokens ?? 0n);
  const cost = result.usage?.costUsd ?? 0;
  trace.getActiveSpan()?.setAttributes({
    ...at,
    "gen_ai.provider.name": result.provider,
    "gen_ai.response.model": result.model,
    "gen_ai.usage.input_tokens": inputTokens,
    "gen_ai.usage.output_tokens": outputTokens,
    "raptorflow.cost_usd": cost,
    "raptorflow.cache.hit": result.cached,
    "raptorflow.records": result.records.length,
  });
  const m = agentInstruments();
  m.calls.add(1, { ...at, "raptorflow.cache.hit": result.cached });
  m.duration.record((performance.now() - startedMs) / 1000, { ...at, "raptorflow.cache.hit": result.cached });
  if (inputTokens) m.tokens.add(inputTokens, { ...at, "gen_ai.token.type": "input" });
  if (outputTokens) m.tokens.add(outputTokens, { ...at, "gen_ai.token.type": "output" });
  if (cost) m.cost.add(cost, at);
}

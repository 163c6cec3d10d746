import { create, fromJsonString, toJsonString, type JsonObject } from "@bufbuild/protobuf";
import { cacheKey, type ResultCache } from "../kv/result-cache.js";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  AgentResultSchema,
  AgentSchema,
  MemoryUseSchema,
  UsageSchema,
  AgentService,
  AgentSystem,
  ModelTier,
  type Agent,
  type AgentResult,
  type RunAgentRequest,
} from "../../gen/raptorflow/agent/v1/agent_pb.js";
import type { LlmProvider, LlmResponse, LlmTool, ModelTierName } from "../llm/llm-provider.js";
import { createPriceTable, type PriceTable } from "../llm/prices.js";
import { paginate } from "../pagination.js";
import { checkParameters, llmRequest, runAgent, type AgentCall, type AgentOutcome } from "./agent-runtime.js";
import type { AgentMemory } from "./agent-memory.js";
import type { AgentDefinition, Catalog } from "./catalog.js";
import { validationProblems } from "./schema-validator.js";
import { annotateAgentCall, recordAgentResult } from "./agent-telemetry.js";
import { logger } from "../../mesh/logger.js";
import { callerOrganization } from "../../mesh/call-context.js";

/** KeepScope is what a kept result belongs to: the caller's organization, the run, and what the agent was given. */
export interface KeepScope {
  /** organization is the caller's organization; records are scoped to it. */
  readonly organization: string;
  /** run is the run the call belongs to (`runs/…`), or empty. */
  readonly run: string;
  /** input is the user's request. */
  readonly input: string;
  /** parameters are the structured inputs the agent was given. */
  readonly parameters: JsonObject;
  /** context is the run's shared context the agent was given. */
  readonly context: JsonObject;
}

/**
 * AgentResultHooks let a service finish and keep what its agents produce, in
 * RunAgent and StreamAgent alike: the V1 service computes its agents'
 * numeric fields with the deterministic tools and keeps every result as
 * business records.
 */
export interface AgentResultHooks {
  /**
   * check runs before anything else is done for a call whose parameters fit
   * the input schema (no memory, cache or model yet): it may refuse the call,
   * for example because a parameter names a record that does not exist.
   */
  readonly check?: (agent: AgentDefinition, scope: KeepScope) => Promise<void>;
  /**
   * finish completes a validated answer before it is cached or returned: it
   * may replace fields of the output (numbers computed by tools) and add the
   * tool calls it made. What it returns is validated against the agent's
   * output schema again; an output that no longer fits fails the call with
   * INTERNAL.
   */
  readonly finish?: (agent: AgentDefinition, call: AgentCall, outcome: AgentOutcome) => AgentOutcome | Promise<AgentOutcome>;
  /**
   * keep stores a successful result (a cached one too: every call keeps its
   * own) and returns the names of the records it wrote, which the result
   * reports in `records`. A failure fails the call.
   */
  readonly keep?: (agent: AgentDefinition, result: AgentResult, scope: KeepScope) => Promise<readonly string[]>;
}

/** AgentServiceOptions are the dependencies of an agent service. */
export interface AgentServiceOptions {
  /** catalog is the agents this service runs. */
  readonly catalog: Catalog;
  /** provider answers the model calls. */
  readonly provider: LlmProvider;
  /** tools are the deterministic tools agents may call (each agent gets those its catalog entry names). */
  readonly tools?: readonly LlmTool[];
  /** prices turn tokens into cost; MODEL_PRICES over the defaults when undefined. */
  readonly prices?: PriceTable;
  /** cache serves identical RunAgent calls again (same agent, prompt version, model, input and context); none when undefined. */
  readonly cache?: ResultCache;
  /** memory gives agents whose catalog entry has `memory` the organization's memories; none when undefined. */
  readonly memory?: AgentMemory;
  /** hooks finish and keep the agents' results; none when undefined. */
  readonly hooks?: AgentResultHooks;
}

/** noCache tells whether the caller opted out of cached results (`cache-control: no-cache` metadata). */
function noCache(header: Headers): boolean {
  return /\bno-cache\b|\bno-store\b/i.test(header.get("cache-control") ?? "");
}

/** toAgentMessage turns a catalog entry into its `raptorflow.agent.v1.Agent` resource. */
export function toAgentMessage(a: AgentDefinition): Agent {
  return create(AgentSchema, {
    name: `agents/${a.id}`,
    system: a.system === "v1" ? AgentSystem.V1 : AgentSystem.V2,
    department: a.department,
    displayName: a.displayName,
    description: a.description,
    defaultModelTier: a.modelTier === "fast" ? ModelTier.FAST : ModelTier.CAPABLE,
    promptVersion: a.promptVersion,
    tools: [...a.tools],
    inputs: [...a.inputs],
    outputs: [...a.outputs],
    examples: [...a.examples],
    // Copies, so nothing done to a message can change the catalog.
    inputSchema: structuredClone(a.inputSchema) as JsonObject,
    outputSchema: structuredClone(a.outputSchema) as JsonObject,
  });
}

/** tierName maps the contract's ModelTier to the runtime's name; UNSPECIFIED means the agent's default. */
export function tierName(tier: ModelTier): ModelTierName | undefined {
  return tier === ModelTier.FAST ? "fast" : tier === ModelTier.CAPABLE ? "capable" : undefined;
}

const defaultPriceTable = createPriceTable({});

/** toAgentResult turns a validated outcome into the contract's AgentResult, with its accounting (cost from the price table). */
export function toAgentResult(provider: LlmProvider, agent: AgentDefinition, r: AgentOutcome, started: number, prices: PriceTable = defaultPriceTable): AgentResult {
  const ms = performance.now() - started;
  return create(AgentResultSchema, {
    agent: `agents/${agent.id}`,
    system: agent.system === "v1" ? AgentSystem.V1 : AgentSystem.V2,
    output: r.output,
    summary: `${agent.displayName} (${r.provider ?? provider.name}/${r.model}): ${Object.keys(r.output).join(", ")}`,
    provider: r.provider ?? provider.name,
    model: r.model,
    modelTier: r.tier === "fast" ? ModelTier.FAST : ModelTier.CAPABLE,
    promptVersion: agent.promptVersion,
    usage: { inputTokens: BigInt(r.inputTokens), outputTokens: BigInt(r.outputTokens), calls: r.calls, costUsd: prices.cost(r.model, r.inputTokens, r.outputTokens) },
    duration: { seconds: BigInt(Math.floor(ms / 1000)), nanos: Math.round((ms % 1000) * 1e6) },
    toolCalls: r.toolCalls.map((c) => ({ name: c.name, arguments: c.arguments, result: c.result })),
  });
}

/** runAgentResult runs one agent and returns its AgentResult: what RunAgent answers, for in-process callers. */
export async function runAgentResult(provider: LlmProvider, agent: AgentDefinition, call: AgentCall, prices?: PriceTable): Promise<AgentResult> {
  const started = performance.now();
  return toAgentResult(provider, agent, await runAgent(provider, agent, call), started, prices);
}

/**
 * createAgentServiceImpl implements `raptorflow.agent.v1.AgentService` over
 * a catalog and an LLM provider. The V1 and V2 agent services both serve it,
 * each with its own catalog: the orchestrator treats them alike.
 */
export function createAgentServiceImpl(options: AgentServiceOptions): ServiceImpl<typeof AgentService> {
  const { catalog, provider } = options;
  const messages = catalog.agents.map(toAgentMessage);

  const find = (name: string): AgentDefinition => {
    const agent = name.startsWith("agents/") ? catalog.get(name.slice("agents/".length)) : undefined;
    if (!agent) throw new ConnectError(`agent "${name}" is not in the ${catalog.system} catalog`, Code.NotFound);
    return agent;
  };

  const prices = options.prices ?? createPriceTable();
  const result = (agent: AgentDefinition, r: AgentOutcome, started: number): AgentResult => toAgentResult(provider, agent, r, started, prices);


  const toolsOf = (agent: AgentDefinition) => (options.tools ?? []).filter((t) => agent.tools.includes(t.name));
  // A call's parameters are checked against the agent's input schema first,
  // so a bad one fails with INVALID_ARGUMENT before memory, the cache or any model.
  const callOf = async (req: RunAgentRequest, ctx: HandlerContext, agent: AgentDefinition): Promise<{ call: AgentCall; recalled: readonly string[] }> => {
    const parameters = req.parameters ?? {};
    checkParameters(agent, parameters);
    await options.hooks?.check?.(agent, scopeOf(req, ctx, parameters, req.context ?? {}));
    const recalled = await recall(callerOrganization(ctx), agent, req.input, parameters);
    return {
      call: {
        tools: toolsOf(agent),
        input: req.input,
        // Memory fills only what the caller left empty, and adds to the context under `memory`.
        parameters: { ...parameters, ...recalled?.parameters },
        context: { ...req.context, ...recalled?.context },
        tier: tierName(req.modelTier),
        signal: ctx.signal,
      },
      recalled: recalled?.names ?? [],
    };
  };

  // Memory helps but is not needed: when it cannot be read or written, the agent runs without it.
  const recall = async (org: string, agent: AgentDefinition, input: string, parameters: JsonObject) => {
    try {
      return await options.memory?.recall(org, agent, input, parameters);
    } catch (e) {
      logger("agents").warn({ agent: `agents/${agent.id}`, err: e }, "memory not read; running without it");
      return undefined;
    }
  };
  // Placeholder answers (the offline provider's) are not knowledge: they are never remembered.
  const remember = async (org: string, agent: AgentDefinition, r: AgentResult, run: string, recalled: readonly string[]) => {
    if (!agent.memory || (!agent.memory.reads.length && !agent.memory.writes.length)) return;
    let remembered: string[] = [];
    if (options.memory && r.provider !== "offline" && r.output) {
      try {
        remembered = await options.memory.remember(org, agent, r.output, run);
      } catch (e) {
        logger("agents").warn({ agent: `agents/${agent.id}`, err: e }, "memory not written");
      }
    }
    r.memory = create(MemoryUseSchema, { recalled: [...recalled], remembered });
  };
  const finish = async (agent: AgentDefinition, call: AgentCall, outcome: AgentOutcome): Promise<AgentOutcome> => {
    if (!options.hooks?.finish) return outcome;
    const done = await options.hooks.finish(agent, call, outcome);
    const problems = validationProblems(agent.outputSchema, done.output, "pointer");
    if (problems.length) throw new ConnectError(`agents/${agent.id}: the finished output does not fit the output schema: ${problems.join("; ")}`, Code.Internal);
    return done;
  };
  const scopeOf = (req: RunAgentRequest, ctx: HandlerContext, parameters: JsonObject, context: JsonObject): KeepScope => ({
    organization: callerOrganization(ctx),
    run: req.run,
    input: req.input,
    parameters,
    context,
  });
  const keep = async (agent: AgentDefinition, r: AgentResult, req: RunAgentRequest, call: AgentCall, ctx: HandlerContext) => {
    if (options.hooks?.keep) r.records = [...(await options.hooks.keep(agent, r, scopeOf(req, ctx, call.parameters, call.context)))];
  };

  return {
    listAgents(req) {
      const matching = messages.filter((a) => req.department === "" || a.department === req.department);
      const { page, nextPageToken } = paginate(matching, req, `d=${req.department}`);
      return { agents: page, nextPageToken, totalSize: matching.length };
    },
    getAgent(req) {
      return toAgentMessage(find(req.name));
    },
    async runAgent(req, ctx) {
      const agent = find(req.name);
      annotateAgentCall(agent);
      const started = performance.now();
      const { call, recalled } = await callOf(req, ctx, agent);
      const cache = options.cache && !noCache(ctx.requestHeader) ? options.cache : undefined;
      const tier = call.tier ?? agent.modelTier;
      const key = cache
        ? cacheKey("agent-result", [agent.id, agent.promptVersion, provider.name, provider.model(tier), call.input.trim().replace(/\s+/g, " "), call.parameters, call.context])
        : "";
      const hit = cache && (await cache.get(key));
      if (hit) {
        const cached = fromJsonString(AgentResultSchema, hit);
        cached.cached = true;
        cached.usage = create(UsageSchema);
        // The first call remembered what the answer taught; this one adds nothing.
        if (cached.memory) cached.memory.remembered = [];
        // Records are never cached: this call keeps its own, for its caller.
        cached.records = [];
        await keep(agent, cached, req, call, ctx);
        recordAgentResult(agent, cached, started);
        return cached;
      }
      const fresh = result(agent, await finish(agent, call, await runAgent(provider, agent, call)), started);
      await remember(callerOrganization(ctx), agent, fresh, req.run, recalled);
      if (cache) await cache.set(key, toJsonString(AgentResultSchema, fresh));
      await keep(agent, fresh, req, call, ctx);
      recordAgentResult(agent, fresh, started);
      return fresh;
    },
    async *streamAgent(req, ctx) {
      const agent = find(req.name);
      annotateAgentCall(agent);
      const started = performance.now();
      const { call, recalled } = await callOf(req, ctx, agent);
      const tier = call.tier ?? agent.modelTier;
      yield { event: { case: "started", value: { agent: req.name, provider: provider.name, model: provider.model(tier) } } };
      let done: LlmResponse | undefined;
      // The provider runs the tool rounds; each tool call is reported as soon as the tool answered.
      for await (const chunk of provider.stream(llmRequest(agent, call))) {
        if ("delta" in chunk) yield { event: { case: "delta", value: chunk.delta } };
        else if ("tool" in chunk) yield { event: { case: "toolCall", value: { name: chunk.tool.name, arguments: chunk.tool.arguments, result: chunk.tool.result } } };
        else done = chunk.done;
      }
      // The deltas were the model's own text; the result carries the finished output.
      const outcome = await finish(agent, call, await runAgent(provider, agent, call, done));
      const finished = result(agent, outcome, started);
      await remember(callerOrganization(ctx), agent, finished, req.run, recalled);
      await keep(agent, finished, req, call, ctx);
      recordAgentResult(agent, finished, started);
      yield { event: { case: "result", value: finished } };
    },
  };
}

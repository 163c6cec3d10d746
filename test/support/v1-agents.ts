import type { JsonObject } from "@bufbuild/protobuf";
import { createClient, createRouterTransport, type Client, type Transport } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { AgentService } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { IntelligenceService } from "../../gen/raptorflow/v1/intelligence_pb.js";
import { createAgentServiceImpl } from "../../platform/agents/agent-service.js";
import { loadCatalog, type Catalog } from "../../platform/agents/catalog.js";
import type { ResultCache } from "../../platform/kv/result-cache.js";
import type { LlmProvider, LlmRequest } from "../../platform/llm/llm-provider.js";
import { createOfflineProvider } from "../../platform/llm/offline-provider.js";
import { llmTools } from "../../platform/tools/llm-tools.js";
import { finishV1Answer } from "../../services/v1-agents/computed-fields.js";
import { createIntelligenceImpl } from "../../services/v1-agents/intelligence-service.js";
import { createV1ResultHooks } from "../../services/v1-agents/result-records.js";
import { openV1Stores, v1ResourceServices, type V1Stores } from "../../services/v1-agents/v1-resources.js";

/** v1Catalog is the V1 catalog, loaded once. */
export const v1Catalog: Catalog = loadCatalog("services/v1-agents");

/** ScriptedProvider is the offline provider with some agents' answers changed, and every request it saw. */
export interface ScriptedProvider extends LlmProvider {
  /** requests are the model requests, with the agent each was for, in order. */
  readonly requests: { agent: string; request: LlmRequest }[];
}

/**
 * scriptedProvider answers as the offline provider does, except that the
 * top-level keys in `answers[agent]` replace the offline answer's: a model
 * whose numbers, weeks or metrics a test knows.
 */
export function scriptedProvider(answers: Record<string, JsonObject> = {}, catalog: Catalog = v1Catalog): ScriptedProvider {
  const offline = createOfflineProvider();
  const requests: { agent: string; request: LlmRequest }[] = [];
  const agentOf = (req: LlmRequest) => catalog.agents.find((a) => a.systemPrompt === req.system)?.id ?? "?";
  const answer = async (req: LlmRequest) => {
    const agent = agentOf(req);
    requests.push({ agent, request: req });
    const res = await offline.complete(req);
    const override = answers[agent];
    return override ? { ...res, text: JSON.stringify({ ...JSON.parse(res.text), ...override }) } : res;
  };
  return {
    name: "offline",
    model: offline.model,
    requests,
    complete: answer,
    async *stream(req) {
      const res = await answer(req);
      yield { delta: res.text };
      yield { done: res };
    },
  };
}

/** V1InProcess is the V1 agent service with its resources and actions, served in process over memory stores. */
export interface V1InProcess {
  /** transport reaches every V1 service. */
  readonly transport: Transport;
  /** agents is a client of its AgentService. */
  readonly agents: Client<typeof AgentService>;
  /** stores are its records. */
  readonly stores: V1Stores;
  /** client makes a client of any V1 service over the transport. */
  client<S extends DescService>(service: S): Client<S>;
}

/** startV1InProcess builds the V1 agent service exactly as its server does (hooks, tools, resources, actions), in process. */
export function startV1InProcess(options: { provider?: LlmProvider; cache?: ResultCache } = {}): V1InProcess {
  const stores = openV1Stores(undefined);
  const agentsImpl = createAgentServiceImpl({
    catalog: v1Catalog,
    provider: options.provider ?? createOfflineProvider(),
    tools: llmTools,
    cache: options.cache,
    hooks: createV1ResultHooks(stores, finishV1Answer),
  });
  const transport = createRouterTransport(({ service }) => {
    service(AgentService, agentsImpl);
    for (const r of v1ResourceServices(stores)) service(r.service, r.impl as never);
    service(IntelligenceService, createIntelligenceImpl(agentsImpl));
  });
  return { transport, stores, agents: createClient(AgentService, transport), client: (service) => createClient(service, transport) };
}

import type { ServiceImpl } from "@connectrpc/connect";
import { AgentService } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { createMeshServer, type MeshServer, type ServiceRegistration } from "../../mesh/grpc-server.js";
import type { ServerAuth } from "../auth/auth-from-env.js";
import type { LlmProvider } from "../llm/llm-provider.js";
import { providerFromEnv } from "../llm/provider-from-env.js";
import { traceProvider } from "../llm/traced-provider.js";
import { kvDependency } from "../kv/kv-health.js";
import type { AgentMemory } from "./agent-memory.js";
import { createAgentServiceImpl, type AgentResultHooks } from "./agent-service.js";
import { loadCatalog, type Catalog } from "./catalog.js";
import { openKeyValueStore } from "../kv/open-kv-store.js";
import { createResultCache } from "../kv/result-cache.js";
import { llmTools } from "../tools/llm-tools.js";

/** AgentServerOptions configure an agent service (V1 or V2). */
export interface AgentServerOptions {
  /** catalogDir holds `catalog.json` and `prompts/`. */
  readonly catalogDir: string;
  /** provider answers model calls; defaults to the one `LLM_PROVIDER` names. */
  readonly provider?: LlmProvider;
  /** memory gives the agents that use memory the organization's memories (V2's brand memory). */
  readonly memory?: AgentMemory;
  /**
   * auth checks every caller: its access token and the role each method's
   * contract allows (serverAuthFromEnv); closed with the server.
   */
  readonly auth?: ServerAuth & { close?(): void };
  /** hooks finish and keep the agents' results (V1: computed numbers, records). */
  readonly hooks?: AgentResultHooks;
  /**
   * services are further services the agent service serves besides
   * AgentService, built with its catalog, its provider and its own
   * AgentService implementation (to run agents in process, hooks included).
   */
  readonly services?: (deps: { catalog: Catalog; provider: LlmProvider; agents: ServiceImpl<typeof AgentService> }) => readonly ServiceRegistration[];
}

/**
 * buildAgentServer assembles an agent service: its catalog (read and checked
 * at start-up), its LLM provider and a mesh server serving
 * `raptorflow.agent.v1.AgentService`. The V1 and V2 services differ only in
 * their catalog and their extra services.
 */
export function buildAgentServer(options: AgentServerOptions): MeshServer & { catalog: Catalog; close(): Promise<void> } {
  const catalog = loadCatalog(options.catalogDir);
  // Every model call is traced and measured (tokens, cost), whichever provider answers.
  const provider = traceProvider(options.provider ?? providerFromEnv());
  const kv = openKeyValueStore();
  const cacheOff = process.env.AGENT_CACHE === "off";
  const cache = cacheOff ? undefined : createResultCache(kv, Number(process.env.AGENT_CACHE_TTL_MS || 3_600_000));
  const agents = createAgentServiceImpl({ catalog, provider, cache, tools: llmTools, memory: options.memory, hooks: options.hooks });
  const server = createMeshServer({
    auth: options.auth,
    services: [{ service: AgentService, impl: agents }, ...(options.services?.({ catalog, provider, agents }) ?? [])],
  });
  // Redis holds the result cache: without it agents still answer, uncached (degraded).
  if (kv.kind === "redis") server.readiness.watch(kvDependency(kv));
  return {
    ...server,
    catalog,
    async close() {
      await server.shutdown();
      options.auth?.close?.();
      await kv.close();
    },
  };
}

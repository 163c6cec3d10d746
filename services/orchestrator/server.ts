import type { Agent } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { AgentService } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { OrchestratorService } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { connectUpstream } from "../../mesh/clients.js";
import { createMeshServer, type MeshServer } from "../../mesh/grpc-server.js";
import type { Client } from "@connectrpc/connect";
import { createOrchestratorImpl } from "./orchestrator-service.js";
import { createKeywordRouter } from "./router.js";
import { topology } from "../../mesh/topology.js";
import { openRunStore } from "./store/open-store.js";
import { openKeyValueStore } from "../../platform/kv/open-kv-store.js";
import { createSharedContext } from "./shared-context.js";
import { createRunEvents } from "./run-events.js";
import { healthFollowsDatabase, reportDependency } from "../../platform/db/health.js";

/** OrchestratorOptions configure the orchestrator service. */
export interface OrchestratorOptions {
  /** env gives the upstream addresses (`V1_AGENTS_ADDR`, `V2_AGENTS_ADDR`); defaults to process.env. */
  readonly env?: Record<string, string | undefined>;
  /** catalogTtlMs is how long the agent catalogs are cached (default 60 s). */
  readonly catalogTtlMs?: number;
}

/** listAll pages through an agent service's ListAgents. */
async function listAll(client: Client<typeof AgentService>): Promise<Agent[]> {
  const out: Agent[] = [];
  let pageToken = "";
  do {
    const res = await client.listAgents({ pageSize: 1000, pageToken }, { timeoutMs: 5000 });
    out.push(...res.agents);
    pageToken = res.nextPageToken;
  } while (pageToken !== "");
  return out;
}

/**
 * build assembles the orchestrator: clients of both agent services (grpc-js,
 * policies from the topology), the router, the run store (PostgreSQL or the
 * embedded PGlite, migrated), and a mesh server with health and reflection.
 * It does not listen.
 */
export async function build(options: OrchestratorOptions = {}): Promise<MeshServer & { close(): Promise<void> }> {
  const env = options.env ?? process.env;
  const { store, db } = await openRunStore(env, topology.orchestrator.callPolicy.timeoutMs);
  const kv = openKeyValueStore(env);
  const v1 = connectUpstream("v1-agents", AgentService, { env });
  const v2 = connectUpstream("v2-agents", AgentService, { env });
  const ttl = options.catalogTtlMs ?? 60_000;
  let cached: { at: number; agents: Promise<readonly Agent[]> } | undefined;
  const catalog = (): Promise<readonly Agent[]> => {
    if (!cached || Date.now() - cached.at > ttl) {
      const agents = Promise.all([listAll(v1.client), listAll(v2.client)]).then(([a, b]) => [...a, ...b]);
      cached = { at: Date.now(), agents };
      // A failed fetch must not be cached: the next call tries again.
      agents.catch(() => (cached = undefined));
    }
    return cached.agents;
  };
  const server = createMeshServer({
    services: [
      {
        service: OrchestratorService,
        impl: createOrchestratorImpl({
          agents: { v1: v1.client, v2: v2.client },
          catalog,
          router: createKeywordRouter,
          store,
          context: createSharedContext(kv, store, Number(env.SHARED_CONTEXT_TTL_MS || 3_600_000)),
          events: createRunEvents(kv),
        }),
      },
    ],
  });
  // The database answering is part of being able to serve: report NOT_SERVING
  // while it does not, instead of failing calls one by one.
  const health = healthFollowsDatabase(server, db);
  // Redis is optional: its loss degrades (fallbacks), so it has its own health entry.
  const stopRedisCheck = kv.kind === "redis" ? reportDependency(server.health, "redis", () => kv.ping()) : () => {};
  return {
    ...server,
    setServing: health.setServing,
    async close() {
      health.stop();
      stopRedisCheck();
      await server.shutdown();
      v1.transport.close();
      v2.transport.close();
      await store.close();
      await kv.close();
    },
  };
}

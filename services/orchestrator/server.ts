import type { Agent } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { AgentService } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { OrchestratorService } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { connectUpstream } from "../../mesh/clients.js";
import { createMeshServer, type MeshServer } from "../../mesh/grpc-server.js";
import { serverAuthFromEnv } from "../../platform/auth/auth-from-env.js";
import { serviceTokenInterceptorFromEnv } from "../../platform/auth/service-token.js";
import type { Client } from "@connectrpc/connect";
import { createOrchestratorImpl } from "./orchestrator-service.js";
import { createSemanticRouter } from "./routing/semantic-router.js";
import { createLearnedExamples, replayRouteFeedback, shareLearnedExamples } from "./routing/learned-examples.js";
import { routerConfigFromEnv } from "./routing/router-config.js";
import { withModelAssist } from "./routing/model-assist.js";
import { topology } from "../../mesh/topology.js";
import { openRunStore } from "./store/open-store.js";
import { openKeyValueStore } from "../../platform/kv/open-kv-store.js";
import { createSharedContext } from "./shared-context.js";
import { createRunEvents } from "./run-events.js";
import { databaseDependency } from "../../platform/db/health.js";
import { kvDependency } from "../../platform/kv/kv-health.js";
import { callerOrganization } from "../../mesh/call-context.js";
import { upstreamDependency } from "../../mesh/upstream-health.js";
import { createRunTelemetry } from "./run-telemetry.js";

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
 * policies from the topology), the semantic router (with the route feedback
 * stored so far), the run store (PostgreSQL or the embedded PGlite,
 * migrated), and a mesh server with health and reflection. Its health
 * follows its database (required), Redis and the agent services (optional:
 * degraded without them); its status adds the routing mix and recent runs.
 * It does not listen.
 */
export async function build(options: OrchestratorOptions = {}): Promise<MeshServer & { close(): Promise<void> }> {
  const env = options.env ?? process.env;
  // Configuration first: AUTH, and the key that signs the orchestrator's service tokens (required in production).
  const serviceToken = await serviceTokenInterceptorFromEnv("orchestrator", env);
  const auth = serverAuthFromEnv(env);
  const { store, db } = await openRunStore(env, topology.orchestrator.callPolicy.timeoutMs);
  // The router learns from route feedback: what is stored is replayed now, new feedback as it arrives.
  const kv = openKeyValueStore(env);
  // Feedback any instance receives teaches every running instance (over Redis pub/sub when REDIS_URL is set).
  const learned = await shareLearnedExamples(createLearnedExamples(), kv);
  await replayRouteFeedback(store, learned);
  const routing = routerConfigFromEnv(env);
  const router = (agents: readonly Agent[]) => {
    const local = createSemanticRouter(agents, { learned, pricing: routing.pricing });
    return routing.assist ? withModelAssist(local, routing.assist) : local;
  };
  // Calls to the agents are authenticated as services/orchestrator, for the caller's organization.
  const v1 = connectUpstream("v1-agents", AgentService, { env, interceptors: [serviceToken] });
  const v2 = connectUpstream("v2-agents", AgentService, { env, interceptors: [serviceToken] });
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
  const telemetry = createRunTelemetry();
  const server = createMeshServer({
    auth,
    status: (ctx) => telemetry.status(callerOrganization(ctx)),
    services: [
      {
        service: OrchestratorService,
        impl: createOrchestratorImpl({
          agents: { v1: v1.client, v2: v2.client },
          catalog,
          router,
          store,
          context: createSharedContext(kv, store, Number(env.SHARED_CONTEXT_TTL_MS || 3_600_000)),
          events: createRunEvents(kv),
          telemetry,
        }),
      },
    ],
  });
  // Redis and the agent services are optional: without them runs degrade (fallbacks, one system), so each has its own health entry.
  if (kv.kind === "redis") server.readiness.watch(kvDependency(kv));
  server.readiness.watch(upstreamDependency("v1-agents", v1.transport));
  server.readiness.watch(upstreamDependency("v2-agents", v2.transport));
  // The database answering is part of being able to serve: NOT_SERVING while it does not (the store closes it).
  if (db) server.readiness.watch(databaseDependency(db));
  return {
    ...server,
    async close() {
      await server.shutdown();
      auth.close();
      v1.transport.close();
      v2.transport.close();
      await store.close();
      await learned.close();
      await kv.close();
    },
  };
}

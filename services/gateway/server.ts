import type { DescService } from "@bufbuild/protobuf";
import type { FastifyInstance } from "fastify";
import { createRouterTransport, type Transport } from "@connectrpc/connect";
import { AssetService } from "../../gen/raptorflow/v1/asset_pb.js";
import { CampaignService } from "../../gen/raptorflow/v1/campaign_pb.js";
import { CohortService } from "../../gen/raptorflow/v1/cohort_pb.js";
import { IcpService } from "../../gen/raptorflow/v1/icp_pb.js";
import { IntelligenceService } from "../../gen/raptorflow/v1/intelligence_pb.js";
import { MetricService } from "../../gen/raptorflow/v1/metric_pb.js";
import { MoveService } from "../../gen/raptorflow/v1/move_pb.js";
import { CompetitorSurfaceService } from "../../gen/raptorflow/v1/competitor_surface_pb.js";
import { InsightService } from "../../gen/raptorflow/v1/insight_pb.js";
import { JtbdMapService } from "../../gen/raptorflow/v1/jtbd_map_pb.js";
import { MonetizationModelService } from "../../gen/raptorflow/v1/monetization_model_pb.js";
import { PlanService } from "../../gen/raptorflow/v1/plan_pb.js";
import { PositioningService } from "../../gen/raptorflow/v1/positioning_pb.js";
import { StrategyProfileService } from "../../gen/raptorflow/v1/strategy_profile_pb.js";
import { AssetService as V2AssetService } from "../../gen/raptorflow/v2/asset_pb.js";
import { CampaignService as V2CampaignService } from "../../gen/raptorflow/v2/campaign_pb.js";
import { MemoryService } from "../../gen/raptorflow/v2/memory_pb.js";
import { OrchestratorService } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { IdentityService } from "../../gen/raptorflow/identity/v1/identity_pb.js";
import { MeshStatusService } from "../../gen/raptorflow/v3/status_pb.js";
import { createServiceHealth } from "../../mesh/service-health.js";
import { upstreamTransport } from "../../mesh/clients.js";
import { topology, type ServiceName } from "../../mesh/topology.js";
import { createGatewayApp } from "./gateway-app.js";
import { hardeningFromEnv, wholeSetting } from "./settings.js";
import { tokenVerifierFromEnv } from "../../platform/auth/auth-from-env.js";
import { openKeyValueStore } from "../../platform/kv/open-kv-store.js";
import { createRateLimiter } from "../../platform/kv/rate-limiter.js";
import { kvDependency } from "../../platform/kv/kv-health.js";
import { upstreamDependency } from "../../mesh/upstream-health.js";
import { createMeshStatusImpl, meshReadiness, type Upstream } from "./mesh-status.js";
import { opsPagePlugin } from "./ops-page-plugin.js";

/**
 * gatewayServices are the services the gateway exposes (REST, Connect,
 * gRPC-Web) and where each lives; `gateway` means answered by the gateway
 * itself (the mesh status).
 */
export const gatewayServices: readonly { readonly service: DescService; readonly upstream: ServiceName }[] = [
  { service: OrchestratorService, upstream: "orchestrator" },
  { service: MeshStatusService, upstream: "gateway" },
  // The V1 resources (the legacy ones and those the V1 agents' results become) and actions live on v1-agents.
  ...[
    IcpService,
    CohortService,
    CampaignService,
    MoveService,
    MetricService,
    AssetService,
    CompetitorSurfaceService,
    StrategyProfileService,
    PositioningService,
    JtbdMapService,
    MonetizationModelService,
    PlanService,
    InsightService,
    IntelligenceService,
  ].map((service) => ({ service, upstream: "v1-agents" as const })),
  // V2's campaigns, assets and memories live on v2-agents.
  ...[V2CampaignService, V2AssetService, MemoryService].map((service) => ({ service, upstream: "v2-agents" as const })),
  // Tokens, who-am-I, API keys and the JWKS live on identity.
  { service: IdentityService, upstream: "identity" },
];

/** GatewayOptions configure our gateway. */
export interface GatewayOptions {
  /** env gives the upstream addresses and limits; defaults to process.env. */
  readonly env?: Record<string, string | undefined>;
  /** logger turns fastify's request log on (default: on unless NODE_ENV=test). */
  readonly logger?: boolean;
}

/** passwordEmail is the email a CreateToken REST body signs in with (`{"password": {"email": …}}`), if any. */
function passwordEmail(body: unknown): string | undefined {
  const email = (body as { password?: { email?: unknown } } | undefined)?.password?.email;
  return typeof email === "string" ? email : undefined;
}

/**
 * build assembles RaptorFlow's API gateway: `/v3` (the orchestrator), the
 * legacy V1 routes (v1-agents), V2's records (`/v2`, v2-agents) and the
 * identity routes (`/v3/tokens`, `/v3/me`, API keys, `/.well-known/jwks.json`),
 * transcoded from the contracts, plus Connect
 * and gRPC-Web, all forwarded to the mesh over grpc-js; the mesh's status
 * (`GET /v3/status`, answered here), `/readyz` aggregating the mesh, and
 * the operations page (`/ops`). It does not listen.
 */
export async function build(options: GatewayOptions = {}): Promise<FastifyInstance> {
  const env = options.env ?? process.env;
  const maxRequestBytes = wholeSetting(env, "GATEWAY_MAX_REQUEST_BYTES", 1024 * 1024);
  const maxResponseBytes = wholeSetting(env, "GATEWAY_MAX_RESPONSE_BYTES", 4 * 1024 * 1024);
  const hardening = hardeningFromEnv(env);
  // The general limits, per organization (or address, without a valid token) and per access token: on by default in production.
  const production = env.NODE_ENV === "production";
  const rateLimit = wholeSetting(env, "GATEWAY_RATE_LIMIT", production ? 6000 : 0);
  const perTokenLimit = wholeSetting(env, "GATEWAY_RATE_LIMIT_PER_TOKEN", production ? 1200 : 0);
  // The token routes' stricter limits are on by default: sign-ins per address and email, and token calls per address.
  const tokenLimit = wholeSetting(env, "GATEWAY_TOKEN_RATE_LIMIT", 10);
  const tokenAddressLimit = wholeSetting(env, "GATEWAY_TOKEN_RATE_LIMIT_PER_ADDRESS", 300);
  const tokenWindowMs = wholeSetting(env, "GATEWAY_TOKEN_RATE_LIMIT_WINDOW_MS", 15 * 60_000);
  const kv = rateLimit > 0 || perTokenLimit > 0 || tokenLimit > 0 || tokenAddressLimit > 0 ? openKeyValueStore(env) : undefined;
  const windowMs = wholeSetting(env, "GATEWAY_RATE_LIMIT_WINDOW_MS", 60_000);
  const limiter = (limit: number) => (kv && limit > 0 ? createRateLimiter(kv, { limit, windowMs }) : undefined);
  // The limits key on the verified token: the gateway checks tokens (with the services' keys) only to count them.
  const tokens = rateLimit > 0 || perTokenLimit > 0 ? tokenVerifierFromEnv(env) : undefined;
  const tokenLimiter = (limit: number) => (kv && limit > 0 ? createRateLimiter(kv, { limit, windowMs: tokenWindowMs }) : undefined);
  const orchestrator = upstreamTransport("orchestrator", { env });
  const v1 = upstreamTransport("v1-agents", { env });
  const v2 = upstreamTransport("v2-agents", { env });
  const identity = upstreamTransport("identity", { env });
  // The gateway serves while any upstream does: each is watched, and a lost one makes it degraded, not down.
  const health = createServiceHealth();
  const upstreams: Upstream[] = [
    { name: "orchestrator", transport: orchestrator },
    { name: "v1-agents", transport: v1 },
    { name: "v2-agents", transport: v2 },
    { name: "identity", transport: identity },
  ];
  for (const u of upstreams) health.watch(upstreamDependency(u.name, u.transport));
  if (kv?.kind === "redis") health.watch(kvDependency(kv));
  // GET /v3/status is answered here, from every service's own status: a local service behind the same transcoder.
  const status = createRouterTransport(({ service }) => service(MeshStatusService, createMeshStatusImpl({ health, upstreams })));
  // Where each exposed service is reached; the gateway answers the mesh status itself.
  const transports: Readonly<Record<ServiceName, Transport>> = { orchestrator, "v1-agents": v1, "v2-agents": v2, identity, gateway: status };
  const app = await createGatewayApp({
    services: [
      ...gatewayServices.map(({ service, upstream }) => ({ service, transport: transports[upstream] })),
    ],
    timeoutMs: topology.orchestrator.callPolicy.timeoutMs,
    title: "RaptorFlow API",
    version: "3",
    maxRequestBytes,
    maxResponseBytes,
    logger: options.logger ?? env.NODE_ENV !== "test",
    rateLimit: tokens && { perOrganization: limiter(rateLimit), perToken: limiter(perTokenLimit), verify: (t) => tokens.verifier.verify(t) },
    server: hardening.server,
    maxJsonDepth: hardening.maxJsonDepth,
    corsOrigins: hardening.corsOrigins,
    trustedProxies: hardening.trustedProxies,
    credentialRateLimit: {
      methods: [IdentityService.method.createToken, IdentityService.method.refreshToken, IdentityService.method.revokeToken],
      signIns: [IdentityService.method.createToken],
      perAccount: tokenLimiter(tokenLimit),
      perAddress: tokenLimiter(tokenAddressLimit),
      accountOf: passwordEmail,
    },
    health,
    readiness: () => meshReadiness(health),
    onClose: async () => {
      orchestrator.close();
      v1.close();
      v2.close();
      identity.close();
      tokens?.close();
      await kv?.close();
    },
  });
  await app.register(opsPagePlugin);
  return app;
}

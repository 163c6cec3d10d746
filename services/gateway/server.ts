import type { FastifyInstance } from "fastify";
import { AssetService } from "../../gen/raptorflow/v1/asset_pb.js";
import { CampaignService } from "../../gen/raptorflow/v1/campaign_pb.js";
import { CohortService } from "../../gen/raptorflow/v1/cohort_pb.js";
import { IcpService } from "../../gen/raptorflow/v1/icp_pb.js";
import { IntelligenceService } from "../../gen/raptorflow/v1/intelligence_pb.js";
import { MetricService } from "../../gen/raptorflow/v1/metric_pb.js";
import { MoveService } from "../../gen/raptorflow/v1/move_pb.js";
import { AssetService as V2AssetService } from "../../gen/raptorflow/v2/asset_pb.js";
import { CampaignService as V2CampaignService } from "../../gen/raptorflow/v2/campaign_pb.js";
import { MemoryService } from "../../gen/raptorflow/v2/memory_pb.js";
import { OrchestratorService } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { IdentityService } from "../../gen/raptorflow/identity/v1/identity_pb.js";
import { upstreamTransport } from "../../mesh/clients.js";
import { topology } from "../../mesh/topology.js";
import { createGatewayApp } from "./gateway-app.js";
import { openKeyValueStore } from "../../platform/kv/open-kv-store.js";
import { createRateLimiter } from "../../platform/kv/rate-limiter.js";

/** GatewayOptions configure our gateway. */
export interface GatewayOptions {
  /** env gives the upstream addresses and limits; defaults to process.env. */
  readonly env?: Record<string, string | undefined>;
  /** logger turns fastify's request log on (default: on unless NODE_ENV=test). */
  readonly logger?: boolean;
}

/** wholeSetting reads a whole number (bytes, a count, milliseconds) from the environment, failing fast on a bad value. */
function wholeSetting(env: Record<string, string | undefined>, key: string, fallback: number): number {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw)) throw new Error(`${key} must be a whole number, got "${raw}"`);
  return Number(raw);
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
 * and gRPC-Web, all forwarded to the mesh over grpc-js. It does not listen.
 */
export async function build(options: GatewayOptions = {}): Promise<FastifyInstance> {
  const env = options.env ?? process.env;
  const maxRequestBytes = wholeSetting(env, "GATEWAY_MAX_REQUEST_BYTES", 1024 * 1024);
  const maxResponseBytes = wholeSetting(env, "GATEWAY_MAX_RESPONSE_BYTES", 4 * 1024 * 1024);
  const rateLimit = wholeSetting(env, "GATEWAY_RATE_LIMIT", 0);
  // The token routes' stricter limits are on by default: sign-ins per address and email, and token calls per address.
  const tokenLimit = wholeSetting(env, "GATEWAY_TOKEN_RATE_LIMIT", 10);
  const tokenAddressLimit = wholeSetting(env, "GATEWAY_TOKEN_RATE_LIMIT_PER_ADDRESS", 300);
  const tokenWindowMs = wholeSetting(env, "GATEWAY_TOKEN_RATE_LIMIT_WINDOW_MS", 15 * 60_000);
  const kv = rateLimit > 0 || tokenLimit > 0 || tokenAddressLimit > 0 ? openKeyValueStore(env) : undefined;
  const rateLimiter = kv && rateLimit > 0 ? createRateLimiter(kv, { limit: rateLimit, windowMs: wholeSetting(env, "GATEWAY_RATE_LIMIT_WINDOW_MS", 60_000) }) : undefined;
  const tokenLimiter = (limit: number) => (kv && limit > 0 ? createRateLimiter(kv, { limit, windowMs: tokenWindowMs }) : undefined);
  const orchestrator = upstreamTransport("orchestrator", { env });
  const v1 = upstreamTransport("v1-agents", { env });
  const v2 = upstreamTransport("v2-agents", { env });
  const identity = upstreamTransport("identity", { env });
  return createGatewayApp({
    services: [
      { service: OrchestratorService, transport: orchestrator },
      // The legacy V1 resources and actions live on v1-agents.
      ...[
        IcpService,
        CohortService,
        CampaignService,
        MoveService,
        MetricService,
        AssetService,
        IntelligenceService,
      ].map((service) => ({
        service,
        transport: v1,
      })),
      // V2's campaigns, assets and memories live on v2-agents.
      ...[V2CampaignService, V2AssetService, MemoryService].map((service) => ({ service, transport: v2 })),
      // Tokens, who-am-I, API keys and the JWKS live on identity.
      { service: IdentityService, transport: identity },
    ],
    timeoutMs: topology.orchestrator.callPolicy.timeoutMs,
    title: "RaptorFlow API",
    version: "3",
    maxRequestBytes,
    maxResponseBytes,
    logger: options.logger ?? env.NODE_ENV !== "test",
    rateLimiter,
    credentialRateLimit: {
      methods: [IdentityService.method.createToken, IdentityService.method.refreshToken, IdentityService.method.revokeToken],
      signIns: [IdentityService.method.createToken],
      perAccount: tokenLimiter(tokenLimit),
      perAddress: tokenLimiter(tokenAddressLimit),
      accountOf: passwordEmail,
    },
    onClose: async () => {
      orchestrator.close();
      v1.close();
      v2.close();
      identity.close();
      await kv?.close();
    },
  });
}

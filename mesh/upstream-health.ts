import { createClient, type Transport } from "@connectrpc/connect";
import { context } from "@opentelemetry/api";
import { suppressTracing } from "@opentelemetry/core";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import type { Dependency } from "./service-health.js";

/**
 * upstreamDependency is a service of the mesh as a dependency of its
 * caller: healthy while its grpc.health.v1 says SERVING (a degraded service
 * still does). Optional: without one upstream a caller still serves what
 * does not need it, degraded. The checks are not traced: they are nobody's
 * request.
 */
export function upstreamDependency(name: string, transport: Transport, timeoutMs = 2_000): Dependency {
  const health = createClient(Health, transport);
  return {
    name,
    kind: "upstream",
    required: false,
    check: () =>
      context.with(suppressTracing(context.active()), async () => (await health.check({ service: "" }, { timeoutMs })).status === HealthCheckResponse_ServingStatus.SERVING),
  };
}

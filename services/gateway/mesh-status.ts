import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type ServiceImpl, type Transport } from "@connectrpc/connect";
import { ServiceStatusSchema, ServingState, StatusService, type ServiceStatus } from "../../gen/raptorflow/ops/v1/status_pb.js";
import { MeshStatusService } from "../../gen/raptorflow/v3/status_pb.js";
import { forwardHeaders } from "../../mesh/call-context.js";
import { readinessReport, type ReadinessReport } from "../../mesh/ops-http.js";
import type { ServiceHealth } from "../../mesh/service-health.js";
import { serviceStatus } from "../../mesh/status-service.js";
import { serviceNames, topology, type ServiceName } from "../../mesh/topology.js";

/** Upstream is a service of the mesh the gateway reaches, and the transport that reaches it. */
export interface Upstream {
  /** name is its name in the topology. */
  readonly name: ServiceName;
  /** transport carries calls to it. */
  readonly transport: Transport;
}

/** meshOrder is the order the status lists services in: the gateway, then the topology's start order. */
const meshOrder: readonly ServiceName[] = ["gateway", ...serviceNames.filter((n) => n !== "gateway")];

/** meshState is the mesh's health from its services': NOT_SERVING when the gateway or the orchestrator is, SERVING when all are, DEGRADED otherwise. */
export function meshState(services: readonly ServiceStatus[]): ServingState {
  const stateOf = (name: string) => services.find((s) => s.service === name)?.state ?? ServingState.UNSPECIFIED;
  for (const critical of ["gateway", "orchestrator"]) {
    const s = stateOf(critical);
    if (s === ServingState.NOT_SERVING || s === ServingState.UNSPECIFIED) return ServingState.NOT_SERVING;
  }
  return services.every((s) => s.state === ServingState.SERVING) ? ServingState.SERVING : ServingState.DEGRADED;
}

/** MeshStatusOptions are what the gateway's mesh status is made of. */
export interface MeshStatusOptions {
  /** health is the gateway's own, with its upstreams watched (upstreamDependency). */
  readonly health: ServiceHealth;
  /** upstreams are the services it asks. */
  readonly upstreams: readonly Upstream[];
  /** timeoutMs bounds each service's answer (default 2 s). */
  readonly timeoutMs?: number;
}

/**
 * createMeshStatusImpl implements `raptorflow.v3.MeshStatusService`
 * (`GET /v3/status`) in the gateway: the gateway's own status, and each
 * upstream's `raptorflow.ops.v1.StatusService` answer, asked in parallel
 * with the caller's credentials. An upstream that does not answer is
 * reported with the error, and the state its health checks last saw. Who
 * may ask is the services' call: a caller one of them refuses
 * (UNAUTHENTICATED, PERMISSION_DENIED) gets that refusal, not a partial
 * status.
 */
export function createMeshStatusImpl(options: MeshStatusOptions): ServiceImpl<typeof MeshStatusService> {
  const clients = new Map(options.upstreams.map((u) => [u.name, createClient(StatusService, u.transport)]));
  const timeoutMs = options.timeoutMs ?? 2_000;
  return {
    async getMeshStatus(_req, ctx) {
      const headers = forwardHeaders(ctx.requestHeader);
      const checked = new Map(options.health.dependencies().map((d) => [d.name, d]));
      const answers = await Promise.all(
        meshOrder.map(async (name): Promise<ServiceStatus | undefined> => {
          if (name === "gateway") {
            // This process is the gateway, whatever name its telemetry was started with (an in-process test, a tool).
            const own = serviceStatus(options.health);
            own.service = "gateway";
            own.upstreams = [...topology.gateway.upstreams];
            return own;
          }
          const client = clients.get(name);
          if (!client) return undefined;
          try {
            return await client.getServiceStatus({}, { headers, timeoutMs, signal: ctx.signal });
          } catch (e) {
            const err = ConnectError.from(e);
            if (err.code === Code.Unauthenticated || err.code === Code.PermissionDenied) throw err;
            const healthy = checked.get(name)?.healthy;
            return create(ServiceStatusSchema, {
              service: name,
              // Refused (no access to its details) is not down: its health checks say how it is.
              state: healthy === undefined ? ServingState.UNSPECIFIED : healthy ? ServingState.SERVING : ServingState.NOT_SERVING,
              upstreams: [...topology[name].upstreams],
              error: err.rawMessage,
            });
          }
        }),
      );
      const services = answers.filter((s): s is ServiceStatus => s !== undefined);
      return { state: meshState(services), services, time: timestampNow() };
    },
  };
}

/**
 * meshReadiness is the gateway's `/readyz`: its own readiness (not serving
 * only while it starts or drains; its upstreams are optional, so a lost one
 * makes it degraded) with each upstream as its health checks last saw it.
 */
export function meshReadiness(health: ServiceHealth): ReadinessReport {
  const report = readinessReport(health);
  return {
    ...report,
    services: health
      .dependencies()
      .filter((d) => d.kind === "upstream")
      .map((d) => ({ service: d.name, status: d.healthy ? "serving" : "not_serving" })),
  };
}

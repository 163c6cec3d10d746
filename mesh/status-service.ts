import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { ServiceStatusSchema, ServingState, StatusService, type RecentRunSchema, type RoutingMixSchema, type ServiceStatus } from "../gen/raptorflow/ops/v1/status_pb.js";
import { processCallStats, type CallStats } from "./call-stats.js";
import type { ServiceHealth, ServingState as State } from "./service-health.js";
import { serviceIdentity } from "./telemetry.js";
import { isServiceName, topology } from "./topology.js";

/** StatusExtras are what a service adds to its status: the orchestrator's routing mix and recent runs. */
export type StatusExtras = (ctx: HandlerContext) => Promise<StatusInit> | StatusInit;

/** StatusInit is what a service adds to its status: the orchestrator's routing mix and recent runs. */
export interface StatusInit {
  /** routing is how recent runs were routed. */
  readonly routing?: MessageInitShape<typeof RoutingMixSchema>;
  /** recentRuns are the caller's organization's recent runs, newest first. */
  readonly recentRuns?: readonly MessageInitShape<typeof RecentRunSchema>[];
}

/** servingStateOf maps a ServiceHealth state to the contract's enum. */
export function servingStateOf(state: State): ServingState {
  return state === "SERVING" ? ServingState.SERVING : state === "DEGRADED" ? ServingState.DEGRADED : ServingState.NOT_SERVING;
}

/** statusWindowSeconds is the window of the recent-call counts a status reports. */
export const statusWindowSeconds = 60;

/**
 * serviceStatus is this process's status: its identity (name, version,
 * instance, start time, uptime), its health and its dependencies', its
 * recent calls and its upstreams in the topology.
 */
export function serviceStatus(health: ServiceHealth, extras: StatusInit = {}, stats: CallStats = processCallStats): ServiceStatus {
  const id = serviceIdentity();
  const w = stats.window(statusWindowSeconds);
  const init: MessageInitShape<typeof ServiceStatusSchema> = {
    service: id.service,
    version: id.version,
    instance: id.instance,
    startTime: timestampFromDate(id.startTime),
    uptime: durationFromMs(Date.now() - id.startTime.getTime()),
    state: servingStateOf(health.state()),
    dependencies: health.dependencies().map((d) => ({
      name: d.name,
      kind: d.kind,
      required: d.required,
      healthy: d.healthy,
      checkTime: d.checkTime ? timestampFromDate(d.checkTime) : undefined,
    })),
    calls: {
      window: durationFromMs(w.windowSeconds * 1000),
      calls: BigInt(w.calls),
      errors: BigInt(w.errors),
      callsPerSecond: w.calls / w.windowSeconds,
      errorRatio: w.calls ? w.errors / w.calls : 0,
    },
    upstreams: isServiceName(id.service) ? [...topology[id.service].upstreams] : [],
    routing: extras.routing,
    recentRuns: extras.recentRuns ? [...extras.recentRuns] : [],
  };
  return create(ServiceStatusSchema, init);
}

/** createStatusImpl implements `raptorflow.ops.v1.StatusService` for a service, with its extras. */
export function createStatusImpl(health: ServiceHealth, extras?: StatusExtras): ServiceImpl<typeof StatusService> {
  return {
    async getServiceStatus(_req, ctx) {
      return serviceStatus(health, extras ? await extras(ctx) : {});
    },
  };
}

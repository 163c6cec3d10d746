/**
 * The shape of the mesh: every service, its port, its upstreams, how it is
 * called and how it scales. The local runner, the gRPC clients, cdk/ and the
 * Kubernetes chart read this file; nothing else hard-codes a port or an
 * address.
 */

/** ServiceName names one service of the mesh. */
export type ServiceName = "gateway" | "orchestrator" | "v1-agents" | "v2-agents";

/** CallPolicy is how callers call a service: deadline and retries. */
export interface CallPolicy {
  /** timeoutMs is the default deadline of a call when the caller has none. */
  readonly timeoutMs: number;
  /** retry is the retry policy for UNAVAILABLE answers (idempotent-safe: the call never reached a handler). */
  readonly retry: {
    readonly maxAttempts: number;
    readonly initialBackoffMs: number;
    readonly maxBackoffMs: number;
    readonly backoffMultiplier: number;
    readonly retryableCodes: readonly string[];
  };
}

/** Scaling is a service's task size and task count range in production. */
export interface Scaling {
  /** cpu is the task CPU in ECS units (1024 = one vCPU). */
  readonly cpu: number;
  /** memoryMiB is the task memory. */
  readonly memoryMiB: number;
  /** minTasks is the least number of tasks. */
  readonly minTasks: number;
  /** maxTasks is the most number of tasks. */
  readonly maxTasks: number;
  /** spot says whether the tasks may run on spot capacity. */
  readonly spot: boolean;
}

/** ServiceSpec describes one service of the mesh. */
export interface ServiceSpec {
  /** name is the service's name, used for its env prefix, container and DNS name. */
  readonly name: ServiceName;
  /** protocol is what the port speaks: `http` (REST, Connect, gRPC-Web) or `grpc`. */
  readonly protocol: "http" | "grpc";
  /** port is the default listening port, overridable by `<PREFIX>_PORT`. */
  readonly port: number;
  /** grpcServices are the fully-qualified gRPC services it serves. */
  readonly grpcServices: readonly string[];
  /** upstreams are the services it calls. */
  readonly upstreams: readonly ServiceName[];
  /** callPolicy is how others call it. */
  readonly callPolicy: CallPolicy;
  /** scaling is its production size. */
  readonly scaling: Scaling;
}

const unavailableRetry = {
  maxAttempts: 3,
  initialBackoffMs: 50,
  maxBackoffMs: 1000,
  backoffMultiplier: 2,
  retryableCodes: ["UNAVAILABLE"],
} as const;

/** topology is the mesh: gateway -> orchestrator -> v1-agents, v2-agents. */
export const topology: Readonly<Record<ServiceName, ServiceSpec>> = {
  gateway: {
    name: "gateway",
    protocol: "http",
    port: 8080,
    grpcServices: [],
    upstreams: ["orchestrator", "v1-agents", "v2-agents"],
    callPolicy: { timeoutMs: 60_000, retry: unavailableRetry },
    scaling: { cpu: 512, memoryMiB: 1024, minTasks: 2, maxTasks: 15, spot: false },
  },
  orchestrator: {
    name: "orchestrator",
    protocol: "grpc",
    port: 50051,
    grpcServices: ["raptorflow.v3.OrchestratorService"],
    upstreams: ["v1-agents", "v2-agents"],
    callPolicy: { timeoutMs: 60_000, retry: unavailableRetry },
    scaling: { cpu: 1024, memoryMiB: 2048, minTasks: 2, maxTasks: 20, spot: false },
  },
  "v1-agents": {
    name: "v1-agents",
    protocol: "grpc",
    port: 50052,
    grpcServices: [
      "raptorflow.agent.v1.AgentService",
      "raptorflow.v1.IcpService",
      "raptorflow.v1.CohortService",
      "raptorflow.v1.CampaignService",
      "raptorflow.v1.MoveService",
      "raptorflow.v1.MetricService",
      "raptorflow.v1.AssetService",
      "raptorflow.v1.IntelligenceService",
    ],
    upstreams: [],
    callPolicy: { timeoutMs: 30_000, retry: unavailableRetry },
    scaling: { cpu: 512, memoryMiB: 1024, minTasks: 1, maxTasks: 10, spot: false },
  },
  "v2-agents": {
    name: "v2-agents",
    protocol: "grpc",
    port: 50053,
    grpcServices: ["raptorflow.agent.v1.AgentService", "raptorflow.v2.CampaignService", "raptorflow.v2.AssetService", "raptorflow.v2.MemoryService"],
    upstreams: [],
    callPolicy: { timeoutMs: 30_000, retry: unavailableRetry },
    scaling: { cpu: 512, memoryMiB: 1024, minTasks: 3, maxTasks: 50, spot: true },
  },
};

/** serviceNames lists the services in start order: upstreams before callers. */
export const serviceNames: readonly ServiceName[] = ["v1-agents", "v2-agents", "orchestrator", "gateway"];

/** isServiceName tells whether a string names a service of the mesh. */
export function isServiceName(s: string): s is ServiceName {
  return Object.hasOwn(topology, s);
}

/** envPrefix is the environment prefix of a service: `v1-agents` -> `V1_AGENTS`. */
export function envPrefix(name: ServiceName): string {
  return name.toUpperCase().replaceAll("-", "_");
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * listenPort is the port a service listens on: `<PREFIX>_PORT` when set,
 * else the topology's default. A bad value is an error, not a silent default.
 */
export function listenPort(name: ServiceName, env: Env = process.env): number {
  const key = `${envPrefix(name)}_PORT`;
  const raw = env[key];
  if (raw === undefined || raw === "") return topology[name].port;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${key} must be a port number from 0 to 65535, got "${raw}"`);
  }
  return port;
}

/**
 * upstreamAddress is where to reach a service: `<PREFIX>_ADDR` (host:port,
 * set by the deployment: Cloud Map, Service Connect or Kubernetes DNS) when
 * set, else 127.0.0.1 and its listen port.
 */
export function upstreamAddress(name: ServiceName, env: Env = process.env): string {
  const addr = env[`${envPrefix(name)}_ADDR`];
  if (addr !== undefined && addr !== "") return addr;
  return `127.0.0.1:${listenPort(name, env)}`;
}

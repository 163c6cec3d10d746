/**
 * The shape of the mesh: every service, its port, its upstreams, how it is
 * called and how it scales. The local runner, the gRPC clients, cdk/ and the
 * Kubernetes chart read this file; nothing else hard-codes a port or an
 * address.
 */

/**
 * meshName names the mesh wherever a deployment needs one name for all of it:
 * the ECS cluster, the App Mesh mesh, the service-discovery namespace, the
 * Kubernetes namespace.
 */
export const meshName = "raptorflow";

/** ServiceName names one service of the mesh. */
export type ServiceName = "gateway" | "orchestrator" | "v1-agents" | "v2-agents" | "identity";

/**
 * CallPolicy is how callers call a service: the deadline, the retries, and
 * the resilience each calling process keeps per upstream (mesh/resilience.ts):
 * a circuit breaker, a bulkhead and a retry budget. The three are optional so
 * that a spec written without them (a test's, a new service's) still works;
 * `resiliencePolicyOf` fills in `defaultResilience`.
 */
export interface CallPolicy {
  /** timeoutMs is the default deadline of a call when the caller has none. */
  readonly timeoutMs: number;
  /**
   * retry is how failed calls are tried again. Callers (mesh/resilience.ts)
   * retry only calls that are safe to repeat (the method is declared
   * `NO_SIDE_EFFECTS` or `IDEMPOTENT`, or the call carries an
   * `idempotency-key`), only on UNAVAILABLE and RESOURCE_EXHAUSTED, within the
   * retry budget and the call's deadline, up to `maxAttempts` attempts with
   * exponential backoff and jitter. `retryableCodes` are the codes the mesh's
   * proxy retries where there is one (App Mesh routes, cdk/).
   */
  readonly retry: {
    /** maxAttempts counts every attempt, the first included (gRPC's meaning). */
    readonly maxAttempts: number;
    /** initialBackoffMs is the scale of the first backoff (jittered). */
    readonly initialBackoffMs: number;
    /** maxBackoffMs bounds every backoff. */
    readonly maxBackoffMs: number;
    /** backoffMultiplier is the backoff's exponential base. */
    readonly backoffMultiplier: number;
    /** retryableCodes are the gRPC codes (`UNAVAILABLE`) the mesh's proxy retries. */
    readonly retryableCodes: readonly string[];
  };
  /** breaker opens the upstream's circuit when too many of its calls fail; `defaultResilience.breaker` when absent. */
  readonly breaker?: BreakerPolicy;
  /** bulkhead bounds the calls in flight to the upstream; `defaultResilience.bulkhead` when absent. */
  readonly bulkhead?: BulkheadPolicy;
  /** retryBudget bounds the retries to the upstream; `defaultResilience.retryBudget` when absent. */
  readonly retryBudget?: RetryBudgetPolicy;
}

/**
 * BreakerPolicy is when a caller stops calling an upstream that fails, and
 * when it tries again. Only failures that say the upstream is unhealthy count
 * (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED), never a caller's
 * mistake (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED …).
 */
export interface BreakerPolicy {
  /** failureRate (between 0 and 1) of the counted calls in the window above which the circuit opens. */
  readonly failureRate: number;
  /** windowMs is the sampling window the rate is measured over. */
  readonly windowMs: number;
  /** minimumCalls is how many counted calls the window needs before the circuit may open (a quiet caller's few failures are not a trend). */
  readonly minimumCalls: number;
  /** halfOpenAfterMs is how long an open circuit refuses calls before one probe call may go through; its success closes the circuit. */
  readonly halfOpenAfterMs: number;
}

/** BulkheadPolicy bounds what one calling process asks of an upstream at once. */
export interface BulkheadPolicy {
  /** maxConcurrent is the most calls in flight (a stream counts while it opens). */
  readonly maxConcurrent: number;
  /** maxQueued is the most calls waiting for a slot; past it a call is refused with RESOURCE_EXHAUSTED. */
  readonly maxQueued: number;
}

/**
 * RetryBudgetPolicy bounds retries so that they cannot multiply an outage's
 * load: over the last `windowMs`, a calling process makes at most
 * `minRetries` plus `ratio` times the calls it made to the upstream.
 */
export interface RetryBudgetPolicy {
  /** ratio of retries to calls allowed over the window (0.2: one retry for every five calls). */
  readonly ratio: number;
  /** minRetries are allowed in any window, so a quiet caller can still retry. */
  readonly minRetries: number;
  /** windowMs is the window calls and retries are counted over. */
  readonly windowMs: number;
}

/** ResiliencePolicy is a call policy's breaker, bulkhead and retry budget, each filled in. */
export interface ResiliencePolicy {
  /** breaker is when callers stop calling the service, and when they try again. */
  readonly breaker: BreakerPolicy;
  /** bulkhead bounds a caller's calls in flight to the service. */
  readonly bulkhead: BulkheadPolicy;
  /** retryBudget bounds a caller's retries to the service. */
  readonly retryBudget: RetryBudgetPolicy;
}

/** defaultResilience is what a call policy without its own breaker, bulkhead or retry budget gets: the fast services' values. */
export const defaultResilience: ResiliencePolicy = {
  // Open when more than half of at least 20 calls in 10 s fail; probe again after 2 s.
  breaker: { failureRate: 0.5, windowMs: 10_000, minimumCalls: 20, halfOpenAfterMs: 2_000 },
  bulkhead: { maxConcurrent: 200, maxQueued: 100 },
  // One retry for every five calls over 10 s, and 10 in any case.
  retryBudget: { ratio: 0.2, minRetries: 10, windowMs: 10_000 },
};

/** resiliencePolicyOf is a call policy's breaker, bulkhead and retry budget, `defaultResilience` where it has none. */
export function resiliencePolicyOf(policy: CallPolicy): ResiliencePolicy {
  return {
    breaker: policy.breaker ?? defaultResilience.breaker,
    bulkhead: policy.bulkhead ?? defaultResilience.bulkhead,
    retryBudget: policy.retryBudget ?? defaultResilience.retryBudget,
  };
}

/** cpuUnitsPerVcpu is how many of Scaling's CPU units make one vCPU (ECS's unit; Kubernetes counts millicores). */
export const cpuUnitsPerVcpu = 1024;

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

/**
 * HealthCheck is how an orchestrator (ECS, App Mesh, Kubernetes, a load
 * balancer) probes a service: `grpc` asks `grpc.health.v1.Health/Check` on the
 * service's port, `http` GETs `path` (200 serving, anything else not).
 */
export interface HealthCheck {
  /** kind is the probe: the gRPC health protocol or an HTTP GET. */
  readonly kind: "grpc" | "http";
  /** path is what an `http` probe GETs. */
  readonly path?: string;
  /** intervalSeconds is the time between probes. */
  readonly intervalSeconds: number;
  /** timeoutSeconds is how long one probe may take. */
  readonly timeoutSeconds: number;
  /** healthyThreshold is how many probes in a row must pass before traffic comes. */
  readonly healthyThreshold: number;
  /** unhealthyThreshold is how many probes in a row may fail before the task is replaced. */
  readonly unhealthyThreshold: number;
  /** startPeriodSeconds is the grace after start during which failed probes do not count (migrations run then). */
  readonly startPeriodSeconds: number;
}

/**
 * Exposure says who outside the mesh reaches a service: `public` (the
 * internet, through the load balancer's HTTPS listener), `internal` (gRPC
 * clients inside the network, through the internal load balancer) or `mesh`
 * (only its callers in the mesh).
 */
export type Exposure = "public" | "internal" | "mesh";

/**
 * Backing is a managed dependency a service needs in production, so a
 * deployment gives it that access and no other: `postgres` (DATABASE_URL and
 * its password), `redis` (REDIS_URL), `llm` (the model providers' keys and
 * Bedrock invocation).
 */
export type Backing = "postgres" | "redis" | "llm";

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
  /** health is how it is probed; without it, `healthCheckOf` derives one from the protocol. */
  readonly health?: HealthCheck;
  /** exposure is who outside the mesh reaches it; `mesh` when absent. */
  readonly exposure?: Exposure;
  /** needs are the managed dependencies it uses in production; none when absent. */
  readonly needs?: readonly Backing[];
  /**
   * secrets are environment variables of its own it reads from the
   * deployment's secret store (values never in code or config): ECS injects
   * each from Secrets Manager, Kubernetes from the Secret `<service>-secrets`.
   */
  readonly secrets?: readonly string[];
  /**
   * metricsPort is the default port of the service's operations listener
   * (HTTP: Prometheus `/metrics`, `/livez`, `/readyz`), overridable by
   * `<PREFIX>_METRICS_PORT`; the service's port + 1000 when absent
   * (metricsPortOf). Deployments expose it to the scraper, not to clients.
   */
  readonly metricsPort?: number;
}

const unavailableRetry = {
  maxAttempts: 3,
  initialBackoffMs: 50,
  maxBackoffMs: 1000,
  backoffMultiplier: 2,
  retryableCodes: ["UNAVAILABLE"],
} as const;

/**
 * fastCalls is the resilience of services that answer in milliseconds or
 * hand long work to others (identity, the orchestrator; the gateway has no
 * callers in the mesh): a short window, a quick probe, room for many calls.
 */
const fastCalls: ResiliencePolicy = defaultResilience;

/**
 * modelCalls is the resilience of the agent services, whose calls wait for a
 * model for tens of seconds: failures are measured over a longer window (a
 * call's failure arrives when it ends), the circuit waits longer before it
 * probes, and fewer calls run at once, with as many waiting.
 */
const modelCalls: ResiliencePolicy = {
  breaker: { failureRate: 0.5, windowMs: 30_000, minimumCalls: 10, halfOpenAfterMs: 5_000 },
  bulkhead: { maxConcurrent: 64, maxQueued: 64 },
  retryBudget: { ratio: 0.2, minRetries: 10, windowMs: 30_000 },
};

const grpcHealth: HealthCheck = {
  kind: "grpc",
  intervalSeconds: 10,
  timeoutSeconds: 5,
  healthyThreshold: 2,
  unhealthyThreshold: 3,
  startPeriodSeconds: 60,
};

/** topology is the mesh: gateway -> orchestrator -> v1-agents, v2-agents; gateway -> identity. */
export const topology: Readonly<Record<ServiceName, ServiceSpec>> = {
  gateway: {
    name: "gateway",
    protocol: "http",
    port: 8080,
    grpcServices: [],
    upstreams: ["orchestrator", "v1-agents", "v2-agents", "identity"],
    callPolicy: { timeoutMs: 60_000, retry: unavailableRetry, ...fastCalls },
    scaling: { cpu: 512, memoryMiB: 1024, minTasks: 2, maxTasks: 15, spot: false },
    health: { ...grpcHealth, kind: "http", path: "/healthz", startPeriodSeconds: 30 },
    exposure: "public",
    needs: ["redis"],
  },
  orchestrator: {
    name: "orchestrator",
    protocol: "grpc",
    port: 50051,
    grpcServices: ["raptorflow.v3.OrchestratorService"],
    upstreams: ["v1-agents", "v2-agents"],
    callPolicy: { timeoutMs: 60_000, retry: unavailableRetry, ...fastCalls },
    scaling: { cpu: 1024, memoryMiB: 2048, minTasks: 2, maxTasks: 20, spot: false },
    health: grpcHealth,
    exposure: "internal",
    needs: ["postgres", "redis"],
    // It signs the service tokens of its calls to the agent services with the identity key set.
    secrets: ["IDENTITY_SIGNING_KEYS"],
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
      "raptorflow.v1.CompetitorSurfaceService",
      "raptorflow.v1.StrategyProfileService",
      "raptorflow.v1.PositioningService",
      "raptorflow.v1.JtbdMapService",
      "raptorflow.v1.MonetizationModelService",
      "raptorflow.v1.PlanService",
      "raptorflow.v1.InsightService",
      "raptorflow.v1.IntelligenceService",
    ],
    upstreams: [],
    callPolicy: { timeoutMs: 30_000, retry: unavailableRetry, ...modelCalls },
    scaling: { cpu: 512, memoryMiB: 1024, minTasks: 1, maxTasks: 10, spot: false },
    health: grpcHealth,
    exposure: "mesh",
    needs: ["postgres", "redis", "llm"],
  },
  "v2-agents": {
    name: "v2-agents",
    protocol: "grpc",
    port: 50053,
    grpcServices: ["raptorflow.agent.v1.AgentService", "raptorflow.v2.CampaignService", "raptorflow.v2.AssetService", "raptorflow.v2.MemoryService"],
    upstreams: [],
    callPolicy: { timeoutMs: 30_000, retry: unavailableRetry, ...modelCalls },
    scaling: { cpu: 512, memoryMiB: 1024, minTasks: 3, maxTasks: 50, spot: true },
    health: grpcHealth,
    exposure: "mesh",
    needs: ["postgres", "redis", "llm"],
  },
  identity: {
    name: "identity",
    protocol: "grpc",
    port: 50054,
    grpcServices: ["raptorflow.identity.v1.IdentityService"],
    upstreams: [],
    // Sign-in hashes a password (scrypt, tens of milliseconds): short calls, a short deadline.
    callPolicy: { timeoutMs: 10_000, retry: unavailableRetry, ...fastCalls },
    // Never on spot, and never fewer than two: nobody signs in while it is down.
    scaling: { cpu: 512, memoryMiB: 1024, minTasks: 2, maxTasks: 10, spot: false },
    health: grpcHealth,
    // Reached through the gateway (REST, Connect, gRPC-Web); services that verify tokens fetch its keys as its upstream callers.
    exposure: "mesh",
    needs: ["postgres"],
    // The key set that signs access tokens (`raptorflow signing-key`): required in production.
    secrets: ["IDENTITY_SIGNING_KEYS"],
  },
};

/** serviceNames lists the services in start order: upstreams before callers. */
export const serviceNames: readonly ServiceName[] = ["identity", "v1-agents", "v2-agents", "orchestrator", "gateway"];

/**
 * scalingTargets are the utilizations autoscaling holds every service at:
 * tasks are added above them and removed below, within the service's
 * `minTasks`..`maxTasks`.
 */
export const scalingTargets = { cpuPercent: 70, memoryPercent: 75 } as const;

/** healthCheckOf is a service's health check: its own, or the gRPC health protocol (`/healthz` for `http`) with the mesh's defaults. */
export function healthCheckOf(spec: ServiceSpec): HealthCheck {
  if (spec.health) return spec.health;
  return spec.protocol === "grpc" ? grpcHealth : { ...grpcHealth, kind: "http", path: "/healthz" };
}

/** exposureOf is who outside the mesh reaches a service (`mesh` unless it says otherwise). */
export function exposureOf(spec: ServiceSpec): Exposure {
  return spec.exposure ?? "mesh";
}

/** needsOf tells whether a service uses a managed dependency in production. */
export function needsOf(spec: ServiceSpec, backing: Backing): boolean {
  return spec.needs?.includes(backing) ?? false;
}

/** callersOf lists the services (of `specs`, the whole mesh by default) that call a service. */
export function callersOf(name: ServiceName, specs: readonly ServiceSpec[] = serviceNames.map((n) => topology[n])): ServiceName[] {
  return specs.filter((s) => s.upstreams.includes(name)).map((s) => s.name);
}

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

/** metricsPortOf is a service's default operations port: its own `metricsPort`, or its port + 1000. */
export function metricsPortOf(spec: ServiceSpec): number {
  return spec.metricsPort ?? spec.port + 1000;
}

/**
 * metricsListenPort is the port a service's operations listener (metrics,
 * liveness, readiness) listens on: `<PREFIX>_METRICS_PORT` when set, `0` (a
 * free one) when the service itself listens on port 0, else metricsPortOf.
 */
export function metricsListenPort(name: ServiceName, env: Env = process.env): number {
  const key = `${envPrefix(name)}_METRICS_PORT`;
  const raw = env[key];
  if (raw === undefined || raw === "") return listenPort(name, env) === 0 ? 0 : metricsPortOf(topology[name]);
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

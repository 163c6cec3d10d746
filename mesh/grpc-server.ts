import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import type { DescFile, DescService } from "@bufbuild/protobuf";
import type { Interceptor, ServiceImpl } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import { file_grpc_health_v1_health } from "../gen/grpc/health/v1/health_pb.js";
import { file_grpc_reflection_v1alpha_reflection } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { StatusService } from "../gen/raptorflow/ops/v1/status_pb.js";
import { isPublicMethod } from "../platform/auth/access-policy.js";
import { createAuthInterceptor } from "../platform/auth/auth-interceptor.js";
import { createAuthorizationInterceptor } from "../platform/auth/authorization-interceptor.js";
import type { ServerAuth } from "../platform/auth/auth-from-env.js";
import { grpcServiceAdapter } from "./grpc-service-adapter.js";
import { createReflectionImpl, reflectionService, reflectionTypeNames } from "./reflection.js";
import { createServiceHealth, type ServiceHealth } from "./service-health.js";
import { createStatusImpl, type StatusExtras } from "./status-service.js";
import { createServerTelemetryInterceptor } from "./telemetry-interceptor.js";
import { serverCredentials, type MeshTls } from "./tls.js";

/** ServiceRegistration pairs a service descriptor with its Connect-shaped implementation. */
export interface ServiceRegistration {
  /** service is the generated service descriptor. */
  readonly service: DescService;
  /** impl is the handler, written once as a Connect `ServiceImpl`. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly impl: Partial<ServiceImpl<any>>;
}

/** MeshServerOptions configures a gRPC server of the mesh. */
export interface MeshServerOptions {
  /** services are the application services to serve. */
  readonly services: readonly ServiceRegistration[];
  /**
   * auth checks every caller: the access token (verified, its principal put
   * in the call's context) and the role the method's contract allows
   * (`(raptorflow.api.v1.policy)`), before the request is validated. Every
   * RaptorFlow service gives it (platform/auth's serverAuthFromEnv); a
   * server without it checks nobody (a test backend).
   */
  readonly auth?: ServerAuth;
  /** interceptors run after authorization and request validation, outermost first. */
  readonly interceptors?: readonly Interceptor[];
  /** drainTimeoutMs bounds how long shutdown waits for in-flight calls (default 10 s). */
  readonly drainTimeoutMs?: number;
  /** channelOptions are extra grpc-js server options. */
  readonly serverOptions?: grpc.ServerOptions;
  /** status adds to the service's `raptorflow.ops.v1.StatusService` answer (the orchestrator's routing mix and recent runs). */
  readonly status?: StatusExtras;
}

/** MeshServer is a running-or-ready gRPC server with health and reflection. */
export interface MeshServer {
  /** server is the grpc-js server. */
  readonly server: grpc.Server;
  /** health is the `grpc.health.v1.Health` implementation; statuses are per service and overall (""). */
  readonly health: HealthImplementation;
  /** serviceNames are every service this server answers, including health, status and reflection. */
  readonly serviceNames: readonly string[];
  /**
   * readiness is the serving state behind health: NOT_SERVING until
   * setServing(true) and while a required dependency is down, DEGRADED
   * (health SERVING, the dependency's own entry NOT_SERVING) while an
   * optional one is. Services watch their dependencies here.
   */
  readonly readiness: ServiceHealth;
  /**
   * listen binds the port (0 picks a free one), with mutual TLS when `tls`
   * is given (mesh/tls.ts), and resolves with the bound port. Health stays
   * NOT_SERVING until `setServing(true)`.
   */
  listen(port: number, host?: string, tls?: MeshTls): Promise<number>;
  /** setServing says whether the server means to serve; health follows it and the dependencies. */
  setServing(serving: boolean): void;
  /** shutdown drains: NOT_SERVING, refuse new calls, wait for in-flight ones up to the bound, then force. */
  shutdown(): Promise<void>;
}

/**
 * createMeshServer builds a grpc-js server for the given Connect-shaped
 * services, with authentication and authorization (`auth`: the roles each
 * method's contract allows), request validation (protovalidate rules from
 * the contracts), `grpc.health.v1.Health` (Check and Watch) following its
 * readiness, `raptorflow.ops.v1.StatusService`, and server reflection v1
 * and v1alpha, so grpcurl and `buf curl --reflect` work. Every call is
 * traced, measured and logged (telemetry-interceptor.ts).
 */
export function createMeshServer(options: MeshServerOptions): MeshServer {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": 4 * 1024 * 1024,
    ...options.serverOptions,
  });
  const shutdownController = new AbortController();
  // Who may call comes first: a caller who may not call a method learns nothing about its request's rules.
  const access = options.auth
    ? [
        createAuthInterceptor({ verifier: options.auth.verifier, required: options.auth.required, anonymous: isPublicMethod }),
        createAuthorizationInterceptor({ required: options.auth.required }),
      ]
    : [];
  // Telemetry is outermost, so refused and invalid calls are traced and counted too.
  const interceptors = [createServerTelemetryInterceptor(), ...access, createValidateInterceptor(), ...(options.interceptors ?? [])];
  const appNames = options.services.map((s) => s.service.typeName);
  const serviceNames = [...appNames, StatusService.typeName, "grpc.health.v1.Health", ...reflectionTypeNames];
  const readiness = createServiceHealth();
  const served: readonly ServiceRegistration[] = [...options.services, { service: StatusService, impl: createStatusImpl(readiness, options.status) }];

  for (const { service, impl } of served) {
    const { definition, implementation } = grpcServiceAdapter(service, impl, {
      interceptors,
      shutdownSignal: shutdownController.signal,
    });
    server.addService(definition, implementation);
  }

  const health = new HealthImplementation(
    Object.fromEntries(["", ...appNames].map((n) => [n, "NOT_SERVING" as const])),
  );
  health.addToServer(server);

  // Health and both reflection versions are described too, so clients that
  // list services can resolve every name they see.
  const extraFiles: DescFile[] = [file_grpc_health_v1_health, reflectionService.file, file_grpc_reflection_v1alpha_reflection];
  const reflection = createReflectionImpl(
    served.map((s) => s.service),
    extraFiles,
    serviceNames,
  );
  for (const typeName of reflectionTypeNames) {
    const { definition, implementation } = grpcServiceAdapter(reflectionService, reflection, { typeName });
    server.addService(definition, implementation);
  }

  // Health tells the truth: the whole server and each service follow the
  // readiness (DEGRADED still serves); each dependency has its own entry,
  // `raptorflow.dependency.<name>`.
  // Only changes are set: every setStatus reaches the Watch streams, and a watcher must see each change once.
  const statuses = new Map<string, "SERVING" | "NOT_SERVING">();
  const set = (name: string, status: "SERVING" | "NOT_SERVING"): void => {
    if (statuses.get(name) === status) return;
    statuses.set(name, status);
    health.setStatus(name, status);
  };
  readiness.onChange(() => {
    const status = readiness.state() === "NOT_SERVING" ? "NOT_SERVING" : "SERVING";
    for (const n of ["", ...appNames]) set(n, status);
    for (const d of readiness.dependencies()) set(`raptorflow.dependency.${d.name}`, d.healthy ? "SERVING" : "NOT_SERVING");
  });
  const setServing = (serving: boolean): void => readiness.setServing(serving);

  let closed: Promise<void> | undefined;
  return {
    server,
    health,
    serviceNames,
    readiness,
    setServing,
    listen(port, host = "0.0.0.0", tls) {
      return new Promise((resolve, reject) => {
        server.bindAsync(`${host}:${port}`, serverCredentials(tls), (err, bound) =>
          err ? reject(err) : resolve(bound),
        );
      });
    },
    shutdown() {
      closed ??= new Promise<void>((resolve) => {
        setServing(false);
        readiness.close();
        const timer = setTimeout(() => {
          // In-flight calls outlived the bound: abort their contexts and cut them off.
          shutdownController.abort(new Error("server shutting down"));
          server.forceShutdown();
          resolve();
        }, options.drainTimeoutMs ?? 10_000);
        timer.unref();
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      return closed;
    },
  };
}

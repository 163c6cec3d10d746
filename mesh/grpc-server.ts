import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import type { DescFile, DescService } from "@bufbuild/protobuf";
import type { Interceptor, ServiceImpl } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import { file_grpc_health_v1_health } from "../gen/grpc/health/v1/health_pb.js";
import { file_grpc_reflection_v1alpha_reflection } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { grpcServiceAdapter } from "./grpc-service-adapter.js";
import { createReflectionImpl, reflectionService, reflectionTypeNames } from "./reflection.js";

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
  /** interceptors run after request validation, outermost first. */
  readonly interceptors?: readonly Interceptor[];
  /** drainTimeoutMs bounds how long shutdown waits for in-flight calls (default 10 s). */
  readonly drainTimeoutMs?: number;
  /** channelOptions are extra grpc-js server options. */
  readonly serverOptions?: grpc.ServerOptions;
}

/** MeshServer is a running-or-ready gRPC server with health and reflection. */
export interface MeshServer {
  /** server is the grpc-js server. */
  readonly server: grpc.Server;
  /** health is the `grpc.health.v1.Health` implementation; statuses are per service and overall (""). */
  readonly health: HealthImplementation;
  /** serviceNames are every service this server answers, including health and reflection. */
  readonly serviceNames: readonly string[];
  /** listen binds the port (0 picks a free one) and resolves with the bound port. Health stays NOT_SERVING until `setServing(true)`. */
  listen(port: number, host?: string): Promise<number>;
  /** setServing flips every service's health status. */
  setServing(serving: boolean): void;
  /** shutdown drains: NOT_SERVING, refuse new calls, wait for in-flight ones up to the bound, then force. */
  shutdown(): Promise<void>;
}

/**
 * createMeshServer builds a grpc-js server for the given Connect-shaped
 * services, with request validation (protovalidate rules from the
 * contracts), `grpc.health.v1.Health` (Check and Watch), and server
 * reflection v1 and v1alpha, so grpcurl and `buf curl --reflect` work.
 */
export function createMeshServer(options: MeshServerOptions): MeshServer {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": 4 * 1024 * 1024,
    ...options.serverOptions,
  });
  const shutdownController = new AbortController();
  const interceptors = [createValidateInterceptor(), ...(options.interceptors ?? [])];
  const appNames = options.services.map((s) => s.service.typeName);
  const serviceNames = [...appNames, "grpc.health.v1.Health", ...reflectionTypeNames];

  for (const { service, impl } of options.services) {
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
    options.services.map((s) => s.service),
    extraFiles,
    serviceNames,
  );
  for (const typeName of reflectionTypeNames) {
    const { definition, implementation } = grpcServiceAdapter(reflectionService, reflection, { typeName });
    server.addService(definition, implementation);
  }

  const setServing = (serving: boolean): void => {
    for (const n of ["", ...appNames]) health.setStatus(n, serving ? "SERVING" : "NOT_SERVING");
  };

  let closed: Promise<void> | undefined;
  return {
    server,
    health,
    serviceNames,
    setServing,
    listen(port, host = "0.0.0.0") {
      return new Promise((resolve, reject) => {
        server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) =>
          err ? reject(err) : resolve(bound),
        );
      });
    },
    shutdown() {
      closed ??= new Promise<void>((resolve) => {
        setServing(false);
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

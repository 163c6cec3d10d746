import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, type GrpcTransport } from "./grpc-transport.js";
import { channelCredentials, meshTlsFromEnv } from "./tls.js";
import { upstreamResilience } from "./resilience.js";
import { createClientTelemetryInterceptor } from "./telemetry-interceptor.js";
import { topology, upstreamAddress, type ServiceName } from "./topology.js";

/** UpstreamClient is a typed client of one upstream and the transport to close. */
export interface UpstreamClient<S extends DescService> {
  /** client is Connect's typed promise client. */
  readonly client: Client<S>;
  /** transport carries the calls (grpc-js). */
  readonly transport: GrpcTransport;
}

/**
 * upstreamTransport is the grpc-js transport to a service of the mesh, at
 * the address and with the call policy the topology gives it (deadline,
 * retries of safe calls, circuit breaker, bulkhead, retry budget: see
 * mesh/resilience.ts), over mutual TLS when `MESH_TLS_*` say so
 * (mesh/tls.ts). Every caller of a mesh service gets its transport here, and
 * every transport to one upstream in a process shares that upstream's
 * breaker, bulkhead and budget; `interceptors` add the caller's own
 * credentials (platform/auth's service tokens).
 */
export function upstreamTransport(
  name: ServiceName,
  options: { env?: Record<string, string | undefined>; interceptors?: readonly Interceptor[] } = {},
): GrpcTransport {
  const env = options.env ?? process.env;
  const { credentials, options: channelOptions } = channelCredentials(meshTlsFromEnv(env));
  const address = upstreamAddress(name, env);
  const policy = topology[name].callPolicy;
  return createGrpcTransport({
    address,
    policy,
    // Tracing is outermost: its span covers the whole call, retries and refusals included, and the trace context it
    // sends covers the caller's own interceptors' work too. Resilience comes next, so an open circuit or a full
    // bulkhead refuses a call before the caller's interceptors sign anything, and each retry runs them again.
    interceptors: [createClientTelemetryInterceptor(name), upstreamResilience(name, address, policy).interceptor, ...(options.interceptors ?? [])],
    credentials,
    channelOptions,
  });
}

/**
 * connectUpstream builds a typed gRPC client of a service of the mesh, at
 * the address and with the call policy the topology gives it
 * (upstreamTransport).
 */
export function connectUpstream<S extends DescService>(
  name: ServiceName,
  service: S,
  options: { env?: Record<string, string | undefined>; interceptors?: readonly Interceptor[] } = {},
): UpstreamClient<S> {
  const transport = upstreamTransport(name, options);
  return { client: createClient(service, transport), transport };
}

import type { FastifyInstance } from "fastify";
import { createGrpcTransport, type GrpcTransport } from "../../mesh/grpc-transport.js";
import type { TranscodedService } from "./bindings.js";
import { credentialsOf, loadDescriptorSet, loadFromReflection, parseUpstream, selectServices } from "./descriptor-source.js";
import { createGatewayApp } from "./gateway-app.js";

/** StandaloneGatewayOptions are the flags of `raptorflow gateway`. */
export interface StandaloneGatewayOptions {
  /** descriptorSet is a binary FileDescriptorSet; without it, descriptors come from each upstream's reflection. */
  readonly descriptorSet?: string;
  /** upstreams map a service (`package.Service`, or `*` for all) to its URL. */
  readonly upstreams: readonly { readonly service: string; readonly url: string }[];
  /** timeoutMs is the default upstream deadline. */
  readonly timeoutMs: number;
  /** maxRequestBytes and maxResponseBytes are the size limits. */
  readonly maxRequestBytes?: number;
  /** maxResponseBytes bounds a response. */
  readonly maxResponseBytes?: number;
  /** logger turns the request log on. */
  readonly logger?: boolean;
}

/** parseUpstreamFlag reads one `--upstream <package.Service>=<url>` value. */
export function parseUpstreamFlag(value: string): { service: string; url: string } {
  const eq = value.indexOf("=");
  if (eq <= 0 || eq === value.length - 1) {
    throw new Error(`--upstream "${value}" must be <package.Service>=<url> (or *=<url> for every service)`);
  }
  const service = value.slice(0, eq);
  if (service !== "*" && !/^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$/.test(service)) {
    throw new Error(`--upstream "${value}": "${service}" is not a fully-qualified service name`);
  }
  parseUpstream(value.slice(eq + 1));
  return { service, url: value.slice(eq + 1) };
}

/**
 * buildStandaloneGateway serves any gRPC services over REST, Connect and
 * gRPC-Web from their descriptors alone — a descriptor set, or each
 * upstream's server reflection — the way Envoy's transcoder does.
 */
export async function buildStandaloneGateway(options: StandaloneGatewayOptions): Promise<FastifyInstance> {
  if (options.upstreams.length === 0) throw new Error("name at least one --upstream <package.Service>=<url>");
  const fromFile = options.descriptorSet === undefined ? undefined : loadDescriptorSet(options.descriptorSet);
  const transports = new Map<string, GrpcTransport>();
  const services: TranscodedService[] = [];
  for (const { service, url } of options.upstreams) {
    const upstream = parseUpstream(url);
    const registry = fromFile ?? (await loadFromReflection(upstream));
    let transport = transports.get(url);
    if (!transport) {
      transport = createGrpcTransport({ address: upstream.address, credentials: credentialsOf(upstream) });
      transports.set(url, transport);
    }
    for (const s of selectServices(registry, service)) {
      if (services.some((x) => x.service.typeName === s.typeName)) throw new Error(`service ${s.typeName} is named by two --upstream flags`);
      services.push({ service: s, transport });
    }
  }
  return createGatewayApp({
    services,
    timeoutMs: options.timeoutMs,
    maxRequestBytes: options.maxRequestBytes,
    maxResponseBytes: options.maxResponseBytes,
    logger: options.logger,
    onClose: () => transports.forEach((t) => t.close()),
  });
}

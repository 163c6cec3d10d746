import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";

/** GatewayServerOptions bound what one client can hold of the gateway's HTTP server. */
export interface GatewayServerOptions {
  /** tls serves HTTPS with this certificate chain and key (PEM); plain HTTP without (a load balancer or mesh terminates TLS). */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
  /** maxHeaderBytes bounds a request's header block, URL included (431 past it; default 16 KiB). */
  readonly maxHeaderBytes?: number;
  /** headersTimeoutMs bounds how long a client may take to send the headers (default 10 s): slow-header (slowloris) clients are cut off. */
  readonly headersTimeoutMs?: number;
  /** requestTimeoutMs bounds how long a client may take to send the whole request, body included (408 past it; default 30 s). */
  readonly requestTimeoutMs?: number;
  /** idleTimeoutMs closes a connection on which nothing moved for this long (default 5 min; 0: never). */
  readonly idleTimeoutMs?: number;
  /** keepAliveTimeoutMs is how long an idle keep-alive connection is kept between requests (default 72 s, longer than common load balancers' 60 s). */
  readonly keepAliveTimeoutMs?: number;
}

/** gatewayServerDefaults are the bounds used when GatewayServerOptions leave one out. */
export const gatewayServerDefaults = {
  maxHeaderBytes: 16 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 5 * 60_000,
  keepAliveTimeoutMs: 72_000,
} as const;

/**
 * createGatewayServer makes the gateway's HTTP (or, with `tls`, HTTPS)
 * server around fastify's handler, with the bounds of GatewayServerOptions:
 * the header size, the time to send headers and the whole request, idle
 * connections. Node answers what these refuse itself (431, 408) and fastify
 * never sees those requests.
 */
export function createGatewayServer(handler: (req: IncomingMessage, res: ServerResponse) => void, options: GatewayServerOptions = {}): Server {
  const o = { ...gatewayServerDefaults, ...withoutUndefined(options) };
  const headersTimeout = Math.min(o.headersTimeoutMs, o.requestTimeoutMs || Infinity);
  const base = {
    maxHeaderSize: o.maxHeaderBytes,
    requestTimeout: o.requestTimeoutMs,
    headersTimeout,
    // Node checks those two timeouts every 30 s by default: often enough to enforce a 10 s bound, check at a fraction of it.
    connectionsCheckingInterval: Math.max(50, Math.min(1_000, headersTimeout / 4)),
  };
  const server: Server = options.tls ? createHttpsServer({ ...base, cert: options.tls.cert, key: options.tls.key, minVersion: "TLSv1.2" }, handler) : createHttpServer(base, handler);
  server.keepAliveTimeout = o.keepAliveTimeoutMs;
  server.setTimeout(o.idleTimeoutMs);
  return server;
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

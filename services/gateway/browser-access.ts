import cors, { type FastifyCorsOptions } from "@fastify/cors";
import helmet from "@fastify/helmet";
import { cors as connectCors } from "@connectrpc/connect";
import type { FastifyInstance } from "fastify";

/** BrowserAccessOptions say which web pages may call the gateway and how its answers protect them. */
export interface BrowserAccessOptions {
  /**
   * corsOrigins are the origins (`https://app.example.com`) whose pages may
   * call the gateway from a browser — REST, Connect and gRPC-Web — or `*`
   * for any. Empty: no cross-origin calls (the default).
   */
  readonly corsOrigins?: readonly string[];
  /** tls says the gateway serves HTTPS itself, so browsers are told to keep to it (Strict-Transport-Security). */
  readonly tls?: boolean;
}

/**
 * corsOptions are @fastify/cors's options for browser clients of REST,
 * Connect and gRPC-Web: the methods and request headers those protocols use
 * (Connect's own lists) plus ours (`Authorization`, `Idempotency-Key`,
 * `X-Request-Id`, trace context), and the response headers a client must
 * read (grpc-status, grpc-message and the Connect and rate-limit headers).
 * Credentials (cookies) are never allowed: callers send bearer tokens.
 */
export function corsOptions(origins: readonly string[]): FastifyCorsOptions {
  return {
    origin: origins.includes("*") ? "*" : [...origins],
    methods: [...new Set([...connectCors.allowedMethods, "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])],
    allowedHeaders: [...new Set([...connectCors.allowedHeaders, "Authorization", "Idempotency-Key", "X-Request-Id", "Traceparent", "Tracestate", "Cache-Control"])],
    exposedHeaders: [
      ...new Set([...connectCors.exposedHeaders, "X-Request-Id", "Traceparent", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Location"]),
    ],
    credentials: false,
    maxAge: 7200,
  };
}

/**
 * browserAccess registers what the gateway's HTTP answers carry for
 * browsers: helmet's security headers on every answer (a strict
 * Content-Security-Policy that still lets the `/docs` page run its own
 * scripts, frames refused, no MIME sniffing, no referrer, HSTS when the
 * gateway serves HTTPS itself), and, with `corsOrigins`, CORS for those
 * origins. It returns whether CORS answers preflight requests (OPTIONS), so
 * the REST routes leave them to it.
 */
export async function browserAccess(app: FastifyInstance, options: BrowserAccessOptions): Promise<boolean> {
  await app.register(helmet, {
    global: true,
    contentSecurityPolicy: {
      useDefaults: true,
      directives: {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "frame-ancestors": ["'none'"],
        // The gateway may serve plain HTTP (TLS ends at a load balancer): upgrading the docs page's requests would break it there.
        "upgrade-insecure-requests": null,
      },
    },
    // Browser clients of other origins read our answers through CORS; resource policy must not block them.
    crossOriginResourcePolicy: { policy: options.corsOrigins?.length ? "cross-origin" : "same-origin" },
    strictTransportSecurity: options.tls ? { maxAge: 31_536_000, includeSubDomains: true } : false,
  });
  if (!options.corsOrigins?.length) return false;
  await app.register(cors, corsOptions(options.corsOrigins));
  return true;
}

/** corsOriginsSetting reads GATEWAY_CORS_ORIGINS: a comma-separated list of origins (`https://app.example.com`), or `*`; failing fast on anything else. */
export function corsOriginsSetting(value: string | undefined): string[] {
  if (!value) return [];
  const origins = value.split(",").map((o) => o.trim()).filter(Boolean);
  for (const o of origins) {
    if (o === "*") continue;
    let url: URL;
    try {
      url = new URL(o);
    } catch {
      throw new Error(`GATEWAY_CORS_ORIGINS: "${o}" is not an origin such as https://app.example.com`);
    }
    if (url.origin !== o || (url.protocol !== "https:" && url.protocol !== "http:")) {
      throw new Error(`GATEWAY_CORS_ORIGINS: "${o}" is not an origin (scheme://host[:port], no path or trailing slash), such as https://app.example.com`);
    }
  }
  return origins;
}

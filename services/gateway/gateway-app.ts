import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import type { ConnectRouter } from "@connectrpc/connect";
import Fastify, { type FastifyInstance } from "fastify";
import type { DescMethod } from "@bufbuild/protobuf";
import { bindingsOf, type TranscodedService } from "./bindings.js";
import { credentialRateLimitPlugin, type CredentialRateLimitOptions } from "./credential-rate-limit-plugin.js";
import { docsPlugin } from "./docs-plugin.js";
import { createForwarder } from "./forwarder.js";
import { openApiDocument } from "./openapi.js";
import { restTranscoder } from "./transcoder.js";
import type { RateLimiter } from "../../platform/kv/rate-limiter.js";
import { rateLimitPlugin } from "./rate-limit-plugin.js";

/** GatewayAppOptions configure a gateway for any set of gRPC services. */
export interface GatewayAppOptions {
  /** services to expose, each with the transport that reaches it. */
  readonly services: readonly TranscodedService[];
  /** timeoutMs is the default (and largest) upstream deadline. */
  readonly timeoutMs: number;
  /** maxRequestBytes bounds a request body (413 past it; default 1 MiB). */
  readonly maxRequestBytes?: number;
  /** maxResponseBytes bounds a response body or stream message (default 4 MiB). */
  readonly maxResponseBytes?: number;
  /** logger turns fastify's request log on. */
  readonly logger?: boolean;
  /** title and version name the API in its OpenAPI document (`/openapi.json`, `/docs`). */
  readonly title?: string;
  /** version of the API in the OpenAPI document. */
  readonly version?: string;
  /** rateLimiter, when given, limits every request (see rate-limit-plugin.ts). */
  readonly rateLimiter?: RateLimiter;
  /** credentialRateLimit, when given, is the stricter limit on the RPCs that take credentials (`methods`; see credential-rate-limit-plugin.ts). */
  readonly credentialRateLimit?: Omit<CredentialRateLimitOptions, "routes"> & { readonly methods: readonly DescMethod[] };
  /** onClose runs when the app closes (close transports here). */
  readonly onClose?: () => void | Promise<void>;
}

/**
 * createGatewayApp builds the gateway for any gRPC services: REST from their
 * `google.api.http` annotations (the transcoder), Connect and gRPC-Web for
 * browsers (connect-fastify, forwarding), an OpenAPI 3.1 document at
 * `/openapi.json` with an interactive page at `/docs`, and `GET /healthz`. Our own gateway
 * and `raptorflow gateway --descriptor-set` both use it.
 */
export async function createGatewayApp(options: GatewayAppOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logger ?? false, bodyLimit: options.maxRequestBytes ?? 1024 * 1024 });
  let draining = false;
  app.addHook("preClose", async () => {
    draining = true;
  });
  app.addHook("onClose", async () => {
    await options.onClose?.();
  });
  if (options.rateLimiter) await app.register(rateLimitPlugin, { limiter: options.rateLimiter });
  if (options.credentialRateLimit) {
    const { methods, ...limits } = options.credentialRateLimit;
    await app.register(credentialRateLimitPlugin, { ...limits, routes: bindingsOf(options.services).filter((b) => methods.includes(b.method)) });
  }
  app.get("/healthz", async (_req, reply) => reply.code(draining ? 503 : 200).send({ status: draining ? "draining" : "serving" }));
  await app.register(fastifyConnectPlugin, {
    routes: (router: ConnectRouter) => {
      for (const { service, transport } of options.services) router.service(service, createForwarder(service, transport));
    },
  });
  const document = openApiDocument({
    services: options.services.map((s) => s.service),
    title: options.title ?? "gRPC services",
    version: options.version ?? "1",
  });
  await app.register(docsPlugin({ document }));
  await app.register(
    restTranscoder({ services: options.services, timeoutMs: options.timeoutMs, maxResponseBytes: options.maxResponseBytes }),
  );
  return app;
}

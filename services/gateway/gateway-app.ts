import { randomUUID } from "node:crypto";
import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import type { ConnectRouter } from "@connectrpc/connect";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { DescMethod } from "@bufbuild/protobuf";
import { bindingsOf, type TranscodedService } from "./bindings.js";
import { credentialRateLimitPlugin, type CredentialRateLimitOptions } from "./credential-rate-limit-plugin.js";
import { docsPlugin } from "./docs-plugin.js";
import { createForwarder } from "./forwarder.js";
import { openApiDocument } from "./openapi.js";
import { restTranscoder } from "./transcoder.js";
import { rateLimitPlugin, type RateLimitPluginOptions } from "./rate-limit-plugin.js";
import { browserAccess } from "./browser-access.js";
import { createGatewayServer, type GatewayServerOptions } from "./http-server.js";
import { useJsonBodyLimits } from "./json-body.js";
import { malformedBodiesAreInvalid } from "./malformed-bodies.js";
import type { Logger } from "pino";
import { logger } from "../../mesh/logger.js";
import { livenessReport, readinessCode, readinessReport, type ReadinessReport } from "../../mesh/ops-http.js";
import { createServiceHealth, type ServiceHealth } from "../../mesh/service-health.js";
import { createGatewayRpcInterceptor, httpCallOf, tracedHandler } from "./http-telemetry.js";

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
  /**
   * logger turns the request log on: one line per request when it is answered (`request completed`,
   * with the request, the status and the time), to the `http` component's logger or the one given.
   */
  readonly logger?: boolean | Logger;
  /** title and version name the API in its OpenAPI document (`/openapi.json`, `/docs`). */
  readonly title?: string;
  /** version of the API in the OpenAPI document. */
  readonly version?: string;
  /** rateLimit, when given, limits every request per organization and per access token (see rate-limit-plugin.ts). */
  readonly rateLimit?: RateLimitPluginOptions;
  /** credentialRateLimit, when given, is the stricter limit on the RPCs that take credentials (`methods`; see credential-rate-limit-plugin.ts). */
  readonly credentialRateLimit?: Omit<CredentialRateLimitOptions, "routes"> & { readonly methods: readonly DescMethod[] };
  /** server bounds what a client can hold: TLS, header size, the time to send a request, idle connections (http-server.ts). */
  readonly server?: GatewayServerOptions;
  /** maxJsonDepth bounds how deep a JSON request body nests (400 past it; default 64). */
  readonly maxJsonDepth?: number;
  /**
   * trustedProxies are the addresses or CIDR ranges of the load balancers in
   * front of the gateway: from them, the client address (for rate limits and
   * logs) is read from X-Forwarded-For. None by default: the TCP peer counts.
   */
  readonly trustedProxies?: readonly string[];
  /** corsOrigins are the origins whose pages may call the gateway from a browser (`*` for any; none by default). */
  readonly corsOrigins?: readonly string[];
  /** onClose runs when the app closes (close transports here). */
  readonly onClose?: () => void | Promise<void>;
  /** health is the gateway's serving state (its dependencies watched by the caller); SERVING from ready until close. */
  readonly health?: ServiceHealth;
  /** readiness is what `/readyz` reports; the gateway's own health by default (ours adds the mesh). */
  readonly readiness?: () => ReadinessReport | Promise<ReadinessReport>;
}

/**
 * AccessLog makes fastify's request log one line a request, written when it
 * is answered, with the request in it (fastify's default is two lines: one
 * on arrival, one with the status). Errors keep fastify's own lines.
 */
class AccessLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) super.requestCompleted(error, request, reply);
    else reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, "request completed");
  }
}

/**
 * createGatewayApp builds the gateway for any gRPC services: REST from their
 * `google.api.http` annotations (the transcoder), Connect and gRPC-Web for
 * browsers (connect-fastify, forwarding), an OpenAPI 3.1 document at
 * `/openapi.json` with an interactive page at `/docs`, `GET /healthz`, and `GET /livez` and
 * `/readyz` (liveness; readiness with the dependencies). Every request is traced (a SERVER span
 * continuing the caller's trace, whose `traceparent` the response carries), measured and, with
 * `logger`, logged as JSON with its trace. Our own gateway and `raptorflow gateway
 * --descriptor-set` both use it.
 */
export async function createGatewayApp(options: GatewayAppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    ...(options.logger
      ? { loggerInstance: (options.logger === true ? logger("http") : options.logger) as FastifyBaseLogger, logController: new AccessLog() }
      : { logger: false }),
    bodyLimit: options.maxRequestBytes ?? 1024 * 1024,
    // Fastify's trustProxy walks X-Forwarded-For back through the trusted hops only.
    trustProxy: options.trustedProxies?.length ? [...options.trustedProxies] : false,
    // The request's id is the caller's X-Request-Id when it sent one, so log lines and the upstream calls agree.
    genReqId: (req) => {
      const id = req.headers["x-request-id"];
      return typeof id === "string" && id !== "" ? id : randomUUID();
    },
    serverFactory: (handler) => createGatewayServer(tracedHandler(handler), options.server),
  }) as unknown as FastifyInstance;
  const health = options.health ?? createServiceHealth();
  const readiness = options.readiness ?? (() => readinessReport(health));
  let draining = false;
  app.addHook("onReady", async () => {
    health.setServing(true);
  });
  app.addHook("preClose", async () => {
    draining = true;
    health.setServing(false);
  });
  // The route template names the request in its span and metrics; the transcoder refines it to the binding's.
  app.addHook("onRequest", async (request) => {
    const call = httpCallOf(request.raw);
    if (call && !call.route && request.routeOptions.url) call.route = request.routeOptions.url;
  });
  app.addHook("onClose", async () => {
    health.close();
    await options.onClose?.();
  });
  // Security headers on every answer, CORS for the configured browser origins (preflights answered before anything else).
  const corsAnswersPreflight = await browserAccess(app, { corsOrigins: options.corsOrigins, tls: options.server?.tls !== undefined });
  if (options.rateLimit) await app.register(rateLimitPlugin, options.rateLimit);
  if (options.credentialRateLimit) {
    const { methods, ...limits } = options.credentialRateLimit;
    await app.register(credentialRateLimitPlugin, { ...limits, routes: bindingsOf(options.services).filter((b) => methods.includes(b.method)) });
  }
  app.get("/healthz", async (_req, reply) => reply.code(draining ? 503 : 200).send({ status: draining ? "draining" : "serving" }));
  app.get("/livez", async () => livenessReport());
  app.get("/readyz", async (_req, reply) => {
    const report = await readiness();
    return reply.code(readinessCode(report)).header("cache-control", "no-store").send(report);
  });
  await app.register(fastifyConnectPlugin, {
    interceptors: [createGatewayRpcInterceptor()],
    // Connect and gRPC-Web bodies are read by Connect, not by fastify: bound them the same.
    readMaxBytes: options.maxRequestBytes ?? 1024 * 1024,
    routes: (router: ConnectRouter) => {
      for (const { service, transport } of options.services) router.service(service, createForwarder(service, transport));
      malformedBodiesAreInvalid(router);
    },
  });
  const document = openApiDocument({
    services: options.services.map((s) => s.service),
    title: options.title ?? "gRPC services",
    version: options.version ?? "1",
  });
  await app.register(docsPlugin({ document }));
  // The REST routes read JSON bodies with a depth limit (Connect reads its own, in its plugin's scope).
  await app.register(async (rest) => {
    useJsonBodyLimits(rest, options.maxJsonDepth ?? 64);
    await rest.register(
      restTranscoder({ services: options.services, timeoutMs: options.timeoutMs, maxResponseBytes: options.maxResponseBytes, answerOptions: !corsAnswersPreflight }),
    );
  });
  return app;
}

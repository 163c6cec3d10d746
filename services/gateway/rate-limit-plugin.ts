import { Code, ConnectError } from "@connectrpc/connect";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { organizationHeader } from "../../mesh/call-context.js";
import type { RateLimitDecision, RateLimiter } from "../../platform/kv/rate-limiter.js";
import { statusJson } from "./responses.js";
import { createRegistry } from "@bufbuild/protobuf";

/** RateLimitPluginOptions configure the gateway's rate limit. */
export interface RateLimitPluginOptions {
  /** limiter counts requests (on Redis across gateway instances). */
  readonly limiter: RateLimiter;
}

/**
 * keyOf is whom a request counts against: its organization when it names one
 * (the security issue will make that the authenticated principal), else its
 * client address.
 */
function keyOf(request: FastifyRequest): string {
  const org = request.headers[`grpc-metadata-${organizationHeader}`];
  return typeof org === "string" && org !== "" ? `org:${org}` : `ip:${request.ip}`;
}

const registry = createRegistry();

/**
 * answerRateLimit puts a decision's IETF `RateLimit-*` headers on the answer
 * and, when the request is over the limit, answers 429 with `Retry-After`
 * and a google.rpc.Status body (RESOURCE_EXHAUSTED) saying `what` was
 * exceeded; it returns the reply then, undefined when the request may go on.
 */
export function answerRateLimit(reply: FastifyReply, d: RateLimitDecision, what = `rate limit of ${d.limit} requests`): FastifyReply | undefined {
  const resetS = Math.ceil(d.resetMs / 1000);
  reply.header("ratelimit-limit", d.limit).header("ratelimit-remaining", d.remaining).header("ratelimit-reset", resetS);
  if (d.allowed) return undefined;
  const err = new ConnectError(`${what} exceeded; retry in ${resetS} s`, Code.ResourceExhausted);
  return reply.code(429).header("retry-after", resetS).type("application/json").send(JSON.stringify(statusJson(err, registry)));
}

/**
 * rateLimitPlugin limits every request of the gateway (health checks
 * excepted) in fixed windows: past the limit, 429 with a google.rpc.Status
 * body (RESOURCE_EXHAUSTED), `Retry-After`, and the IETF `RateLimit-*` headers
 * on every answer.
 */
export const rateLimitPlugin = fp(async (app: FastifyInstance, options: RateLimitPluginOptions) => {
  app.addHook("onRequest", async (request, reply) => {
    if (request.url === "/healthz") return;
    return answerRateLimit(reply, await options.limiter.hit(keyOf(request)));
  });
});

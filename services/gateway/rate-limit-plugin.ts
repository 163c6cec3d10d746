import { Code, ConnectError } from "@connectrpc/connect";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import type { Principal } from "../../mesh/call-context.js";
import type { RateLimitDecision, RateLimiter } from "../../platform/kv/rate-limiter.js";
import { statusJson } from "./responses.js";
import { createRegistry } from "@bufbuild/protobuf";

/** RateLimitPluginOptions configure the gateway's general rate limits (the token routes have their own, stricter ones). */
export interface RateLimitPluginOptions {
  /**
   * perOrganization counts the requests of each organization — the one a
   * verified access token names — and, for requests without a valid token,
   * of each client address (never of an organization a header claims: an
   * unauthenticated caller must not spend another organization's allowance).
   */
  readonly perOrganization?: RateLimiter;
  /** perToken counts the requests of each access token (its `jti`), so one leaked or runaway token cannot spend its whole organization's allowance. */
  readonly perToken?: RateLimiter;
  /** verify checks a request's bearer token (signature, expiry, issuer); a token it refuses counts as no token. */
  readonly verify?: (token: string) => Promise<Pick<Principal, "organization" | "tokenId">>;
}

const bearer = /^Bearer +([A-Za-z0-9._~+/-]+=*)$/i;

/** callerOf is whom a request counts against: its verified token's organization and id, or, without a valid token, its client address. */
async function callerOf(request: FastifyRequest, verify: RateLimitPluginOptions["verify"]): Promise<{ organization: string; token?: string }> {
  const m = bearer.exec(request.headers.authorization ?? "");
  if (m && verify) {
    try {
      const p = await verify(m[1]);
      return { organization: `org:${p.organization}`, token: `tok:${p.tokenId}` };
    } catch {
      // A token that does not verify (or keys that cannot be fetched) counts as none; the service answers UNAUTHENTICATED.
    }
  }
  return { organization: `ip:${request.ip}` };
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
 * excepted) in fixed windows, per organization and per access token (see
 * RateLimitPluginOptions): past either limit, 429 with a google.rpc.Status
 * body (RESOURCE_EXHAUSTED) and `Retry-After`; every answer carries the IETF
 * `RateLimit-*` headers of the tighter of the two.
 */
export const rateLimitPlugin = fp(async (app: FastifyInstance, options: RateLimitPluginOptions) => {
  app.addHook("onRequest", async (request, reply) => {
    if (request.url === "/healthz" || request.url === "/livez" || request.url === "/readyz") return;
    const caller = await callerOf(request, options.verify);
    const decisions: RateLimitDecision[] = [];
    if (options.perOrganization) decisions.push(await options.perOrganization.hit(caller.organization));
    if (options.perToken && caller.token) decisions.push(await options.perToken.hit(caller.token));
    if (decisions.length === 0) return;
    // The refused decision if any, else the one with the least left.
    const shown = decisions.find((d) => !d.allowed) ?? decisions.reduce((a, b) => (b.remaining < a.remaining ? b : a));
    return answerRateLimit(reply, shown);
  });
});

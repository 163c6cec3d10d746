import { createHash } from "node:crypto";
import type { DescMethod } from "@bufbuild/protobuf";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import type { RateLimitDecision, RateLimiter } from "../../platform/kv/rate-limiter.js";
import type { Binding } from "./bindings.js";
import { answerRateLimit } from "./rate-limit-plugin.js";

/** CredentialRateLimitOptions configure the stricter limit on the routes that take credentials. */
export interface CredentialRateLimitOptions {
  /** routes are the REST bindings of the limited RPCs (sign-in, refresh, sign-out). */
  readonly routes: readonly Binding[];
  /** perAddress counts every call of those RPCs from one client address, whatever it submits. */
  readonly perAddress?: RateLimiter;
  /** perAccount counts the calls of one client address for one submitted account (an email). */
  readonly perAccount?: RateLimiter;
  /** signIns are the RPCs of `routes` whose requests name an account (CreateToken). */
  readonly signIns: readonly DescMethod[];
  /**
   * accountOf finds the submitted account in a sign-in's REST body (the
   * email of a password sign-in); undefined when it names none (an API key).
   * Connect and gRPC-Web bodies are not read here: a sign-in that comes that
   * way counts against one per-account allowance for its whole address.
   */
  readonly accountOf: (body: unknown) => string | undefined;
}

/**
 * credentialRateLimitPlugin is the stricter limit on the token routes,
 * against credential stuffing and password guessing: every call of the
 * limited RPCs (REST, Connect or gRPC-Web) counts against its client
 * address, and each password sign-in also against its address and the
 * email it tries (kept as a digest, never in the clear). Past either limit,
 * 429 with `Retry-After`; the `RateLimit-*` headers show the tighter of the
 * two. It runs after body parsing, so it sees the submitted email.
 */
export const credentialRateLimitPlugin = fp(async (app: FastifyInstance, options: CredentialRateLimitOptions) => {
  // Connect and gRPC-Web call `/<package.Service>/<Method>`.
  const rpcPaths = new Map<string, DescMethod>(options.routes.map((b) => [`/${b.method.parent.typeName}/${b.method.name}`, b.method]));
  app.addHook("preHandler", async (request, reply) => {
    const q = request.url.indexOf("?");
    const path = q < 0 ? request.url : request.url.slice(0, q);
    const rest = options.routes.find((b) => b.httpMethod === request.method && b.template.match(path));
    const method = rest?.method ?? (request.method === "POST" ? rpcPaths.get(path) : undefined);
    if (!method) return;
    const decisions: RateLimitDecision[] = [];
    if (options.perAddress) decisions.push(await options.perAddress.hit(`cred:ip:${request.ip}`));
    const account = !options.signIns.includes(method) ? undefined : rest ? options.accountOf(request.body) : "*";
    if (options.perAccount && account !== undefined) {
      const digest = createHash("sha256").update(account.trim().normalize("NFC").toLowerCase()).digest("hex").slice(0, 32);
      decisions.push(await options.perAccount.hit(`cred:acct:${request.ip}:${digest}`));
    }
    if (decisions.length === 0) return;
    // The refused decision if any, else the one with the least left.
    const shown = decisions.find((d) => !d.allowed) ?? decisions.reduce((a, b) => (b.remaining < a.remaining ? b : a));
    return answerRateLimit(reply, shown, `limit of ${shown.limit} sign-in attempts`);
  });
});

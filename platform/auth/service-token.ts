import type { Interceptor } from "@connectrpc/connect";
import { organizationOf } from "../../mesh/call-context.js";
import { createAccessTokenIssuer, type AccessTokenIssuer } from "./access-tokens.js";
import { authSettings } from "./auth-from-env.js";
import { loadSigningKeys } from "./signing-keys.js";

type Env = Record<string, string | undefined>;

/** ServiceTokenOptions configure how a service authenticates its calls to other services. */
export interface ServiceTokenOptions {
  /** issuer signs the tokens (the configured signing key). */
  readonly issuer: AccessTokenIssuer;
  /** service names the caller: the tokens' subject is `services/<service>`. */
  readonly service: string;
  /** ttlMs is how long a token lives (default 5 minutes); a new one is made when a fifth of it is left. */
  readonly ttlMs?: number;
  /** maxOrganizations bounds the cache of tokens, one per organization (default 10,000). */
  readonly maxOrganizations?: number;
  /**
   * always authenticates every call (AUTH=required). Otherwise only the
   * calls that carry a caller's token are (its token replaced): under
   * AUTH=optional an anonymous call stays anonymous on the next hop, as it
   * came.
   */
  readonly always?: boolean;
}

/**
 * createServiceTokenInterceptor is a client interceptor that authenticates
 * every call of a service to another service of the mesh as that service:
 * it sets `authorization: Bearer <token>` to an access token with the
 * subject `services/<service>`, the role `service`, and the organization the
 * call acts for — the call's `x-raptorflow-organization` metadata, which
 * `forwardCall` fills with the incoming call's verified organization (the
 * embedded `default` one for calls that act for none, such as reading the
 * agent catalogs). It replaces whatever `authorization` the call carried:
 * a caller's own token is checked at the first service it reaches and goes
 * no further. Unless `always`, a call that carries no caller's token goes
 * on without one. Tokens are cached per organization until a fifth of
 * their life is left.
 */
export function createServiceTokenInterceptor(options: ServiceTokenOptions): Interceptor {
  const ttlMs = options.ttlMs ?? 5 * 60_000;
  const max = options.maxOrganizations ?? 10_000;
  const subject = `services/${options.service}`;
  const cache = new Map<string, { token: Promise<string>; renewAt: number }>();
  const tokenFor = (organization: string): Promise<string> => {
    const hit = cache.get(organization);
    if (hit && Date.now() < hit.renewAt) return hit.token;
    // One signature per organization and period; the oldest entry goes first when the cache is full.
    if (!hit && cache.size >= max) cache.delete(cache.keys().next().value!);
    const token = options.issuer.issue({ subject, organization, role: "service" }, ttlMs).then((t) => t.token);
    cache.set(organization, { token, renewAt: Date.now() + ttlMs * 0.8 });
    token.catch(() => cache.delete(organization));
    return token;
  };
  return (next) => async (req) => {
    if (options.always || req.header.has("authorization")) req.header.set("authorization", `Bearer ${await tokenFor(organizationOf(req.header))}`);
    return next(req);
  };
}

/**
 * serviceTokenInterceptorFromEnv is createServiceTokenInterceptor with the
 * configured signing key — the same sources as the identity service's
 * (`IDENTITY_SIGNING_KEYS`, `IDENTITY_SIGNING_KEYS_FILE`, the embedded
 * default's local key file; required with NODE_ENV=production) — and
 * AUTH_ISSUER/AUTH_AUDIENCE; every call is authenticated under
 * AUTH=required. It fails at start-up when there is no key.
 */
export async function serviceTokenInterceptorFromEnv(service: string, env: Env = process.env): Promise<Interceptor> {
  const { issuer, audience, required } = authSettings(env);
  const keys = await loadSigningKeys(env);
  return createServiceTokenInterceptor({ issuer: createAccessTokenIssuer({ keys, issuer, audience, ttlMs: 5 * 60_000 }), service, always: required });
}

import { Code, ConnectError } from "@connectrpc/connect";
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from "jose";
import { isOrganizationId, type Principal } from "../../mesh/call-context.js";
import { isRole } from "./roles.js";

/** accessTokenType is the `typ` header of RaptorFlow access tokens (RFC 9068), so no other JWT passes for one. */
export const accessTokenType = "at+jwt";

/** signingAlgorithms are the only algorithms an access token may be signed with: asymmetric, never `none` or HMAC. */
export const signingAlgorithms = ["EdDSA", "ES256"] as const;

/** TokenVerifierOptions say where the public keys come from and what a valid token must say. Give exactly one key source. */
export interface TokenVerifierOptions {
  /** keys is a fixed JWK Set of public keys (the identity service verifies its own tokens so). */
  readonly keys?: JSONWebKeySet;
  /** jwksUrl is a JWKS endpoint (`…/.well-known/jwks.json`), fetched and cached by jose: refetched after `cacheMaxAgeMs` and, at most every 30 s, for an unknown `kid`. */
  readonly jwksUrl?: string | URL;
  /** loadKeys fetches the JWK Set from anywhere else (the identity service over gRPC), cached here the same way. */
  readonly loadKeys?: () => Promise<JSONWebKeySet>;
  /** issuer is the `iss` every token must carry. */
  readonly issuer: string;
  /** audience is an `aud` every token must carry. */
  readonly audience: string;
  /** cacheMaxAgeMs is how long fetched keys are used before they are fetched again (default 10 min). */
  readonly cacheMaxAgeMs?: number;
  /** clockToleranceSec is the clock skew allowed on `exp` and `iat` (default 5 s). */
  readonly clockToleranceSec?: number;
  /** now is the clock (tests move it); `() => new Date()` unless told. */
  readonly now?: () => Date;
}

/** TokenVerifier checks access tokens. */
export interface TokenVerifier {
  /**
   * verify checks a token's signature (asymmetric algorithms only, a known
   * `kid`), its type, issuer, audience and lifetime, and returns what it
   * says. Any failure is UNAUTHENTICATED with a message that says why but
   * never repeats the token; a key source that cannot be reached is
   * UNAVAILABLE.
   */
  verify(token: string): Promise<Principal>;
}

/** createTokenVerifier makes a TokenVerifier over one key source. */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const sources = [options.keys, options.jwksUrl, options.loadKeys].filter((s) => s !== undefined).length;
  if (sources !== 1) throw new Error("createTokenVerifier: give exactly one of keys, jwksUrl or loadKeys");
  const maxAge = options.cacheMaxAgeMs ?? 10 * 60_000;
  const getKey: JWTVerifyGetKey = options.keys
    ? createLocalJWKSet(options.keys)
    : options.jwksUrl
      ? remoteKeySet(new URL(options.jwksUrl), maxAge)
      : cachedKeySet(options.loadKeys!, maxAge);
  return {
    async verify(token) {
      try {
        const { payload, protectedHeader } = await jwtVerify(token, getKey, {
          algorithms: [...signingAlgorithms],
          typ: accessTokenType,
          issuer: options.issuer,
          audience: options.audience,
          requiredClaims: ["sub", "exp", "iat", "jti"],
          clockTolerance: options.clockToleranceSec ?? 5,
          currentDate: options.now?.(),
        });
        if (!protectedHeader.kid) throw unauthenticated("the access token names no signing key (kid)");
        const { sub, org, role, jti, exp } = payload;
        if (typeof org !== "string" || !isOrganizationId(org)) throw unauthenticated("the access token carries no valid organization (org)");
        if (typeof role !== "string" || !isRole(role)) throw unauthenticated("the access token carries no valid role");
        return { subject: sub!, organization: org, role, tokenId: jti!, expireTime: new Date(exp! * 1000) };
      } catch (e) {
        throw verificationError(e);
      }
    },
  };
}

/** unauthenticated is the UNAUTHENTICATED error for a token that does not verify. */
function unauthenticated(message: string, cause?: unknown): ConnectError {
  return new ConnectError(message, Code.Unauthenticated, undefined, undefined, cause);
}

/**
 * verificationError says why a token was refused, in words a client can act
 * on. jose's own messages name claims, never the token, but only ours
 * reach the caller; jose's error stays as the cause, for logs.
 */
function verificationError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  if (e instanceof errors.JWTExpired) return unauthenticated("the access token has expired; refresh it or sign in again", e);
  if (e instanceof errors.JWTClaimValidationFailed) {
    return unauthenticated(
      e.claim === "aud" || e.claim === "iss" || e.claim === "typ"
        ? `the access token was not issued for this service (its "${e.claim}" does not match)`
        : `the access token's "${e.claim}" claim is ${e.reason === "missing" ? "missing" : "not valid"}`,
      e,
    );
  }
  if (e instanceof errors.JWKSNoMatchingKey) return unauthenticated("the access token is signed with an unknown key", e);
  if (e instanceof errors.JOSEAlgNotAllowed || e instanceof errors.JOSENotSupported) return unauthenticated("the access token's signing algorithm is not accepted", e);
  if (e instanceof errors.JWSSignatureVerificationFailed) return unauthenticated("the access token's signature does not verify", e);
  if (e instanceof errors.JWKSTimeout || e instanceof KeySourceError) return new ConnectError("cannot fetch the keys that verify access tokens; try again", Code.Unavailable, undefined, undefined, e);
  // Malformed tokens (not three parts, not JSON, not base64url) and the like.
  return unauthenticated("the access token is malformed", e);
}

/** KeySourceError wraps a failure to fetch a JWK Set, so it is told apart from a token that does not verify. */
class KeySourceError extends Error {}

/**
 * remoteKeySet is jose's remote JWK Set (fetched, cached for `maxAgeMs`,
 * fetched again for an unknown `kid` at most every 30 s), with the failures
 * of the endpoint (unreachable, not 200, not a JWK Set) told apart from
 * tokens that name no key it has.
 */
function remoteKeySet(url: URL, maxAgeMs: number): JWTVerifyGetKey {
  const remote = createRemoteJWKSet(url, { cacheMaxAge: maxAgeMs });
  return async (header, token) => {
    try {
      return await remote(header, token);
    } catch (e) {
      if (e instanceof errors.JWKSNoMatchingKey || e instanceof errors.JWKSMultipleMatchingKeys || e instanceof errors.JOSENotSupported) throw e;
      throw new KeySourceError(`cannot fetch the JWK Set at ${url.origin}${url.pathname}: ${(e as Error).message}`, { cause: e });
    }
  };
}

/**
 * cachedKeySet resolves keys from a JWK Set fetched by `load`: used for
 * `maxAgeMs`, fetched again (at most every `cooldownMs`) when a token names
 * a `kid` it does not know — a key just rotated in. When a fetch fails the
 * keys in hand keep working; with none in hand, verification is UNAVAILABLE.
 */
function cachedKeySet(load: () => Promise<JSONWebKeySet>, maxAgeMs: number, cooldownMs = 30_000): JWTVerifyGetKey {
  let current: { at: number; resolve: JWTVerifyGetKey } | undefined;
  let pending: Promise<void> | undefined;
  const refresh = (): Promise<void> =>
    (pending ??= load()
      .then(
        (jwks) => void (current = { at: Date.now(), resolve: createLocalJWKSet(jwks) }),
        (e: unknown) => {
          if (!current) throw new KeySourceError(`cannot load the JWK Set: ${(e as Error).message}`, { cause: e });
          // Keep the keys in hand, and try the source again after the cooldown rather than on every call.
          current = { ...current, at: Date.now() - maxAgeMs + cooldownMs };
        },
      )
      .finally(() => (pending = undefined)));
  return async (header, token) => {
    if (!current || Date.now() - current.at > maxAgeMs) await refresh();
    try {
      return await current!.resolve(header, token);
    } catch (e) {
      if (!(e instanceof errors.JWKSNoMatchingKey) || Date.now() - current!.at < cooldownMs) throw e;
      await refresh();
      return current!.resolve(header, token);
    }
  };
}

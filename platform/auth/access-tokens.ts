import { SignJWT } from "jose";
import { uuidv7 } from "uuidv7";
import { accessTokenType } from "./token-verifier.js";
import type { Role } from "./roles.js";
import type { SigningKeys } from "./signing-keys.js";

/** AccessTokenIssuerOptions configure how access tokens are made. */
export interface AccessTokenIssuerOptions {
  /** keys sign them (the active key). */
  readonly keys: SigningKeys;
  /** issuer is their `iss`. */
  readonly issuer: string;
  /** audience is their `aud`. */
  readonly audience: string;
  /** ttlMs is how long they work unless an issue call says otherwise. */
  readonly ttlMs: number;
  /** now is the clock (tests move it); `() => new Date()` unless told. */
  readonly now?: () => Date;
}

/** AccessTokenClaims are what a token says about its bearer. */
export interface AccessTokenClaims {
  /** subject is `users/{user}`, `apiKeys/{api_key}` or `services/{service}`. */
  readonly subject: string;
  /** organization is the organization id it acts in. */
  readonly organization: string;
  /** role is what it may do there. */
  readonly role: Role;
}

/** IssuedAccessToken is a signed access token and when it expires. */
export interface IssuedAccessToken {
  /** token is the compact JWT. */
  readonly token: string;
  /** tokenId is its `jti`. */
  readonly tokenId: string;
  /** expireTime is its `exp`. */
  readonly expireTime: Date;
}

/** AccessTokenIssuer signs access tokens. */
export interface AccessTokenIssuer {
  /** issue signs a token for the claims, living `ttlMs` (the default lifetime unless given). */
  issue(claims: AccessTokenClaims, ttlMs?: number): Promise<IssuedAccessToken>;
}

/**
 * createAccessTokenIssuer signs access tokens with the active key: a JWT
 * whose header names the key (`kid`), its algorithm and the type `at+jwt`,
 * and whose claims are `sub`, `org`, `role`, `iss`, `aud`, `iat`, `exp` and a
 * unique `jti`.
 */
export function createAccessTokenIssuer(options: AccessTokenIssuerOptions): AccessTokenIssuer {
  const now = options.now ?? (() => new Date());
  const { kid, alg, privateKey } = options.keys.active;
  return {
    async issue(claims, ttlMs = options.ttlMs) {
      const iat = Math.floor(now().getTime() / 1000);
      const exp = iat + Math.max(1, Math.round(ttlMs / 1000));
      const tokenId = uuidv7();
      const token = await new SignJWT({ org: claims.organization, role: claims.role })
        .setProtectedHeader({ alg, kid, typ: accessTokenType })
        .setSubject(claims.subject)
        .setIssuer(options.issuer)
        .setAudience(options.audience)
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .setJti(tokenId)
        .sign(privateKey);
      return { token, tokenId, expireTime: new Date(exp * 1000) };
    },
  };
}

/** maxAccessTokenTtlMs bounds an access token's life (24 h): a longer-lived credential is a refresh token or an API key. */
export const maxAccessTokenTtlMs = 24 * 3_600_000;

/**
 * parseDuration reads a duration such as `15m`, `900s`, `1h`, `30d` or
 * `500ms` into milliseconds; a bare number is seconds. Undefined when the
 * text is not one.
 */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d{1,9})(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) return undefined;
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? "s"]!;
  return Number(m[1]) * unit;
}

/** durationSetting reads a duration from the environment, between `minMs` and `maxMs`, failing fast on a bad one. */
export function durationSetting(env: Record<string, string | undefined>, key: string, fallbackMs: number, minMs: number, maxMs: number): number {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallbackMs;
  const ms = parseDuration(raw);
  if (ms === undefined || ms < minMs || ms > maxMs) {
    throw new Error(`${key} must be a duration from ${minMs / 1000}s to ${maxMs / 1000}s such as 15m, 900s or 1h, got "${raw}"`);
  }
  return ms;
}

import { createHash, randomBytes, randomInt, timingSafeEqual } from "node:crypto";

/*
 * Refresh tokens and API key secrets are 32 random bytes (256 bits): nobody
 * can guess them, so unlike passwords they need no slow, salted hash. A
 * stolen table of their SHA-256 digests cannot be turned back into usable
 * credentials, and a fast digest lets a token be looked up by its hash.
 */

/** apiKeyMarker starts every RaptorFlow API key, so leaked keys are easy to recognise (and to scan for). */
export const apiKeyMarker = "rfk_";

const prefixAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
const prefixLength = 8;
const apiKeyPattern = /^rfk_([a-z0-9]{8})_([A-Za-z0-9_-]{43})$/;

/** newRefreshToken returns a fresh refresh token: 32 random bytes, base64url (43 characters). */
export function newRefreshToken(): string {
  return randomBytes(32).toString("base64url");
}

/** GeneratedApiKey is a fresh API key: what the caller is shown once, and the parts that are kept. */
export interface GeneratedApiKey {
  /** key is the whole key, `rfk_<prefix>_<secret>`, shown once. */
  readonly key: string;
  /** prefix is the key's public part, kept in the clear to find the key and to show in lists. */
  readonly prefix: string;
  /** secret is the key's secret part; only its digest is kept. */
  readonly secret: string;
}

/**
 * newApiKey makes an API key `rfk_<prefix>_<secret>`: an 8-character
 * lower-case alphanumeric prefix (about 41 bits, unique in the store) and a
 * 32-byte base64url secret.
 */
export function newApiKey(): GeneratedApiKey {
  let prefix = "";
  for (let i = 0; i < prefixLength; i++) prefix += prefixAlphabet[randomInt(prefixAlphabet.length)];
  const secret = randomBytes(32).toString("base64url");
  return { key: `${apiKeyMarker}${prefix}_${secret}`, prefix, secret };
}

/** parseApiKey splits an API key into its prefix and secret; undefined when it is not shaped like one. */
export function parseApiKey(key: string): { prefix: string; secret: string } | undefined {
  const m = apiKeyPattern.exec(key);
  return m ? { prefix: m[1], secret: m[2] } : undefined;
}

/** digestOf is the SHA-256 of a high-entropy secret (a refresh token, an API key's secret), in hex. */
export function digestOf(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

/** matchesDigest compares a secret with a stored digest in constant time. */
export function matchesDigest(secret: string, storedDigest: string): boolean {
  const stored = Buffer.from(storedDigest, "hex");
  const actual = createHash("sha256").update(secret).digest();
  return stored.length === actual.length && timingSafeEqual(actual, stored);
}

import { randomBytes } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT, type CryptoKey, type JSONWebKeySet, type JWK } from "jose";

/** SigningAlgorithm is an algorithm access tokens may be signed with: Ed25519 (EdDSA, the default) or P-256 (ES256). */
export type SigningAlgorithm = "EdDSA" | "ES256";

/** SigningKey is the key that signs new access tokens. */
export interface SigningKey {
  /** kid names the key in each token's header and in the JWKS. */
  readonly kid: string;
  /** alg is its algorithm. */
  readonly alg: SigningAlgorithm;
  /** privateKey signs; it never leaves this process. */
  readonly privateKey: CryptoKey;
}

/**
 * SigningKeys is the identity service's key set: one active key signs, and
 * every key's public half (the active one, the next one and the retired
 * ones whose tokens may still be valid) is published in the JWKS.
 */
export interface SigningKeys {
  /** active signs new tokens. */
  readonly active: SigningKey;
  /** publicJwks is the JWK Set verifiers fetch: public members only (kty, crv, x, y, kid, alg, use). */
  readonly publicJwks: JSONWebKeySet;
  /** source says where the keys came from, for start-up messages (never the keys). */
  readonly source: string;
}

type Env = Record<string, string | undefined>;

const kinds: Record<SigningAlgorithm, { kty: string; crv: string }> = {
  EdDSA: { kty: "OKP", crv: "Ed25519" },
  ES256: { kty: "EC", crv: "P-256" },
};

/** publicMembers are the only JWK members published: never `d` or any other private part. */
const publicMembers = ["kty", "crv", "x", "y"] as const;

/**
 * generateSigningKey makes a new private signing key as a JWK, with its
 * `kid` (the RFC 7638 thumbprint of its public half), `alg` and `use`.
 */
export async function generateSigningKey(alg: SigningAlgorithm = "EdDSA"): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: await calculateJwkThumbprint(publicHalf(jwk)), alg, use: "sig" };
}

/**
 * parseSigningKeys reads a key set from JSON: a JWK Set `{"keys": [...]}`
 * of Ed25519 (EdDSA) or P-256 (ES256) keys, with an optional `"active":
 * "<kid>"` naming the key that signs (the first key otherwise). The active
 * key must carry its private part; the others may be public only (retired
 * keys). Symmetric, RSA and other keys are refused, as is a private half
 * that does not match its public half.
 */
export async function parseSigningKeys(json: string, source: string): Promise<SigningKeys> {
  const fail = (why: string): never => {
    throw new Error(`${source}: ${why}`);
  };
  let set: { keys?: unknown; active?: unknown };
  try {
    set = JSON.parse(json) as typeof set;
  } catch {
    return fail(`not JSON; expected a JWK Set {"keys": [...]} (make one with "raptorflow signing-key")`);
  }
  if (typeof set !== "object" || set === null || !Array.isArray(set.keys) || set.keys.length === 0) {
    return fail(`expected a JWK Set {"keys": [...]} with at least one key (make one with "raptorflow signing-key")`);
  }
  const keys: { jwk: JWK; kid: string; alg: SigningAlgorithm }[] = [];
  for (const [i, raw] of (set.keys as unknown[]).entries()) {
    if (typeof raw !== "object" || raw === null) fail(`key ${i} is not a JWK object`);
    const jwk = raw as JWK;
    const alg = (Object.keys(kinds) as SigningAlgorithm[]).find((a) => kinds[a].kty === jwk.kty && kinds[a].crv === jwk.crv);
    if (!alg || (jwk.alg !== undefined && jwk.alg !== alg)) {
      fail(`key ${i} is not an Ed25519 (EdDSA) or P-256 (ES256) signing key; access tokens are signed with those only`);
    }
    if (typeof jwk.x !== "string" || (alg === "ES256" && typeof jwk.y !== "string")) fail(`key ${i} has no public part`);
    const kid = jwk.kid ?? (await calculateJwkThumbprint(publicHalf(jwk)));
    if (typeof kid !== "string" || kid === "" || kid.length > 128) fail(`key ${i} has an empty or over-long kid`);
    if (keys.some((k) => k.kid === kid)) fail(`two keys have the kid "${kid}"`);
    keys.push({ jwk, kid, alg: alg! });
  }
  const activeKid = set.active === undefined ? keys[0].kid : set.active;
  const active = keys.find((k) => k.kid === activeKid) ?? fail(`"active" names the kid "${String(activeKid)}", which is not in the set`);
  if (typeof active.jwk.d !== "string") fail(`the active key "${active.kid}" has no private part ("d"): it cannot sign`);
  let privateKey: CryptoKey;
  try {
    privateKey = (await importJWK({ ...active.jwk, kid: active.kid }, active.alg)) as CryptoKey;
  } catch (e) {
    return fail(`the active key "${active.kid}" cannot be imported: ${(e as Error).message}`);
  }
  const publicJwks: JSONWebKeySet = { keys: keys.map((k) => ({ ...publicHalf(k.jwk), kid: k.kid, alg: k.alg, use: "sig" })) };
  // A private half that does not belong to its public half would sign tokens nobody can verify: find out now.
  const probe = await new SignJWT({}).setProtectedHeader({ alg: active.alg }).sign(privateKey);
  const publicKey = await importJWK(publicJwks.keys.find((k) => k.kid === active.kid)!, active.alg);
  await jwtVerify(probe, publicKey).catch(() => fail(`the active key "${active.kid}": its private part does not match its public part`));
  return { active: { kid: active.kid, alg: active.alg, privateKey }, publicJwks, source };
}

/** localKeyPath is where the embedded default keeps its signing keys: `<RAPTORFLOW_DATA_DIR>/identity/keys.json`. */
export function localKeyPath(env: Env = process.env): string {
  return join(env.RAPTORFLOW_DATA_DIR || ".data", "identity", "keys.json");
}

/**
 * loadSigningKeys finds the signing keys: `IDENTITY_SIGNING_KEYS` (the JWK
 * Set itself, from a secret), else `IDENTITY_SIGNING_KEYS_FILE` (a path to
 * it), else — not in production — the local key file (localKeyPath),
 * created with a fresh Ed25519 key on first use, readable by its owner only.
 * With NODE_ENV=production and neither variable it refuses: a key made on
 * the fly would differ between instances and be lost on restart.
 */
export async function loadSigningKeys(env: Env = process.env): Promise<SigningKeys> {
  if (env.IDENTITY_SIGNING_KEYS) return parseSigningKeys(env.IDENTITY_SIGNING_KEYS, "IDENTITY_SIGNING_KEYS");
  const file = env.IDENTITY_SIGNING_KEYS_FILE;
  if (file) {
    let json: string;
    try {
      json = readFileSync(file, "utf8");
    } catch (e) {
      throw new Error(`IDENTITY_SIGNING_KEYS_FILE: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    return parseSigningKeys(json, `IDENTITY_SIGNING_KEYS_FILE (${file})`);
  }
  if (env.NODE_ENV === "production") {
    throw new Error(
      'IDENTITY_SIGNING_KEYS (or IDENTITY_SIGNING_KEYS_FILE) is required when NODE_ENV=production: make a key set with "raptorflow signing-key" and give it to every identity instance as a secret',
    );
  }
  const path = localKeyPath(env);
  return parseSigningKeys(await ensureLocalKeyFile(path), `local key file ${path}`);
}

/**
 * ensureLocalKeyFile returns the local key file's text, creating the file
 * first when it does not exist: written under a temporary name with mode
 * 0600 and linked into place, so two processes starting at once (the
 * service and `raptorflow token`) end up with one key, never a half-written
 * file.
 */
async function ensureLocalKeyFile(path: string): Promise<string> {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new Error(`cannot read the local signing key file ${path}: ${(e as Error).message}`);
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ keys: [await generateSigningKey()] }, null, 2)}\n`, { mode: 0o600, flag: "wx" });
  try {
    linkSync(tmp, path);
  } catch (e) {
    // Another process made it first: use theirs.
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  } finally {
    unlinkSync(tmp);
  }
  return readFileSync(path, "utf8");
}

/** publicHalf is a JWK's public members (what a thumbprint and the JWKS are made of). */
function publicHalf(jwk: JWK): JWK {
  const out: Record<string, unknown> = {};
  for (const m of publicMembers) if (jwk[m] !== undefined) out[m] = jwk[m];
  return out as JWK;
}

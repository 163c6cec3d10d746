import { toJson } from "@bufbuild/protobuf";
import type { JSONWebKeySet } from "jose";
import { IdentityService, JsonWebKeySetSchema } from "../../gen/raptorflow/identity/v1/identity_pb.js";
import { connectUpstream } from "../../mesh/clients.js";
import { createTokenVerifier, type TokenVerifier } from "./token-verifier.js";

type Env = Record<string, string | undefined>;

/** AuthSettings are what every service agrees on about access tokens. */
export interface AuthSettings {
  /**
   * required is `AUTH=required`: every call but the public ones needs a
   * valid token. `optional` verifies a token (and checks its role) only when
   * one is sent. The default is `required` with NODE_ENV=production,
   * `optional` otherwise (the embedded default's zero setup).
   */
  readonly required: boolean;
  /** issuer is `AUTH_ISSUER` (default `raptorflow`): the identity service signs it into `iss`, every verifier checks it. */
  readonly issuer: string;
  /** audience is `AUTH_AUDIENCE` (default `raptorflow`): the `aud` of every access token. */
  readonly audience: string;
}

/** authSettings reads AUTH, AUTH_ISSUER and AUTH_AUDIENCE, failing fast on a bad value. */
export function authSettings(env: Env = process.env): AuthSettings {
  const mode = env.AUTH || (env.NODE_ENV === "production" ? "required" : "optional");
  if (mode !== "optional" && mode !== "required") {
    throw new Error(`AUTH must be "required" (the default with NODE_ENV=production) or "optional" (the default otherwise), got "${mode}"`);
  }
  return { required: mode === "required", issuer: env.AUTH_ISSUER || "raptorflow", audience: env.AUTH_AUDIENCE || "raptorflow" };
}

/** ClosableVerifier is a TokenVerifier and how to release its key source. */
export interface ClosableVerifier {
  /** verifier checks tokens. */
  readonly verifier: TokenVerifier;
  /** close releases the key source (a gRPC channel to the identity service). */
  close(): void;
}

/**
 * tokenVerifierFromEnv makes the verifier a service uses: the public keys
 * from `AUTH_JWKS` (a JWK Set, JSON), or `AUTH_JWKS_URL` (a JWKS endpoint,
 * for example the gateway's `/.well-known/jwks.json`), or else the identity
 * service of the mesh (`IDENTITY_ADDR`) over gRPC, cached and refetched for
 * a key it does not know yet.
 */
export function tokenVerifierFromEnv(env: Env = process.env, settings: AuthSettings = authSettings(env)): ClosableVerifier {
  const base = { issuer: settings.issuer, audience: settings.audience };
  if (env.AUTH_JWKS) return { verifier: createTokenVerifier({ ...base, keys: parseJwks(env.AUTH_JWKS, "AUTH_JWKS") }), close: () => {} };
  if (env.AUTH_JWKS_URL) {
    let url: URL;
    try {
      url = new URL(env.AUTH_JWKS_URL);
    } catch {
      throw new Error(`AUTH_JWKS_URL must be a URL, got "${env.AUTH_JWKS_URL}"`);
    }
    return { verifier: createTokenVerifier({ ...base, jwksUrl: url }), close: () => {} };
  }
  const identity = connectUpstream("identity", IdentityService, { env });
  const loadKeys = async (): Promise<JSONWebKeySet> => toJson(JsonWebKeySetSchema, await identity.client.getJsonWebKeySet({}, { timeoutMs: 5_000 })) as unknown as JSONWebKeySet;
  return { verifier: createTokenVerifier({ ...base, loadKeys }), close: () => identity.transport.close() };
}

/** ServerAuth is how a mesh server checks its callers (createMeshServer's `auth`). */
export interface ServerAuth {
  /** verifier checks access tokens. */
  readonly verifier: TokenVerifier;
  /** required refuses calls without a token but to public methods (AUTH=required). */
  readonly required: boolean;
}

/**
 * serverAuthFromEnv is what a service gives createMeshServer as `auth`:
 * token verification as AUTH says, keys as tokenVerifierFromEnv finds them;
 * the roles each method allows come from the contracts. Close it with the
 * server.
 */
export function serverAuthFromEnv(env: Env = process.env): ServerAuth & { close(): void } {
  const settings = authSettings(env);
  const { verifier, close } = tokenVerifierFromEnv(env, settings);
  return { verifier, required: settings.required, close };
}

/** parseJwks reads a JWK Set of public keys from JSON, refusing one that carries private parts. */
export function parseJwks(json: string, source: string): JSONWebKeySet {
  let set: unknown;
  try {
    set = JSON.parse(json);
  } catch {
    throw new Error(`${source} must be a JWK Set in JSON ({"keys": [...]})`);
  }
  const keys = (set as { keys?: unknown }).keys;
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => typeof k === "object" && k !== null)) {
    throw new Error(`${source} must be a JWK Set in JSON ({"keys": [...]}) with at least one key`);
  }
  // A verifier needs public keys only; a private key here means a secret was spread where it should not be.
  if (keys.some((k) => "d" in k)) throw new Error(`${source} holds a private key: give verifiers the public keys only (GET /.well-known/jwks.json)`);
  return set as JSONWebKeySet;
}

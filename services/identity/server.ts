import { IdentityService } from "../../gen/raptorflow/identity/v1/identity_pb.js";
import { createMeshServer, type MeshServer } from "../../mesh/grpc-server.js";
import { authSettings } from "../../platform/auth/auth-from-env.js";
import { createTokenVerifier } from "../../platform/auth/token-verifier.js";
import { openServiceDatabase } from "../../platform/db/database.js";
import { withDatabase } from "../../platform/db/health.js";
import { createAccessTokenIssuer, durationSetting, maxAccessTokenTtlMs } from "../../platform/auth/access-tokens.js";
import { createIdentityImpl } from "./identity-service.js";
import { loadSigningKeys, type SigningKeys } from "../../platform/auth/signing-keys.js";
import { createMemoryIdentityStore, type IdentityStore } from "./store/identity-store.js";
import { identityDatabase } from "./store/open-store.js";
import { createPgIdentityStore } from "./store/pg-identity-store.js";

type Env = Record<string, string | undefined>;

/** IdentitySettings are the identity service's configuration, read once at start-up. */
export interface IdentitySettings {
  /** issuer and audience go into every access token (AUTH_ISSUER, AUTH_AUDIENCE). */
  readonly issuer: string;
  /** audience is the tokens' `aud`. */
  readonly audience: string;
  /** required is AUTH=required (see platform/auth). */
  readonly required: boolean;
  /** accessTtlMs is IDENTITY_ACCESS_TOKEN_TTL (default 15 min, 1 min to 24 h). */
  readonly accessTtlMs: number;
  /** refreshTtlMs is IDENTITY_REFRESH_TOKEN_TTL (default 30 days, 1 h to 365 days). */
  readonly refreshTtlMs: number;
}

/** identitySettings reads the identity service's settings, failing fast on a bad value. */
export function identitySettings(env: Env = process.env): IdentitySettings {
  return {
    ...authSettings(env),
    accessTtlMs: durationSetting(env, "IDENTITY_ACCESS_TOKEN_TTL", 15 * 60_000, 60_000, maxAccessTokenTtlMs),
    refreshTtlMs: durationSetting(env, "IDENTITY_REFRESH_TOKEN_TTL", 30 * 86_400_000, 3_600_000, 365 * 86_400_000),
  };
}

/** IdentityServerOptions are what an identity server is made of. */
export interface IdentityServerOptions {
  /** store keeps the identities. */
  readonly store: IdentityStore;
  /** keys sign and verify the access tokens. */
  readonly keys: SigningKeys;
  /** settings are issuer, audience, AUTH and the token lifetimes. */
  readonly settings: IdentitySettings;
}

/**
 * createIdentityServer is a mesh server (validation, health, reflection)
 * serving IdentityService over the given store and keys, verifying access
 * tokens with its own public keys; who may call what comes from the
 * contract (sign-in, refresh, sign-out and the JWKS are public). Tests
 * build it on their own store.
 */
export function createIdentityServer({ store, keys, settings }: IdentityServerOptions): MeshServer {
  const tokens = createAccessTokenIssuer({ keys, issuer: settings.issuer, audience: settings.audience, ttlMs: settings.accessTtlMs });
  const verifier = createTokenVerifier({ keys: keys.publicJwks, issuer: settings.issuer, audience: settings.audience });
  return createMeshServer({
    services: [{ service: IdentityService, impl: createIdentityImpl({ store, tokens, publicJwks: keys.publicJwks, refreshTtlMs: settings.refreshTtlMs }) }],
    auth: { verifier, required: settings.required },
  });
}

/**
 * build assembles the identity service from the environment: its signing
 * keys (IDENTITY_SIGNING_KEYS or IDENTITY_SIGNING_KEYS_FILE; the local key
 * file in the embedded default; required in production), its store (the
 * `identity` schema of PostgreSQL or the embedded PGlite, migrated at
 * start-up; in the process with DATA_STORE=memory) and createIdentityServer.
 * It does not listen.
 */
export async function build(env: Env = process.env): Promise<MeshServer & { close(): Promise<void> }> {
  // Configuration errors first: a bad setting or a missing key fails before the database opens.
  const settings = identitySettings(env);
  const keys = await loadSigningKeys(env);
  const db = await openServiceDatabase(identityDatabase(env));
  const server = createIdentityServer({ store: db ? createPgIdentityStore(db) : createMemoryIdentityStore(), keys, settings });
  return withDatabase({ ...server, close: () => server.shutdown() }, db);
}

import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { JSONWebKeySet } from "jose";
import { ApiKeySchema, IdentityService, TokenSchema, type ApiKey as ApiKeyMessage, type Token } from "../../gen/raptorflow/identity/v1/identity_pb.js";
import { principalKey, type Principal } from "../../mesh/call-context.js";
import { paginate } from "../../platform/pagination.js";
import type { AccessTokenIssuer } from "../../platform/auth/access-tokens.js";
import { checkRole, isId, type ApiKey, type IdentityStore, type Role } from "./store/identity-store.js";

/** IdentityImplOptions are the identity service's dependencies. */
export interface IdentityImplOptions {
  /** store keeps organizations, users, memberships, refresh tokens and API keys. */
  readonly store: IdentityStore;
  /** tokens signs access tokens. */
  readonly tokens: AccessTokenIssuer;
  /** publicJwks is the JWK Set GetJsonWebKeySet serves: public keys only. */
  readonly publicJwks: JSONWebKeySet;
  /** refreshTtlMs is how long a refresh token works (each refresh issues a new one, for as long again). */
  readonly refreshTtlMs: number;
}

/** signInFailed is the one answer to every failed password sign-in: it never tells which of email, password or organization was wrong. */
const signInFailed = "sign-in failed: the email, the password or the organization is wrong";

/** logoutReason is the revoke reason of a family signed out with RevokeToken. */
const logoutReason = "logout";

/**
 * createIdentityImpl implements raptorflow.identity.v1.IdentityService:
 * passwords and API keys are exchanged for short-lived signed access tokens
 * (and, for people, single-use refresh tokens that rotate on every refresh;
 * presenting a used one revokes the whole sign-in), sign-out revokes, admins
 * manage API keys, and the public keys are served for verifiers.
 */
export function createIdentityImpl(options: IdentityImplOptions): ServiceImpl<typeof IdentityService> {
  const { store, tokens } = options;

  /** pairFor issues an access token and the next refresh token of a family (a new family without one). */
  const pairFor = async (organizationId: string, userId: string, role: Role, familyId?: string): Promise<Token> => {
    const refresh = await store.issueRefreshToken({ organizationId, userId, role, familyId, ttlMs: options.refreshTtlMs });
    const access = await tokens.issue({ subject: `users/${userId}`, organization: organizationId, role });
    return create(TokenSchema, { accessToken: access.token, refreshToken: refresh.token, expireTime: timestampFromDate(access.expireTime) });
  };

  return {
    async createToken(req) {
      const organizationId = idOf(req.organization, "organizations/");
      if (req.credential.case === "password") {
        // The password is checked first, whatever the organization: every failure takes one scrypt's time.
        const user = await store.verifyPassword(req.credential.value.email, req.credential.value.password);
        const membership = user && isId(organizationId) ? await store.getMembership(organizationId, user.id) : undefined;
        if (!user || !membership) throw new ConnectError(signInFailed, Code.Unauthenticated);
        return pairFor(organizationId, user.id, membership.role);
      }
      if (req.credential.case === "apiKey") {
        const key = await store.verifyApiKey(req.credential.value);
        if (!key || key.organizationId !== organizationId) {
          throw new ConnectError("the API key is not valid for this organization (unknown, revoked, or another organization's)", Code.Unauthenticated);
        }
        // The key is the long-lived credential: no refresh token.
        const access = await tokens.issue({ subject: `apiKeys/${key.id}`, organization: key.organizationId, role: key.role });
        return create(TokenSchema, { accessToken: access.token, expireTime: timestampFromDate(access.expireTime) });
      }
      throw new ConnectError("a credential is required: password or api_key", Code.InvalidArgument);
    },

    async refreshToken(req) {
      const use = await store.useRefreshToken(req.refreshToken);
      switch (use.status) {
        case "unknown":
          throw new ConnectError("the refresh token is not valid; sign in again", Code.Unauthenticated);
        case "expired":
          throw new ConnectError("the refresh token has expired; sign in again", Code.Unauthenticated);
        case "revoked":
          throw new ConnectError("the refresh token has been revoked (signed out, or the session was ended); sign in again", Code.Unauthenticated);
        case "reused":
          throw new ConnectError(
            "the refresh token was already used, so it may have been stolen: every refresh token of this sign-in is now revoked; sign in again",
            Code.Unauthenticated,
          );
      }
      const used = use.refreshToken;
      // The role is the member's role now, not when they signed in; a removed or disabled member's session ends here.
      const [membership, user] = await Promise.all([store.getMembership(used.organizationId, used.userId), store.getUser(used.userId)]);
      if (!membership || !user || user.disabled) {
        await store.revokeFamily(used.familyId, "access ended");
        throw new ConnectError("this session's access has ended; sign in again", Code.Unauthenticated);
      }
      try {
        return await pairFor(used.organizationId, used.userId, membership.role, used.familyId);
      } catch (e) {
        // The family was revoked between the use and the next token (a reuse, a sign-out): the same answer as a revoked token.
        if (ConnectError.from(e).code === Code.FailedPrecondition) {
          throw new ConnectError("the refresh token has been revoked (signed out, or the session was ended); sign in again", Code.Unauthenticated);
        }
        throw e;
      }
    },

    async revokeToken(req) {
      // Like RFC 7009: an unknown or already revoked token is not an error, and the answer does not tell which it was.
      await store.revokeRefreshToken(req.refreshToken, logoutReason);
      return {};
    },

    getCurrentPrincipal(_req, ctx) {
      const p = principalOf(ctx);
      return { subject: p.subject, organization: `organizations/${p.organization}`, roles: [p.role] };
    },

    async createApiKey(req, ctx) {
      const organizationId = idOf(req.parent, "organizations/");
      adminOf(ctx, organizationId);
      if (!req.apiKey?.role) throw new ConnectError("api_key.role is required: admin, analyst, marketer, viewer or service", Code.InvalidArgument);
      const created = await store.createApiKey({ organizationId, role: checkRole(req.apiKey.role), displayName: req.apiKey.displayName });
      return apiKeyMessage(created.apiKey, { key: created.key });
    },

    async listApiKeys(req, ctx) {
      const organizationId = idOf(req.parent, "organizations/");
      adminOf(ctx, organizationId);
      const { page, nextPageToken } = paginate(await store.listApiKeys(organizationId), req, req.parent);
      return { apiKeys: page.map((k) => apiKeyMessage(k)), nextPageToken };
    },

    async revokeApiKey(req, ctx) {
      const m = /^organizations\/([^/]+)\/apiKeys\/([^/]+)$/.exec(req.name);
      if (!m) throw new ConnectError(`name must be organizations/{organization}/apiKeys/{api_key}, got "${req.name.slice(0, 200)}"`, Code.InvalidArgument);
      const [, organizationId, id] = m;
      adminOf(ctx, organizationId);
      await store.revokeApiKey(organizationId, id);
      // Revoking a revoked key is not an error (the call is idempotent); a key that is not the organization's is not found.
      const key = (await store.listApiKeys(organizationId)).find((k) => k.id === id);
      if (!key) throw new ConnectError(`${req.name} not found`, Code.NotFound);
      return apiKeyMessage(key);
    },

    getJsonWebKeySet() {
      return { keys: options.publicJwks.keys.map((k) => ({ kty: k.kty, crv: k.crv, x: k.x, y: k.y, kid: k.kid, alg: k.alg, use: k.use })) };
    },
  };
}

/** idOf strips a resource name's collection prefix (`organizations/`); a bare id is taken as it is. */
function idOf(name: string, prefix: string): string {
  return name.startsWith(prefix) ? name.slice(prefix.length) : name;
}

/** principalOf is the call's verified principal; UNAUTHENTICATED without one. */
function principalOf(ctx: HandlerContext): Principal {
  const p = ctx.values.get(principalKey);
  if (!p) throw new ConnectError("this call needs an access token: send the metadata `authorization: Bearer <token>`", Code.Unauthenticated);
  return p;
}

/**
 * adminOf lets an organization's admins through. Another organization's
 * caller is told the organization does not exist (NOT_FOUND), as for every
 * record of another organization; a member without the role is
 * PERMISSION_DENIED. The contracts' authorization rules will take this over.
 */
function adminOf(ctx: HandlerContext, organizationId: string): Principal {
  const p = principalOf(ctx);
  if (p.organization !== organizationId) throw new ConnectError(`organizations/${organizationId.slice(0, 128)} not found`, Code.NotFound);
  if (p.role !== "admin") throw new ConnectError("only the organization's admins manage its API keys", Code.PermissionDenied);
  return p;
}

/** apiKeyMessage is an API key as the contract shows it; `key` is set only when it was just created. */
function apiKeyMessage(k: ApiKey, shownOnce: { key?: string } = {}): ApiKeyMessage {
  return create(ApiKeySchema, {
    name: `organizations/${k.organizationId}/apiKeys/${k.id}`,
    displayName: k.displayName,
    role: k.role,
    prefix: k.prefix,
    createTime: timestampFromDate(k.createTime),
    lastUseTime: k.lastUsedTime && timestampFromDate(k.lastUsedTime),
    revokeTime: k.revokedTime && timestampFromDate(k.revokedTime),
    key: shownOnce.key,
  });
}

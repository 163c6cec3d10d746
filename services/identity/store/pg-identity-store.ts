import type { EntityManager } from "@mikro-orm/postgresql";
import { uuidv7 } from "uuidv7";
import type { Database } from "../../../platform/db/database.js";
import { digestOf, matchesDigest, newApiKey, parseApiKey } from "./credentials.js";
import {
  checkDisplayName,
  checkPassword,
  checkRole,
  checkTtl,
  emailKey,
  emailTaken,
  familyUnusable,
  freshRefreshToken,
  isId,
  lastUsedResolutionMs,
  normalizeEmail,
  notFound,
  refreshVerdict,
  reuseReason,
  type ApiKey,
  type IdentityStore,
  type IdentityStoreOptions,
  type Membership,
  type Organization,
  type RefreshToken,
  type Role,
  type User,
} from "./identity-store.js";
import { createPasswordHasher } from "./password-hash.js";
import {
  ApiKeyEntity,
  MembershipEntity,
  OrganizationEntity,
  RefreshTokenEntity,
  UserEntity,
  type ApiKeyRow,
  type MembershipRow,
  type OrganizationRow,
  type RefreshTokenRow,
  type UserRow,
} from "./schema.js";

/** RawTokenRow is a refresh_tokens row as raw SQL returns it. */
interface RawTokenRow {
  id: string;
  family_id: string;
  organization_id: string;
  user_id: string;
  role: string;
  expire_time: Date | string;
  used_time: Date | string | null;
  revoked_time: Date | string | null;
  revoke_reason: string | null;
  create_time: Date | string;
}

const tokenColumns = `t."id", t."family_id", t."organization_id", t."user_id", t."role", t."expire_time", t."used_time", t."revoked_time", t."revoke_reason", t."create_time"`;

/**
 * createPgIdentityStore keeps identities in the identity service's PostgreSQL
 * schema through MikroORM (a real server, or the embedded PGlite): entities
 * for plain reads and writes, raw SQL where a single statement must decide
 * (the conditional UPDATE … RETURNING that uses a refresh token once, the
 * membership upsert).
 */
export function createPgIdentityStore(db: Database, options: IdentityStoreOptions = {}): IdentityStore {
  const hasher = options.passwordHasher ?? createPasswordHasher();
  const now = options.now ?? (() => new Date());
  const em = (): EntityManager => db.orm.em.fork() as EntityManager;
  const sql = <T>(query: string, params: unknown[]): Promise<T[]> => db.orm.em.getConnection().execute<T[]>(query, params);

  const revoke = (familyId: string, reason: string, at: Date): Promise<number> =>
    em().nativeUpdate(RefreshTokenEntity, { familyId, revokedTime: null }, { revokedTime: at, revokeReason: reason });

  return {
    async createOrganization(o) {
      const row: OrganizationRow = { id: uuidv7(), displayName: checkDisplayName(o.displayName, true), createTime: now() };
      await em().insert(OrganizationEntity, row);
      return organizationOf(row);
    },
    async getOrganization(id) {
      if (!isId(id)) return undefined;
      const row = await em().findOne(OrganizationEntity, { id });
      return row ? organizationOf(row) : undefined;
    },
    async createUser(u) {
      const email = normalizeEmail(u.email);
      const displayName = checkDisplayName(u.displayName ?? "", false);
      const passwordHash = u.password === undefined ? null : await hasher.hash(checkPassword(u.password));
      const row: UserRow = { id: uuidv7(), email, passwordHash, displayName, disabled: false, createTime: now() };
      try {
        await em().insert(UserEntity, row);
      } catch (e) {
        if (violated(e, "23505")) throw emailTaken(email);
        throw e;
      }
      return userOf(row);
    },
    async getUser(id) {
      if (!isId(id)) return undefined;
      const row = await em().findOne(UserEntity, { id });
      return row ? userOf(row) : undefined;
    },
    async findUserByEmail(email) {
      const row = await em().findOne(UserEntity, { email: emailKey(email) });
      return row ? userOf(row) : undefined;
    },
    async setUserDisabled(id, disabled) {
      if (!isId(id)) return false;
      return (await em().nativeUpdate(UserEntity, { id }, { disabled })) > 0;
    },
    async verifyPassword(email, password) {
      const row = await em().findOne(UserEntity, { email: emailKey(email) });
      const ok = await hasher.verify(password, row?.passwordHash);
      return ok && row && !row.disabled ? userOf(row) : undefined;
    },
    async addMembership(m) {
      const role = checkRole(m.role);
      if (!isId(m.organizationId)) throw notFound(`organization ${m.organizationId}`);
      if (!isId(m.userId)) throw notFound(`user ${m.userId}`);
      try {
        // An upsert in one statement: a second add changes the role and keeps when the user joined.
        const [row] = await sql<{ organization_id: string; user_id: string; role: string; create_time: Date | string }>(
          `insert into "identity"."memberships" ("organization_id", "user_id", "role", "create_time") values (?, ?, ?, ?::timestamptz)
           on conflict ("organization_id", "user_id") do update set "role" = excluded."role"
           returning "organization_id", "user_id", "role", "create_time"`,
          [m.organizationId, m.userId, role, now().toISOString()],
        );
        return { organizationId: row.organization_id, userId: row.user_id, role: row.role as Role, createTime: new Date(row.create_time) };
      } catch (e) {
        if (violated(e, "23503")) {
          throw (e as { constraint?: string }).constraint?.includes("user") ? notFound(`user ${m.userId}`) : notFound(`organization ${m.organizationId}`);
        }
        throw e;
      }
    },
    async getMembership(organizationId, userId) {
      if (!isId(organizationId) || !isId(userId)) return undefined;
      const row = await em().findOne(MembershipEntity, { organizationId, userId });
      return row ? membershipOf(row) : undefined;
    },
    async listMemberships(userId) {
      if (!isId(userId)) return [];
      const rows = await em().find(MembershipEntity, { userId }, { orderBy: { organizationId: "asc" } });
      return rows.map(membershipOf);
    },
    async issueRefreshToken(t) {
      const role = checkRole(t.role);
      const ttlMs = checkTtl(t.ttlMs);
      const membership = `membership of user ${t.userId} in organization ${t.organizationId}`;
      if (!isId(t.organizationId) || !isId(t.userId)) throw notFound(membership);
      const familyId = t.familyId ?? uuidv7();
      if (t.familyId !== undefined) {
        const owners = isId(familyId)
          ? await sql<{ organization_id: string; user_id: string; revoked: boolean }>(
              `select "organization_id", "user_id", bool_or("revoked_time" is not null) as "revoked"
               from "identity"."refresh_tokens" where "family_id" = ? group by "organization_id", "user_id"`,
              [familyId],
            )
          : [];
        if (owners.length !== 1 || owners[0].organization_id !== t.organizationId || owners[0].user_id !== t.userId) {
          throw familyUnusable(familyId, "is unknown or belongs to another membership");
        }
        // A revoke that lands after this check is still caught: a token is only used while its family is unrevoked.
        if (owners[0].revoked) throw familyUnusable(familyId, "is revoked");
      }
      const { token, record } = freshRefreshToken({ familyId, organizationId: t.organizationId, userId: t.userId, role }, ttlMs, now());
      const row: RefreshTokenRow = { ...record, usedTime: null, revokedTime: null, revokeReason: null };
      try {
        await em().insert(RefreshTokenEntity, row);
      } catch (e) {
        if (violated(e, "23503")) throw notFound(membership);
        throw e;
      }
      const { tokenHash: _, ...stored } = row;
      return { token, refreshToken: tokenOf(stored) };
    },
    async useRefreshToken(token) {
      const hash = digestOf(token);
      const at = now().toISOString();
      // One statement decides: of two concurrent uses, the second waits for the first's row lock, then
      // finds used_time set and updates nothing. A token also stops working once any token of its family
      // is revoked, which covers a token issued into a family while it was being revoked.
      const [used] = await sql<RawTokenRow>(
        `update "identity"."refresh_tokens" t set "used_time" = ?::timestamptz
         where t."token_hash" = ? and t."used_time" is null and t."revoked_time" is null and t."expire_time" > ?::timestamptz
           and not exists (select 1 from "identity"."refresh_tokens" f where f."family_id" = t."family_id" and f."revoked_time" is not null)
         returning ${tokenColumns}`,
        [at, hash, at],
      );
      if (used) return { status: "ok", refreshToken: rawTokenOf(used) };
      const [found] = await sql<RawTokenRow & { family_revoked: boolean }>(
        `select ${tokenColumns},
           exists (select 1 from "identity"."refresh_tokens" f where f."family_id" = t."family_id" and f."revoked_time" is not null) as "family_revoked"
         from "identity"."refresh_tokens" t where t."token_hash" = ?`,
        [hash],
      );
      if (!found) return { status: "unknown" };
      const refreshToken = rawTokenOf(found);
      const verdict = refreshVerdict(refreshToken, found.family_revoked, new Date(at));
      if (verdict === "reused") await revoke(refreshToken.familyId, reuseReason, new Date(at));
      // "ok" here means the row changed between the two statements; refusing is the safe answer.
      return { status: verdict === "ok" ? "revoked" : verdict, refreshToken };
    },
    async revokeFamily(familyId, reason) {
      if (!isId(familyId)) return 0;
      return revoke(familyId, reason, now());
    },
    async revokeRefreshToken(token, reason = "logout") {
      const row = await em().findOne(RefreshTokenEntity, { tokenHash: digestOf(token) });
      if (!row) return false;
      await revoke(row.familyId, reason, now());
      return true;
    },
    async createApiKey(k) {
      const role = checkRole(k.role);
      const displayName = checkDisplayName(k.displayName, false);
      if (!isId(k.organizationId)) throw notFound(`organization ${k.organizationId}`);
      // Prefixes are random (about 41 bits); on the rare clash, draw another.
      for (let attempt = 1; ; attempt++) {
        const made = newApiKey();
        const row: ApiKeyRow = {
          id: uuidv7(),
          organizationId: k.organizationId,
          prefix: made.prefix,
          keyHash: digestOf(made.secret),
          role,
          displayName,
          createTime: now(),
          lastUsedTime: null,
          revokedTime: null,
        };
        try {
          await em().insert(ApiKeyEntity, row);
          return { key: made.key, apiKey: apiKeyOf(row) };
        } catch (e) {
          if (violated(e, "23503")) throw notFound(`organization ${k.organizationId}`);
          if (!violated(e, "23505") || attempt === 5) throw e;
        }
      }
    },
    async verifyApiKey(key) {
      const parts = parseApiKey(key);
      // The prefix is public, so finding the row by it leaks nothing; the secret is compared in constant time.
      const row = parts && (await em().findOne(ApiKeyEntity, { prefix: parts.prefix }));
      if (!row || !matchesDigest(parts.secret, row.keyHash) || row.revokedTime) return undefined;
      const at = now();
      const touched = await em().nativeUpdate(
        ApiKeyEntity,
        { id: row.id, $or: [{ lastUsedTime: null }, { lastUsedTime: { $lte: new Date(at.getTime() - lastUsedResolutionMs) } }] },
        { lastUsedTime: at },
      );
      return apiKeyOf(touched > 0 ? { ...row, lastUsedTime: at } : row);
    },
    async revokeApiKey(organizationId, id) {
      if (!isId(organizationId) || !isId(id)) return false;
      return (await em().nativeUpdate(ApiKeyEntity, { id, organizationId, revokedTime: null }, { revokedTime: now() })) > 0;
    },
    async listApiKeys(organizationId) {
      if (!isId(organizationId)) return [];
      const rows = await em().find(ApiKeyEntity, { organizationId }, { orderBy: { id: "desc" } });
      return rows.map(apiKeyOf);
    },
  };
}

/** violated tells whether a database error is the given SQLSTATE (23505 unique, 23503 foreign key). */
function violated(e: unknown, sqlState: string): boolean {
  return (e as { code?: unknown } | undefined)?.code === sqlState;
}

function organizationOf(row: OrganizationRow): Organization {
  return { id: row.id, displayName: row.displayName, createTime: new Date(row.createTime) };
}

function userOf(row: UserRow): User {
  return {
    id: row.id,
    email: row.email,
    displayName: row.displayName,
    hasPassword: row.passwordHash !== null,
    disabled: row.disabled,
    createTime: new Date(row.createTime),
  };
}

function membershipOf(row: MembershipRow): Membership {
  return { organizationId: row.organizationId, userId: row.userId, role: row.role as Role, createTime: new Date(row.createTime) };
}

function tokenOf(row: Omit<RefreshTokenRow, "tokenHash">): RefreshToken {
  return {
    id: row.id,
    familyId: row.familyId,
    organizationId: row.organizationId,
    userId: row.userId,
    role: row.role as Role,
    expireTime: new Date(row.expireTime),
    ...(row.usedTime && { usedTime: new Date(row.usedTime) }),
    ...(row.revokedTime && { revokedTime: new Date(row.revokedTime) }),
    ...(row.revokeReason !== null && { revokeReason: row.revokeReason }),
    createTime: new Date(row.createTime),
  };
}

function rawTokenOf(r: RawTokenRow): RefreshToken {
  const date = (v: Date | string | null) => (v === null ? null : new Date(v));
  return tokenOf({
    id: r.id,
    familyId: r.family_id,
    organizationId: r.organization_id,
    userId: r.user_id,
    role: r.role,
    expireTime: new Date(r.expire_time),
    usedTime: date(r.used_time),
    revokedTime: date(r.revoked_time),
    revokeReason: r.revoke_reason,
    createTime: new Date(r.create_time),
  });
}

function apiKeyOf(row: ApiKeyRow): ApiKey {
  return {
    id: row.id,
    organizationId: row.organizationId,
    prefix: row.prefix,
    role: row.role as Role,
    displayName: row.displayName,
    createTime: new Date(row.createTime),
    ...(row.lastUsedTime && { lastUsedTime: new Date(row.lastUsedTime) }),
    ...(row.revokedTime && { revokedTime: new Date(row.revokedTime) }),
  };
}

import { Code, ConnectError } from "@connectrpc/connect";
import { uuidv7 } from "uuidv7";
import { roles, type Role } from "../../../platform/auth/roles.js";
import { digestOf, matchesDigest, newApiKey, newRefreshToken, parseApiKey } from "./credentials.js";
import { createPasswordHasher, maxPasswordLength, type PasswordHasher } from "./password-hash.js";

// Roles are shared with every service's token verification (platform/auth).
export { roles, type Role };

/** Organization is a customer organization (a tenant). */
export interface Organization {
  /** id is a UUIDv7. */
  readonly id: string;
  /** displayName is the organization's name as people read it; not unique. */
  readonly displayName: string;
  /** createTime is when it was created. */
  readonly createTime: Date;
}

/** User is a person who signs in. Its password hash never leaves the store. */
export interface User {
  /** id is a UUIDv7. */
  readonly id: string;
  /** email is lower-cased: addresses that differ only in case are one user. */
  readonly email: string;
  /** displayName is the user's name as people read it. */
  readonly displayName: string;
  /** hasPassword tells whether the user can sign in with a password. */
  readonly hasPassword: boolean;
  /** disabled users cannot sign in. */
  readonly disabled: boolean;
  /** createTime is when the user was created. */
  readonly createTime: Date;
}

/** Membership gives a user a role in an organization. */
export interface Membership {
  /** organizationId is the organization's id. */
  readonly organizationId: string;
  /** userId is the user's id. */
  readonly userId: string;
  /** role is what the user may do there. */
  readonly role: Role;
  /** createTime is when the user joined. */
  readonly createTime: Date;
}

/** RefreshToken is what the store knows of a refresh token: never the token itself. */
export interface RefreshToken {
  /** id is a UUIDv7. */
  readonly id: string;
  /** familyId groups the tokens of one sign-in: each use issues the next token in the same family. */
  readonly familyId: string;
  /** organizationId is the organization the token signs in to. */
  readonly organizationId: string;
  /** userId is the user it signs in. */
  readonly userId: string;
  /** role is the role it was issued with. */
  readonly role: Role;
  /** expireTime is when it stops working. */
  readonly expireTime: Date;
  /** usedTime is when it was exchanged; a token is used once. */
  readonly usedTime?: Date;
  /** revokedTime is when it (its family) was revoked. */
  readonly revokedTime?: Date;
  /** revokeReason says why (`reuse`, `logout` …). */
  readonly revokeReason?: string;
  /** createTime is when it was issued. */
  readonly createTime: Date;
}

/** IssuedRefreshToken is a new refresh token: the token, shown once, and what the store keeps of it. */
export interface IssuedRefreshToken {
  /** token is the opaque refresh token; the store keeps only its SHA-256. */
  readonly token: string;
  /** refreshToken is the stored record. */
  readonly refreshToken: RefreshToken;
}

/**
 * RefreshTokenUse is the outcome of presenting a refresh token. `ok`: it was
 * valid and is now used; issue the next token in its family. `reused`: it had
 * been used before, so it was stolen or replayed, and its whole family is now
 * revoked. `revoked`, `expired`: it (or its family) no longer works.
 * `unknown`: no such token.
 */
export type RefreshTokenUse =
  | { readonly status: "ok" | "reused" | "revoked" | "expired"; readonly refreshToken: RefreshToken }
  | { readonly status: "unknown" };

/** ApiKey is what the store shows of an API key: never its secret or its hash. */
export interface ApiKey {
  /** id is a UUIDv7. */
  readonly id: string;
  /** organizationId is the organization the key acts for. */
  readonly organizationId: string;
  /** prefix is the key's public part (`rfk_<prefix>_…`), shown in lists to tell keys apart. */
  readonly prefix: string;
  /** role is what the key may do. */
  readonly role: Role;
  /** displayName is the key's name as people read it. */
  readonly displayName: string;
  /** createTime is when it was created. */
  readonly createTime: Date;
  /** lastUsedTime is when it last authenticated a call, to within a minute. */
  readonly lastUsedTime?: Date;
  /** revokedTime is when it was revoked; revoked keys do not verify. */
  readonly revokedTime?: Date;
}

/** CreatedApiKey is a new API key: the key, shown once, and what the store keeps of it. */
export interface CreatedApiKey {
  /** key is `rfk_<prefix>_<secret>`; the store keeps the prefix and the SHA-256 of the secret. */
  readonly key: string;
  /** apiKey is the stored record. */
  readonly apiKey: ApiKey;
}

/** NewOrganization describes an organization to create. */
export interface NewOrganization {
  /** displayName is required (1–200 characters). */
  readonly displayName: string;
}

/** NewUser describes a user to create. */
export interface NewUser {
  /** email is required; it is trimmed and lower-cased. */
  readonly email: string;
  /** password is optional: without one the user cannot sign in with a password (invited, or single sign-on). */
  readonly password?: string;
  /** displayName defaults to empty. */
  readonly displayName?: string;
}

/** NewMembership gives a user a role in an organization. */
export interface NewMembership {
  /** organizationId must name an existing organization. */
  readonly organizationId: string;
  /** userId must name an existing user. */
  readonly userId: string;
  /** role is one of `roles`. */
  readonly role: Role;
}

/** NewRefreshToken describes a refresh token to issue. */
export interface NewRefreshToken {
  /** organizationId and userId must be a membership. */
  readonly organizationId: string;
  /** userId is the user signed in. */
  readonly userId: string;
  /** role is the role the token carries (usually the membership's). */
  readonly role: Role;
  /** familyId continues a family (the family of the token just used); without it a new family starts (a sign-in). */
  readonly familyId?: string;
  /** ttlMs is how long the token works, in milliseconds. */
  readonly ttlMs: number;
}

/** NewApiKey describes an API key to create. */
export interface NewApiKey {
  /** organizationId must name an existing organization. */
  readonly organizationId: string;
  /** role is what the key may do. */
  readonly role: Role;
  /** displayName is the key's name as people read it. */
  readonly displayName: string;
}

/**
 * IdentityStore keeps organizations, users, memberships, refresh tokens and
 * API keys. Secrets go in and come out once (a new refresh token, a new API
 * key); what is stored is a digest, and no read returns it. Reads scoped to
 * an organization return nothing for another organization's records. Errors
 * are ConnectErrors: INVALID_ARGUMENT (a malformed email, role or name),
 * ALREADY_EXISTS (an email taken), NOT_FOUND (an organization, user or
 * membership that does not exist), FAILED_PRECONDITION (continuing a revoked
 * or foreign refresh-token family). The in-process store and PostgreSQL
 * (pg-identity-store.ts) implement it; one contract suite runs against each.
 */
export interface IdentityStore {
  /** createOrganization creates an organization. */
  createOrganization(organization: NewOrganization): Promise<Organization>;
  /** getOrganization returns an organization, or undefined. */
  getOrganization(id: string): Promise<Organization | undefined>;

  /** createUser creates a user, hashing the password if there is one; ALREADY_EXISTS when the email is taken. */
  createUser(user: NewUser): Promise<User>;
  /** getUser returns a user by id, or undefined. */
  getUser(id: string): Promise<User | undefined>;
  /** findUserByEmail returns the user with this email (in any case), or undefined. */
  findUserByEmail(email: string): Promise<User | undefined>;
  /** setUserDisabled disables or re-enables a user; false when there is no such user. */
  setUserDisabled(id: string, disabled: boolean): Promise<boolean>;
  /**
   * verifyPassword returns the user when the password is theirs and they are
   * not disabled, else undefined. It hashes the password even when there is no
   * such user, so the time taken does not tell which emails have accounts.
   */
  verifyPassword(email: string, password: string): Promise<User | undefined>;

  /** addMembership gives a user a role in an organization, or changes the role they have there. */
  addMembership(membership: NewMembership): Promise<Membership>;
  /** getMembership returns the user's membership of the organization, or undefined. */
  getMembership(organizationId: string, userId: string): Promise<Membership | undefined>;
  /** listMemberships returns the user's memberships, oldest organization first. */
  listMemberships(userId: string): Promise<Membership[]>;

  /**
   * issueRefreshToken issues a refresh token to a member: a new family, or
   * the next token of `familyId` (FAILED_PRECONDITION when that family is
   * revoked or belongs to another membership). The token is returned once;
   * only its SHA-256 is stored.
   */
  issueRefreshToken(token: NewRefreshToken): Promise<IssuedRefreshToken>;
  /**
   * useRefreshToken exchanges a refresh token, once: of two concurrent uses
   * exactly one is `ok`. Using a token that was already used revokes its
   * whole family (`reused`), so a thief and the victim both lose the session.
   */
  useRefreshToken(token: string): Promise<RefreshTokenUse>;
  /** revokeFamily revokes every token of a family; it returns how many were not revoked already. */
  revokeFamily(familyId: string, reason: string): Promise<number>;
  /** revokeRefreshToken revokes the family of a token (sign-out); false for an unknown token. */
  revokeRefreshToken(token: string, reason?: string): Promise<boolean>;

  /** createApiKey creates an API key and returns it once; the store keeps its prefix and the SHA-256 of its secret. */
  createApiKey(key: NewApiKey): Promise<CreatedApiKey>;
  /** verifyApiKey returns the key's record when the key is valid and not revoked, noting when it was used; else undefined. */
  verifyApiKey(key: string): Promise<ApiKey | undefined>;
  /** revokeApiKey revokes one of the organization's keys; false when it has no such key (or it was revoked already). */
  revokeApiKey(organizationId: string, id: string): Promise<boolean>;
  /** listApiKeys returns the organization's keys, revoked ones included, newest first. */
  listApiKeys(organizationId: string): Promise<ApiKey[]>;
}

/** IdentityStoreOptions are what both implementations of the store share. */
export interface IdentityStoreOptions {
  /** passwordHasher hashes and checks passwords; scrypt with N = 2^15, r = 8, p = 1 unless told. */
  readonly passwordHasher?: PasswordHasher;
  /** now is the clock (tests move it); `() => new Date()` unless told. */
  readonly now?: () => Date;
}

/** lastUsedResolutionMs is how stale an API key's lastUsedTime may get: a busy key is written once a minute, not on every call. */
export const lastUsedResolutionMs = 60_000;

/** reuseReason is the revoke reason of a family whose used token was presented again. */
export const reuseReason = "reuse";

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** isId tells whether a string can be an id (a UUID); other strings find nothing. */
export function isId(id: string): boolean {
  return uuid.test(id);
}

/** emailKey is how an email is stored and looked up: trimmed, NFC-normalized, lower-cased. */
export function emailKey(email: string): string {
  return email.trim().normalize("NFC").toLowerCase();
}

/** normalizeEmail is the emailKey of an email; INVALID_ARGUMENT when it is not shaped like an email. */
export function normalizeEmail(email: string): string {
  const e = emailKey(email);
  if (e.length > 254 || !/^[^\s@]+@[^\s@]+$/.test(e)) throw new ConnectError(`"${email.slice(0, 64)}" is not an email address`, Code.InvalidArgument);
  return e;
}

/** checkRole returns the role, or throws INVALID_ARGUMENT for one that is not in `roles`. */
export function checkRole(role: string): Role {
  if (!(roles as readonly string[]).includes(role)) throw new ConnectError(`role must be one of ${roles.join(", ")}, got "${role}"`, Code.InvalidArgument);
  return role as Role;
}

/** checkDisplayName trims a display name and bounds it (200 characters; required or not). */
export function checkDisplayName(name: string, required: boolean): string {
  const n = name.trim();
  if ((required && n === "") || n.length > 200) throw new ConnectError(`display name must be ${required ? "1" : "0"}–200 characters`, Code.InvalidArgument);
  return n;
}

/** checkPassword rejects an empty or over-long password before it is hashed. */
export function checkPassword(password: string): string {
  if (password === "" || password.length > maxPasswordLength) {
    throw new ConnectError(`a password must be 1–${maxPasswordLength} characters`, Code.InvalidArgument);
  }
  return password;
}

/** checkTtl checks a refresh token's lifetime. */
export function checkTtl(ttlMs: number): number {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw new ConnectError(`ttl must be a positive whole number of milliseconds, got ${ttlMs}`, Code.InvalidArgument);
  return ttlMs;
}

/** notFound is the NOT_FOUND error for a missing record. */
export function notFound(what: string): ConnectError {
  return new ConnectError(`${what} not found`, Code.NotFound);
}

/** emailTaken is the ALREADY_EXISTS error for an email that has a user. */
export function emailTaken(email: string): ConnectError {
  return new ConnectError(`a user with email "${email}" already exists`, Code.AlreadyExists);
}

/** familyUnusable is the FAILED_PRECONDITION error for continuing a revoked, unknown or foreign family. */
export function familyUnusable(familyId: string, why: string): ConnectError {
  return new ConnectError(`refresh token family ${familyId} ${why}`, Code.FailedPrecondition);
}

/**
 * refreshVerdict says why a refresh token that could not be used is refused.
 * A token used before is `reused` whatever else is true of it: presenting it
 * again is the sign of theft, even after its family was revoked or it expired.
 */
export function refreshVerdict(token: RefreshToken, familyRevoked: boolean, now: Date): "ok" | "reused" | "revoked" | "expired" {
  if (token.usedTime) return "reused";
  if (token.revokedTime || familyRevoked) return "revoked";
  if (token.expireTime.getTime() <= now.getTime()) return "expired";
  return "ok";
}

interface StoredUser extends User {
  readonly passwordHash: string | null;
}

interface StoredToken extends RefreshToken {
  readonly tokenHash: string;
}

/**
 * freshRefreshToken makes a new refresh token of a family: the token, shown
 * once, and the record both stores keep of it (only its SHA-256).
 */
export function freshRefreshToken(
  of: Pick<RefreshToken, "familyId" | "organizationId" | "userId" | "role">,
  ttlMs: number,
  at: Date,
): { token: string; record: StoredToken } {
  const token = newRefreshToken();
  return { token, record: { id: uuidv7(), ...of, tokenHash: digestOf(token), expireTime: new Date(at.getTime() + ttlMs), createTime: at } };
}

interface StoredApiKey extends ApiKey {
  readonly keyHash: string;
}

/**
 * createMemoryIdentityStore keeps identities in Maps (tests, demos; lost on
 * restart). Records are copied on the way in and out, and every check and
 * change that must be atomic happens without an `await` in between, which in
 * one JavaScript thread makes it so.
 */
export function createMemoryIdentityStore(options: IdentityStoreOptions = {}): IdentityStore {
  const hasher = options.passwordHasher ?? createPasswordHasher();
  const now = options.now ?? (() => new Date());
  const organizations = new Map<string, Organization>();
  const users = new Map<string, StoredUser>();
  const usersByEmail = new Map<string, string>();
  const memberships = new Map<string, Membership>();
  const tokens = new Map<string, StoredToken>();
  const families = new Map<string, string[]>();
  const apiKeys = new Map<string, StoredApiKey>();
  const apiKeysByPrefix = new Map<string, string>();

  const membershipKey = (organizationId: string, userId: string) => `${organizationId}/${userId}`;
  const familyRevoked = (familyId: string) => (families.get(familyId) ?? []).some((h) => tokens.get(h)!.revokedTime);
  const revoke = (familyId: string, reason: string, at: Date): number => {
    let n = 0;
    for (const h of families.get(familyId) ?? []) {
      const t = tokens.get(h)!;
      if (t.revokedTime) continue;
      tokens.set(h, { ...t, revokedTime: at, revokeReason: reason });
      n++;
    }
    return n;
  };

  return {
    async createOrganization(o) {
      const organization = { id: uuidv7(), displayName: checkDisplayName(o.displayName, true), createTime: now() };
      organizations.set(organization.id, organization);
      return copy(organization);
    },
    async getOrganization(id) {
      const o = organizations.get(id);
      return o && copy(o);
    },
    async createUser(u) {
      const email = normalizeEmail(u.email);
      const displayName = checkDisplayName(u.displayName ?? "", false);
      const passwordHash = u.password === undefined ? null : await hasher.hash(checkPassword(u.password));
      // Checked after hashing: no await between the check and the insert.
      if (usersByEmail.has(email)) throw emailTaken(email);
      const user: StoredUser = { id: uuidv7(), email, displayName, passwordHash, hasPassword: passwordHash !== null, disabled: false, createTime: now() };
      users.set(user.id, user);
      usersByEmail.set(email, user.id);
      return publicUser(user);
    },
    async getUser(id) {
      const u = users.get(id);
      return u && publicUser(u);
    },
    async findUserByEmail(email) {
      const id = usersByEmail.get(emailKey(email));
      return id === undefined ? undefined : publicUser(users.get(id)!);
    },
    async setUserDisabled(id, disabled) {
      const u = users.get(id);
      if (!u) return false;
      users.set(id, { ...u, disabled });
      return true;
    },
    async verifyPassword(email, password) {
      const id = usersByEmail.get(emailKey(email));
      const user = id === undefined ? undefined : users.get(id);
      const ok = await hasher.verify(password, user?.passwordHash);
      return ok && user && !user.disabled ? publicUser(user) : undefined;
    },
    async addMembership(m) {
      const role = checkRole(m.role);
      if (!organizations.has(m.organizationId)) throw notFound(`organization ${m.organizationId}`);
      if (!users.has(m.userId)) throw notFound(`user ${m.userId}`);
      const key = membershipKey(m.organizationId, m.userId);
      const membership: Membership = { organizationId: m.organizationId, userId: m.userId, role, createTime: memberships.get(key)?.createTime ?? now() };
      memberships.set(key, membership);
      return copy(membership);
    },
    async getMembership(organizationId, userId) {
      const m = memberships.get(membershipKey(organizationId, userId));
      return m && copy(m);
    },
    async listMemberships(userId) {
      return [...memberships.values()]
        .filter((m) => m.userId === userId)
        .sort((a, b) => (a.organizationId < b.organizationId ? -1 : 1))
        .map(copy);
    },
    async issueRefreshToken(t) {
      const role = checkRole(t.role);
      const ttlMs = checkTtl(t.ttlMs);
      if (!memberships.has(membershipKey(t.organizationId, t.userId))) throw notFound(`membership of user ${t.userId} in organization ${t.organizationId}`);
      const familyId = t.familyId ?? uuidv7();
      if (t.familyId !== undefined) {
        const first = tokens.get(families.get(familyId)?.[0] ?? "");
        if (!first || first.organizationId !== t.organizationId || first.userId !== t.userId) throw familyUnusable(familyId, "is unknown or belongs to another membership");
        if (familyRevoked(familyId)) throw familyUnusable(familyId, "is revoked");
      }
      const { token, record: stored } = freshRefreshToken({ familyId, organizationId: t.organizationId, userId: t.userId, role }, ttlMs, now());
      tokens.set(stored.tokenHash, stored);
      families.set(familyId, [...(families.get(familyId) ?? []), stored.tokenHash]);
      return { token, refreshToken: publicToken(stored) };
    },
    async useRefreshToken(token) {
      const hash = digestOf(token);
      const t = tokens.get(hash);
      if (!t) return { status: "unknown" };
      const at = now();
      const verdict = refreshVerdict(t, familyRevoked(t.familyId), at);
      if (verdict === "ok") {
        const used = { ...t, usedTime: at };
        tokens.set(hash, used);
        return { status: "ok", refreshToken: publicToken(used) };
      }
      if (verdict === "reused") revoke(t.familyId, reuseReason, at);
      return { status: verdict, refreshToken: publicToken(t) };
    },
    async revokeFamily(familyId, reason) {
      return revoke(familyId, reason, now());
    },
    async revokeRefreshToken(token, reason = "logout") {
      const t = tokens.get(digestOf(token));
      if (!t) return false;
      revoke(t.familyId, reason, now());
      return true;
    },
    async createApiKey(k) {
      const role = checkRole(k.role);
      const displayName = checkDisplayName(k.displayName, false);
      if (!organizations.has(k.organizationId)) throw notFound(`organization ${k.organizationId}`);
      let made = newApiKey();
      while (apiKeysByPrefix.has(made.prefix)) made = newApiKey();
      const stored: StoredApiKey = { id: uuidv7(), organizationId: k.organizationId, prefix: made.prefix, keyHash: digestOf(made.secret), role, displayName, createTime: now() };
      apiKeys.set(stored.id, stored);
      apiKeysByPrefix.set(stored.prefix, stored.id);
      return { key: made.key, apiKey: publicApiKey(stored) };
    },
    async verifyApiKey(key) {
      const parts = parseApiKey(key);
      const id = parts && apiKeysByPrefix.get(parts.prefix);
      const k = id === undefined ? undefined : apiKeys.get(id);
      if (!k || !matchesDigest(parts!.secret, k.keyHash) || k.revokedTime) return undefined;
      const at = now();
      if (k.lastUsedTime && at.getTime() - k.lastUsedTime.getTime() < lastUsedResolutionMs) return publicApiKey(k);
      const touched = { ...k, lastUsedTime: at };
      apiKeys.set(k.id, touched);
      return publicApiKey(touched);
    },
    async revokeApiKey(organizationId, id) {
      const k = apiKeys.get(id);
      if (!k || k.organizationId !== organizationId || k.revokedTime) return false;
      apiKeys.set(id, { ...k, revokedTime: now() });
      return true;
    },
    async listApiKeys(organizationId) {
      return [...apiKeys.values()]
        .filter((k) => k.organizationId === organizationId)
        .sort((a, b) => (a.id < b.id ? 1 : -1))
        .map(publicApiKey);
    },
  };
}

/** copy returns a copy whose dates are copies too, so callers cannot change what is stored. */
function copy<T extends object>(record: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record)) if (v !== undefined) out[k] = v instanceof Date ? new Date(v) : v;
  return out as T;
}

function publicUser({ passwordHash: _, ...user }: StoredUser): User {
  return copy(user);
}

function publicToken({ tokenHash: _, ...token }: StoredToken): RefreshToken {
  return copy(token);
}

function publicApiKey({ keyHash: _, ...key }: StoredApiKey): ApiKey {
  return copy(key);
}

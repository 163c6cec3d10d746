import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { uuidv7 } from "uuidv7";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../../platform/db/database.js";
import { createScratchDatabase, postgresAvailable } from "../../../test/support/databases.js";
import { createMemoryIdentityStore, type IdentityStore, type IdentityStoreOptions } from "./identity-store.js";
import { openIdentityDatabase } from "./open-store.js";
import { createPgIdentityStore } from "./pg-identity-store.js";

/** Opened is a store under test, its clock, and its database when it has one. */
interface Opened {
  readonly store: IdentityStore;
  /** advance moves the store's clock forward. */
  advance(ms: number): void;
  readonly db?: Database;
  cleanup(): Promise<void>;
}

/** testClock is a clock that starts now and moves only when told. */
function testClock(): { now: () => Date; advance(ms: number): void } {
  let t = Date.now();
  return { now: () => new Date(t), advance: (ms) => void (t += ms) };
}

/** codeOf runs an operation that should fail and returns its Connect code. */
async function codeOf(op: Promise<unknown>): Promise<Code | "resolved"> {
  return op.then(
    () => "resolved" as const,
    (e: unknown) => ConnectError.from(e).code,
  );
}

const tokenShape = /^[A-Za-z0-9_-]{43}$/;
const apiKeyShape = /^rfk_[a-z0-9]{8}_[A-Za-z0-9_-]{43}$/;
const unique = (label: string) => `${label}-${uuidv7().slice(-12)}@Example.COM`;

/** identityStoreContract is the behaviour of every IdentityStore, run against each implementation. */
function identityStoreContract(name: string, open: (options: IdentityStoreOptions & { advance(ms: number): void }) => Promise<Opened | undefined>): void {
  describe(`IdentityStore contract: ${name}`, () => {
    let opened: Opened | undefined;
    beforeAll(async () => {
      const clock = testClock();
      opened = await open(clock);
    });
    afterAll(async () => {
      await opened?.cleanup();
    });
    const test = (title: string, fn: (s: IdentityStore, o: Opened) => Promise<void>) => it(title, async (ctx) => (opened ? fn(opened.store, opened) : ctx.skip()));

    /** member makes an organization and a user with a role in it. */
    const member = async (s: IdentityStore, role: "admin" | "viewer" = "admin") => {
      const org = await s.createOrganization({ displayName: "Acme" });
      const user = await s.createUser({ email: unique("member") });
      await s.addMembership({ organizationId: org.id, userId: user.id, role });
      return { org, user };
    };

    test("creates and reads organizations; unknown ids and bad names find nothing", async (s) => {
      const org = await s.createOrganization({ displayName: "  Acme Corp  " });
      expect(org.displayName).toBe("Acme Corp");
      expect(org.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
      expect(await s.getOrganization(org.id)).toEqual(org);
      // Display names are not unique: two tenants may both be "Acme Corp".
      expect((await s.createOrganization({ displayName: "Acme Corp" })).id).not.toBe(org.id);
      expect(await s.getOrganization(uuidv7())).toBeUndefined();
      expect(await s.getOrganization("not-a-uuid")).toBeUndefined();
      expect(await codeOf(s.createOrganization({ displayName: "   " }))).toBe(Code.InvalidArgument);
    });

    test("stores emails lower-cased and finds users whatever the case; one user per email", async (s) => {
      const email = unique("Jane.Doe");
      const user = await s.createUser({ email: `  ${email} `, displayName: "Jane" });
      expect(user).toMatchObject({ email: email.toLowerCase(), displayName: "Jane", hasPassword: false, disabled: false });
      expect(user).not.toHaveProperty("passwordHash");
      expect(await s.findUserByEmail(email.toUpperCase())).toEqual(user);
      expect(await s.getUser(user.id)).toEqual(user);
      expect(await s.getUser("nope")).toBeUndefined();
      expect(await s.findUserByEmail(unique("nobody"))).toBeUndefined();
      expect(await codeOf(s.createUser({ email: email.toUpperCase() }))).toBe(Code.AlreadyExists);
      expect(await codeOf(s.createUser({ email: "not an email" }))).toBe(Code.InvalidArgument);
      expect(await codeOf(s.createUser({ email: unique("empty"), password: "" }))).toBe(Code.InvalidArgument);
    });

    test("verifies passwords: right, wrong, unknown email, no password, disabled user", async (s) => {
      const email = unique("pw");
      const user = await s.createUser({ email, password: "correct horse battery staple" });
      expect(user.hasPassword).toBe(true);
      expect(await s.verifyPassword(email.toUpperCase(), "correct horse battery staple")).toEqual(user);
      expect(await s.verifyPassword(email, "correct horse battery stapler")).toBeUndefined();
      expect(await s.verifyPassword(unique("ghost"), "correct horse battery staple")).toBeUndefined();
      const invited = await s.createUser({ email: unique("invited") });
      expect(await s.verifyPassword(invited.email, "")).toBeUndefined();
      expect(await s.setUserDisabled(user.id, true)).toBe(true);
      expect(await s.verifyPassword(email, "correct horse battery staple")).toBeUndefined();
      expect((await s.getUser(user.id))?.disabled).toBe(true);
      expect(await s.setUserDisabled(user.id, false)).toBe(true);
      expect((await s.verifyPassword(email, "correct horse battery staple"))?.id).toBe(user.id);
      expect(await s.setUserDisabled(uuidv7(), true)).toBe(false);
    });

    test("memberships: add, change the role, read, list per user; unknown parties and roles are refused", async (s, o) => {
      const a = await s.createOrganization({ displayName: "A" });
      const b = await s.createOrganization({ displayName: "B" });
      const user = await s.createUser({ email: unique("m") });
      const first = await s.addMembership({ organizationId: a.id, userId: user.id, role: "viewer" });
      expect(first).toMatchObject({ organizationId: a.id, userId: user.id, role: "viewer" });
      o.advance(1_000);
      const changed = await s.addMembership({ organizationId: a.id, userId: user.id, role: "analyst" });
      expect(changed.role).toBe("analyst");
      expect(changed.createTime).toEqual(first.createTime);
      await s.addMembership({ organizationId: b.id, userId: user.id, role: "marketer" });
      expect(await s.getMembership(a.id, user.id)).toEqual(changed);
      expect((await s.listMemberships(user.id)).map((m) => [m.organizationId, m.role])).toEqual([
        [a.id, "analyst"],
        [b.id, "marketer"],
      ]);
      expect(await s.listMemberships(uuidv7())).toEqual([]);
      const stranger = await s.createOrganization({ displayName: "C" });
      expect(await s.getMembership(stranger.id, user.id)).toBeUndefined();
      expect(await codeOf(s.addMembership({ organizationId: uuidv7(), userId: user.id, role: "viewer" }))).toBe(Code.NotFound);
      expect(await codeOf(s.addMembership({ organizationId: a.id, userId: uuidv7(), role: "viewer" }))).toBe(Code.NotFound);
      expect(await codeOf(s.addMembership({ organizationId: a.id, userId: user.id, role: "owner" as never }))).toBe(Code.InvalidArgument);
    });

    test("refresh tokens rotate: each is used once and the next one continues the family; only a digest is kept", async (s) => {
      const { org, user } = await member(s);
      const first = await s.issueRefreshToken({ organizationId: org.id, userId: user.id, role: "admin", ttlMs: 60_000 });
      expect(first.token).toMatch(tokenShape);
      expect(first.refreshToken).not.toHaveProperty("tokenHash");
      expect(JSON.stringify(first.refreshToken)).not.toContain(first.token);
      expect(first.refreshToken).toMatchObject({ organizationId: org.id, userId: user.id, role: "admin" });
      const used = await s.useRefreshToken(first.token);
      expect(used.status).toBe("ok");
      if (used.status !== "ok") return;
      expect(used.refreshToken.id).toBe(first.refreshToken.id);
      expect(used.refreshToken.usedTime).toBeInstanceOf(Date);
      const second = await s.issueRefreshToken({ organizationId: org.id, userId: user.id, role: "admin", familyId: used.refreshToken.familyId, ttlMs: 60_000 });
      expect(second.refreshToken.familyId).toBe(first.refreshToken.familyId);
      expect(second.token).not.toBe(first.token);
      expect((await s.useRefreshToken(second.token)).status).toBe("ok");
      const other = await s.issueRefreshToken({ organizationId: org.id, userId: user.id, role: "admin", ttlMs: 60_000 });
      expect(other.refreshToken.familyId).not.toBe(first.refreshToken.familyId);
    });

    test("a used refresh token presented again revokes its whole family, the newest token included", async (s) => {
      const { org, user } = await member(s);
      const first = await s.issueRefreshToken({ organizationId: org.id, userId: user.id, role: "admin", ttlMs: 60_000 });
      const familyId = first.refreshToken.familyId;
      expect((await s.useRefreshToken(first.token)).status).toBe("ok");
      const second = await s.issueRefreshToken({ organizationId: org.id, userId: user.id, role: "admin", familyId, ttlMs: 60_000 });
      // The thief (or the victim) replays the first token.
      const replay = await s.useRefreshToken(first.token);
      expect(replay.status).toBe("reused");
      const next = await s.useRefreshToken(second.token);
      expect(next.status).toBe("revoked");
      expect(next.status !== "unknown" && next.refreshToken.revokeReason).toBe("reuse");
      expect((await s.useRefreshToken(first.token)).status).toBe("reused");
      expect(await codeOf(s.issueRefreshToken({ organizationId: org.id, userId: user.id, role: "admin", familyId, ttlMs: 60_000 }))).toBe(Code.FailedPrecondition);
      // Another sign-in of the same user is not affected.
      const fresh = await s.issueRefreshToken({ organizationId: org.id, userId: user.id, role: "admin", ttlMs: 60_000 });
      expect((await s.useRefreshToken(fresh.token)).status).toBe("ok");
    });

    test("two concurrent uses of one refresh token: exactly one succeeds", async (s) => {
      const { org, user } = await member(s);
      for (let round = 0; round < 3; round++) {
        const issued = await s.issueRefreshToken({ organizationId: org.id, userId: user.id, role: "admin", ttlMs: 60_000 });
        const results = await Promise.all([s.useRefreshToken(issued.token), s.useRefreshToken(issued.token)]);
        expect(results.map((r) => r.status).sort()).toEqual(["ok", "reused"]);
      }
    });

    test("refresh tokens expire; unknown ones are unknown", async (s, o) => {
      const { org, user } = await member(s);
      const short = await s.issueRefreshToken({ organizationId: org.id, userId: user.id, role: "admin", ttlMs: 1_000 });
      const long = await s.issueRefreshToken({ organizationId: org.id, userId: user.id, role: "admin", ttlMs: 10_000 });
      expect(short.refreshToken.expireTime.getTime() - short.refreshToken.createTime.getTime()).toBe(1_000);
      o.advance(1_000);
      expect((await s.useRefreshToken(short.token)).status).toBe("expired");
      expect((await s.useRefreshToken(long.token)).status).toBe("ok");
      expect((await s.useRefreshToken(randomBytes(32).toString("base64url"))).status).toBe("unknown");
      expect((await s.useRefreshToken("")).status).toBe("unknown");
      expect(await codeOf(s.issueRefreshToken({ organizationId: org.id, userId: user.id, role: "admin", ttlMs: 0 }))).toBe(Code.InvalidArgument);
    });

    test("sign-out revokes the token's family; revokeFamily revokes every token of one", async (s) => {
      const { org, user } = await member(s);
      const a = await s.issueRefreshToken({ organizationId: org.id, userId: user.id, role: "admin", ttlMs: 60_000 });
      expect(await s.revokeRefreshToken(a.token)).toBe(true);
      const out = await s.useRefreshToken(a.token);
      expect(out.status).toBe("revoked");
      expect(out.status !== "unknown" && out.refreshToken.revokeReason).toBe("logout");
      expect(await s.revokeRefreshToken("no-such-token")).toBe(false);

      const b = await s.issueRefreshToken({ organizationId: org.id, userId: user.id, role: "admin", ttlMs: 60_000 });
      expect((await s.useRefreshToken(b.token)).status).toBe("ok");
      const b2 = await s.issueRefreshToken({ organizationId: org.id, userId: user.id, role: "admin", familyId: b.refreshToken.familyId, ttlMs: 60_000 });
      expect(await s.revokeFamily(b.refreshToken.familyId, "password changed")).toBe(2);
      expect(await s.revokeFamily(b.refreshToken.familyId, "again")).toBe(0);
      const r = await s.useRefreshToken(b2.token);
      expect(r.status).toBe("revoked");
      expect(r.status !== "unknown" && r.refreshToken.revokeReason).toBe("password changed");
    });

    test("refresh tokens are only for members, and a family only continues for its own membership", async (s) => {
      const { org, user } = await member(s);
      const outsider = await s.createUser({ email: unique("outsider") });
      expect(await codeOf(s.issueRefreshToken({ organizationId: org.id, userId: outsider.id, role: "admin", ttlMs: 60_000 }))).toBe(Code.NotFound);
      await s.addMembership({ organizationId: org.id, userId: outsider.id, role: "viewer" });
      const mine = await s.issueRefreshToken({ organizationId: org.id, userId: user.id, role: "admin", ttlMs: 60_000 });
      const familyId = mine.refreshToken.familyId;
      expect(await codeOf(s.issueRefreshToken({ organizationId: org.id, userId: outsider.id, role: "viewer", familyId, ttlMs: 60_000 }))).toBe(Code.FailedPrecondition);
      expect(await codeOf(s.issueRefreshToken({ organizationId: org.id, userId: user.id, role: "admin", familyId: uuidv7(), ttlMs: 60_000 }))).toBe(Code.FailedPrecondition);
      expect(await codeOf(s.issueRefreshToken({ organizationId: org.id, userId: user.id, role: "root" as never, ttlMs: 60_000 }))).toBe(Code.InvalidArgument);
    });

    test("API keys are shown once, verify, note their use (a minute at a time) and stop working when revoked", async (s, o) => {
      const { org } = await member(s);
      const created = await s.createApiKey({ organizationId: org.id, role: "service", displayName: "CI" });
      expect(created.key).toMatch(apiKeyShape);
      expect(created.key.startsWith(`rfk_${created.apiKey.prefix}_`)).toBe(true);
      expect(created.apiKey).toMatchObject({ organizationId: org.id, role: "service", displayName: "CI" });
      expect(created.apiKey.lastUsedTime).toBeUndefined();
      const secret = created.key.slice(`rfk_${created.apiKey.prefix}_`.length);

      const listed = await s.listApiKeys(org.id);
      expect(listed).toEqual([created.apiKey]);
      expect(listed[0]).not.toHaveProperty("keyHash");
      expect(JSON.stringify(listed)).not.toContain(secret);

      const verified = await s.verifyApiKey(created.key);
      expect(verified?.id).toBe(created.apiKey.id);
      const firstUse = verified?.lastUsedTime;
      expect(firstUse).toBeInstanceOf(Date);
      o.advance(30_000);
      expect((await s.verifyApiKey(created.key))?.lastUsedTime).toEqual(firstUse);
      o.advance(31_000);
      const later = (await s.verifyApiKey(created.key))?.lastUsedTime;
      expect(later!.getTime() - firstUse!.getTime()).toBe(61_000);
      expect((await s.listApiKeys(org.id))[0].lastUsedTime).toEqual(later);

      const flipped = secret[0] === "A" ? `B${secret.slice(1)}` : `A${secret.slice(1)}`;
      expect(await s.verifyApiKey(`rfk_${created.apiKey.prefix}_${flipped}`)).toBeUndefined();
      expect(await s.verifyApiKey(`rfk_zzzzzzzz_${secret}`)).toBeUndefined();
      expect(await s.verifyApiKey(secret)).toBeUndefined();
      expect(await s.verifyApiKey("")).toBeUndefined();

      const second = await s.createApiKey({ organizationId: org.id, role: "viewer", displayName: "dashboards" });
      expect((await s.listApiKeys(org.id)).map((k) => k.id)).toEqual([second.apiKey.id, created.apiKey.id]);
      expect(await s.revokeApiKey(org.id, created.apiKey.id)).toBe(true);
      expect(await s.revokeApiKey(org.id, created.apiKey.id)).toBe(false);
      expect(await s.verifyApiKey(created.key)).toBeUndefined();
      expect((await s.verifyApiKey(second.key))?.id).toBe(second.apiKey.id);
      expect((await s.listApiKeys(org.id)).find((k) => k.id === created.apiKey.id)?.revokedTime).toBeInstanceOf(Date);
      expect(await codeOf(s.createApiKey({ organizationId: uuidv7(), role: "viewer", displayName: "x" }))).toBe(Code.NotFound);
      expect(await codeOf(s.createApiKey({ organizationId: org.id, role: "superuser" as never, displayName: "x" }))).toBe(Code.InvalidArgument);
    });

    test("isolates organizations: another's keys and memberships cannot be read, listed or revoked", async (s) => {
      const a = await member(s);
      const b = await member(s);
      const key = await s.createApiKey({ organizationId: a.org.id, role: "admin", displayName: "a's key" });
      expect(await s.listApiKeys(b.org.id)).toEqual([]);
      expect(await s.revokeApiKey(b.org.id, key.apiKey.id)).toBe(false);
      expect((await s.verifyApiKey(key.key))?.organizationId).toBe(a.org.id);
      expect(await s.getMembership(b.org.id, a.user.id)).toBeUndefined();
      expect(await s.listApiKeys("not-a-uuid")).toEqual([]);
      expect(await s.revokeApiKey("not-a-uuid", key.apiKey.id)).toBe(false);
    });

    test("the database checks roles and email case itself, and keeps no secret in the clear", async (s, o) => {
      if (!o.db) return;
      const conn = o.db.orm.em.getConnection();
      const { org, user } = await member(s);
      const sqlState = (op: Promise<unknown>) => op.then(() => "ok", (e: { code?: string }) => e.code);
      expect(await sqlState(conn.execute(`update identity.memberships set role = 'owner' where organization_id = ?`, [org.id]))).toBe("23514");
      expect(
        await sqlState(conn.execute(`insert into identity.users (id, email, display_name, disabled, create_time) values (?, 'Upper@Example.com', '', false, now())`, [uuidv7()])),
      ).toBe("23514");
      expect(
        await sqlState(conn.execute(`insert into identity.api_keys (id, organization_id, prefix, key_hash, role, create_time) values (?, ?, 'abcdefgh', 'x', 'root', now())`, [uuidv7(), org.id])),
      ).toBe("23514");

      const issued = await s.issueRefreshToken({ organizationId: org.id, userId: user.id, role: "admin", ttlMs: 60_000 });
      const [t] = (await conn.execute(`select token_hash from identity.refresh_tokens where id = ?`, [issued.refreshToken.id])) as { token_hash: string }[];
      expect(t.token_hash).toBe(createHash("sha256").update(issued.token).digest("hex"));
      const key = await s.createApiKey({ organizationId: org.id, role: "admin", displayName: "k" });
      const [k] = (await conn.execute(`select prefix, key_hash from identity.api_keys where id = ?`, [key.apiKey.id])) as { prefix: string; key_hash: string }[];
      const secret = key.key.slice(`rfk_${k.prefix}_`.length);
      expect(k.key_hash).toBe(createHash("sha256").update(secret).digest("hex"));
      const email = unique("hashed");
      await s.createUser({ email, password: "hunter22" });
      const [u] = (await conn.execute(`select password_hash from identity.users where email = ?`, [email.toLowerCase()])) as { password_hash: string }[];
      expect(u.password_hash).toMatch(/^scrypt\$32768\$8\$1\$/);
      expect(u.password_hash).not.toContain("hunter22");
    });
  });
}

identityStoreContract("in-process", async (clock) => ({ store: createMemoryIdentityStore(clock), advance: clock.advance, cleanup: async () => {} }));

const pgOpened = (db: Database, clock: IdentityStoreOptions & { advance(ms: number): void }, done: () => Promise<void>): Opened => ({
  store: createPgIdentityStore(db, clock),
  advance: clock.advance,
  db,
  cleanup: async () => {
    await db.close();
    await done();
  },
});

identityStoreContract("embedded PostgreSQL (PGlite)", async (clock) => {
  const dir = mkdtempSync(join(tmpdir(), "raptorflow-identity-"));
  const db = await openIdentityDatabase({ RAPTORFLOW_DATA_DIR: dir, DATABASE_URL: "" });
  await db.migrate();
  return pgOpened(db, clock, async () => rmSync(dir, { recursive: true, force: true }));
});

identityStoreContract("PostgreSQL server", async (clock) => {
  if (!(await postgresAvailable("IdentityStore contract on PostgreSQL"))) return undefined;
  const scratch = await createScratchDatabase();
  const db = await openIdentityDatabase({ DATABASE_URL: scratch.url });
  await db.migrate();
  return pgOpened(db, clock, () => scratch.drop());
});

const identityTables = ["api_keys", "memberships", "organizations", "refresh_tokens", "users"];
const allMigrations = ["Migration20261126000000_identity"];

const tablesOf = async (db: Database): Promise<string[]> =>
  (
    (await db.orm.em
      .getConnection()
      .execute(`select table_name from information_schema.tables where table_schema = 'identity' order by table_name`)) as { table_name: string }[]
  ).map((r) => r.table_name);

/** upAndDown runs the identity migrations up, down to nothing and up again, checking the tables each time. */
async function upAndDown(db: Database): Promise<void> {
  expect(await db.migrate()).toEqual(allMigrations);
  expect(await db.migrate()).toEqual([]);
  expect(await tablesOf(db)).toEqual([...identityTables, "migrations"].sort());
  expect(await db.rollback(0)).toEqual([...allMigrations].reverse());
  expect(await tablesOf(db)).toEqual(["migrations"]);
  expect(await db.migrate()).toEqual(allMigrations);
  expect(await tablesOf(db)).toEqual([...identityTables, "migrations"].sort());
  // The tables work after the round trip.
  const store = createPgIdentityStore(db);
  const org = await store.createOrganization({ displayName: "after" });
  expect(await store.getOrganization(org.id)).toEqual(org);
}

describe("identity migrations", () => {
  it("run up and down on the embedded PostgreSQL (PGlite)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "raptorflow-identity-db-"));
    const db = await openIdentityDatabase({ RAPTORFLOW_DATA_DIR: dir, DATABASE_URL: "" });
    try {
      expect(db.mode).toBe("embedded");
      await upAndDown(db);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("run up and down on a PostgreSQL server", async (ctx) => {
    if (!(await postgresAvailable("identity migrations on PostgreSQL"))) return ctx.skip();
    const scratch = await createScratchDatabase();
    const db = await openIdentityDatabase({ DATABASE_URL: scratch.url });
    try {
      expect(db.mode).toBe("postgres");
      await upAndDown(db);
    } finally {
      await db.close();
      await scratch.drop();
    }
  });
});

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, type MessageShape } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { uuidv7 } from "uuidv7";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CohortSchema } from "../../gen/raptorflow/v1/cohort_pb.js";
import { createScratchDatabase, postgresAvailable } from "../../test/support/databases.js";
import { openDatabase, type Database } from "../db/database.js";
import { createPgRecordStore } from "./pg-record-store.js";
import { recordEntities, recordKeysMigration, recordsMigration } from "./record-table.js";
import { createMemoryStore, type RecordStore } from "./resource-service.js";

/** openRecords opens a schema of its own holding only a records table, as V1 and V2 each have. */
const openRecords = (env: Record<string, string>) =>
  openDatabase({
    service: "records-test",
    schema: "records_test",
    entities: recordEntities,
    migrations: [
      { name: "records", class: recordsMigration("records_test") },
      { name: "record_keys", class: recordKeysMigration("records_test") },
    ],
    env,
  });

type Cohort = MessageShape<typeof CohortSchema>;
const cohort = (displayName: string): Cohort =>
  create(CohortSchema, { name: `cohorts/${uuidv7()}`, displayName, tags: ["a", "b"], sizeEstimate: 12n, attributes: { source: "test" }, createTime: timestampNow(), updateTime: timestampNow() });

/** recordStoreContract is the behaviour of every RecordStore, run against each implementation. */
function recordStoreContract(name: string, open: () => Promise<{ store: RecordStore<Cohort>; cleanup(): Promise<void> } | undefined>): void {
  describe(`RecordStore contract: ${name}`, () => {
    let opened: { store: RecordStore<Cohort>; cleanup(): Promise<void> } | undefined;
    beforeAll(async () => {
      opened = await open();
    });
    afterAll(async () => {
      await opened?.cleanup();
    });
    const test = (title: string, fn: (s: RecordStore<Cohort>) => Promise<void>) => it(title, async (ctx) => (opened ? fn(opened.store) : ctx.skip()));

    test("put, get, replace and delete a record, as stored", async (s) => {
      const c = cohort("Weekend shoppers");
      await s.put("acme", c);
      expect(await s.get("acme", c.name)).toEqual(c);
      c.displayName = "Saturday shoppers";
      await s.put("acme", c);
      expect((await s.get("acme", c.name))?.displayName).toBe("Saturday shoppers");
      expect(await s.delete("acme", c.name)).toBe(true);
      expect(await s.get("acme", c.name)).toBeUndefined();
      expect(await s.delete("acme", c.name)).toBe(false);
    });

    test("isolates organizations: another's record cannot be read, listed or deleted", async (s) => {
      const c = cohort("Secret segment");
      await s.put("org-a", c);
      expect(await s.get("org-b", c.name)).toBeUndefined();
      expect((await s.list("org-b", 100, "")).records.map((r) => r.name)).not.toContain(c.name);
      expect(await s.delete("org-b", c.name)).toBe(false);
      expect((await s.get("org-a", c.name))?.displayName).toBe("Secret segment");
      expect(await s.get("org-a", "cohorts/not-a-uuid")).toBeUndefined();
    });

    test("create with an idempotency key: a retry gets the first record, another request with the key is ALREADY_EXISTS", async (s) => {
      const org = `idem-${uuidv7().slice(-8)}`;
      const first = cohort("Loyal buyers");
      const made = await s.create(org, first, { key: "k-1", hash: "h-1" });
      expect(made.created).toBe(true);
      const retry = await s.create(org, cohort("Loyal buyers"), { key: "k-1", hash: "h-1" });
      expect(retry).toEqual({ record: first, created: false });
      const other = await s.create(org, cohort("Someone else"), { key: "k-1", hash: "h-2" }).catch((e: unknown) => ConnectError.from(e));
      expect((other as ConnectError).code).toBe(Code.AlreadyExists);
      // Keys are per organization.
      expect((await s.create("another-org", cohort("Loyal buyers"), { key: "k-1", hash: "h-1" })).created).toBe(true);
      expect((await s.list(org, 10, "")).records.map((r) => r.name)).toEqual([first.name]);
    });

    test("two creates with one key at the same time make one record", async (s) => {
      const org = `race-${uuidv7().slice(-8)}`;
      const results = await Promise.all([0, 1, 2].map(() => s.create(org, cohort("Racing"), { key: "same", hash: "same" })));
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(results.map((r) => r.record.name)).size).toBe(1);
      expect((await s.list(org, 10, "")).records).toHaveLength(1);
    });

    test("lists only the records whose field equals the filter, still page by page", async (s) => {
      const org = `filter-${uuidv7().slice(-8)}`;
      const wanted: string[] = [];
      for (let i = 0; i < 4; i++) {
        const c = cohort(i % 2 ? "Night owls" : "Early birds");
        await s.put(org, c);
        if (i % 2) wanted.push(c.name);
      }
      await s.put("someone-else", cohort("Night owls"));
      const p1 = await s.list(org, 1, "", { display_name: "Night owls" });
      const p2 = await s.list(org, 1, p1.nextPageToken, { display_name: "Night owls" });
      expect([...p1.records, ...p2.records].map((r) => r.name)).toEqual([...wanted].reverse());
      expect(p2.nextPageToken).toBe("");
      expect((await s.list(org, 10, "", { display_name: "Nobody" })).records).toEqual([]);
    });

    test("lists newest first, page by page", async (s) => {
      const org = `pages-${uuidv7().slice(-8)}`;
      const made: string[] = [];
      for (let i = 0; i < 5; i++) {
        const c = cohort(`c${i}`);
        made.push(c.name);
        await s.put(org, c);
      }
      const p1 = await s.list(org, 2, "");
      const p2 = await s.list(org, 2, p1.nextPageToken);
      const p3 = await s.list(org, 2, p2.nextPageToken);
      expect([...p1.records, ...p2.records, ...p3.records].map((r) => r.name)).toEqual([...made].reverse());
      expect(p3.nextPageToken).toBe("");
      const bad = await s.list(org, 2, "nonsense").catch((e: unknown) => ConnectError.from(e));
      expect((bad as ConnectError).code).toBe(Code.InvalidArgument);
    });
  });
}

recordStoreContract("in-process", async () => ({ store: createMemoryStore(CohortSchema), cleanup: async () => {} }));

const pgStore = (db: Database) => ({ store: createPgRecordStore(db, CohortSchema, "cohorts"), cleanup: () => db.close() });

recordStoreContract("embedded PostgreSQL (PGlite)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "raptorflow-records-"));
  const db = await openRecords({ RAPTORFLOW_DATA_DIR: dir, DATABASE_URL: "" });
  await db.migrate();
  const { store, cleanup } = pgStore(db);
  return { store, cleanup: async () => (await cleanup(), rmSync(dir, { recursive: true, force: true })) };
});

recordStoreContract("PostgreSQL server", async () => {
  if (!(await postgresAvailable("RecordStore contract on PostgreSQL"))) return undefined;
  const scratch = await createScratchDatabase();
  const db = await openRecords({ DATABASE_URL: scratch.url });
  await db.migrate();
  const { store, cleanup } = pgStore(db);
  return { store, cleanup: async () => (await cleanup(), await scratch.drop()) };
});

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { uuidv7 } from "uuidv7";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { CampaignSchema, CampaignService } from "../../gen/raptorflow/v1/campaign_pb.js";
import { CohortSchema, CohortService } from "../../gen/raptorflow/v1/cohort_pb.js";
import { MetricSchema, MetricService } from "../../gen/raptorflow/v1/metric_pb.js";
import { MoveSchema, MoveService } from "../../gen/raptorflow/v1/move_pb.js";
import { OriginSchema } from "../../gen/raptorflow/v1/origin_pb.js";
import { organizationHeader } from "../../mesh/call-context.js";
import { createScratchDatabase, postgresAvailable } from "../../test/support/databases.js";
import { openDatabase, type Database } from "../db/database.js";
import { createPgRecordStore } from "./pg-record-store.js";
import { recordEntities, recordKeysMigration, recordsMigration } from "./record-table.js";
import { collectionOf, createMemoryStore, createResourceServiceImpl, type RecordStore } from "./resource-service.js";

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

/** StoreOf opens the store of one collection in the backend under test. */
type StoreOf = <S extends DescMessage>(schema: S) => RecordStore<MessageShape<S>>;
/** Opened is a backend under test: its stores, and how to close it. */
type Opened = { storeOf: StoreOf; cleanup(): Promise<void> };

/** recordStoreContract is the behaviour of every RecordStore, run against each implementation. */
function recordStoreContract(name: string, open: () => Promise<Opened | undefined>): void {
  describe(`RecordStore contract: ${name}`, () => {
    let opened: Opened | undefined;
    let cohorts: RecordStore<Cohort>;
    beforeAll(async () => {
      opened = await open();
      if (opened) cohorts = opened.storeOf(CohortSchema);
    });
    afterAll(async () => {
      await opened?.cleanup();
    });
    const test = (title: string, fn: (s: RecordStore<Cohort>) => Promise<void>) => it(title, async (ctx) => (opened ? fn(cohorts) : ctx.skip()));
    const withStores = (title: string, fn: (storeOf: StoreOf) => Promise<void>) => it(title, async (ctx) => (opened ? fn(opened.storeOf) : ctx.skip()));

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

    test("filters by membership of a repeated field and by a nested field", async (s) => {
      const org = `members-${uuidv7().slice(-8)}`;
      const tagged = cohort("Hikers");
      tagged.tags = ["hiking", "camping"];
      tagged.origin = create(OriginSchema, { agent: "agents/cohort_tag_generator", run: "runs/r-1", provider: "offline" });
      const other = cohort("Readers");
      other.tags = ["books"];
      other.origin = create(OriginSchema, { agent: "agents/cohort_builder", run: "runs/r-2" });
      await s.put(org, tagged);
      await s.put(org, other);
      const names = async (where: Record<string, string>) => (await s.list(org, 10, "", where)).records.map((r) => r.name);
      expect(await names({ tags: "camping" })).toEqual([tagged.name]);
      expect(await names({ tags: "camp" })).toEqual([]);
      expect(await names({ "origin.run": "runs/r-2" })).toEqual([other.name]);
      expect(await names({ "origin.run": "runs/r-1", "origin.agent": "agents/cohort_tag_generator", tags: "hiking" })).toEqual([tagged.name]);
      expect(await names({ "origin.run": "runs/r-1", tags: "books" })).toEqual([]);
      await expect(s.list(org, 10, "", { "origin.nope": "x" })).rejects.toThrow(/no field/);
    });

    withStores("Delete with dependants: FAILED_PRECONDITION naming them, unless forced; force detaches repeated and singular references and deletes what is set to be deleted", async (storeOf) => {
      const org = `deps-${uuidv7().slice(-8)}`;
      const [cohortStore, campaignStore, moveStore, metricStore] = [storeOf(CohortSchema), storeOf(CampaignSchema), storeOf(MoveSchema), storeOf(MetricSchema)];
      const transport = createRouterTransport(({ service }) => {
        service(CohortService, createResourceServiceImpl(CohortService, cohortStore, { dependants: [{ schema: CampaignSchema, store: campaignStore, field: "cohorts" }] }));
        service(CampaignService, createResourceServiceImpl(CampaignService, campaignStore, {
          dependants: [
            { schema: MoveSchema, store: moveStore, field: "campaign", onForce: "detach" },
            { schema: MetricSchema, store: metricStore, field: "subject" },
          ],
        }));
        service(MoveService, createResourceServiceImpl(MoveService, moveStore));
        service(MetricService, createResourceServiceImpl(MetricService, metricStore));
      });
      const headers = { [organizationHeader]: org };
      const [co, ca, mo, me] = [createClient(CohortService, transport), createClient(CampaignService, transport), createClient(MoveService, transport), createClient(MetricService, transport)];
      const weekend = await co.createCohort({ cohort: { displayName: "Weekend shoppers" } }, { headers });
      const night = await co.createCohort({ cohort: { displayName: "Night owls" } }, { headers });
      const spring = await ca.createCampaign({ campaign: { displayName: "Spring", cohorts: [weekend.name, night.name] } }, { headers });
      const autumn = await ca.createCampaign({ campaign: { displayName: "Autumn", cohorts: [weekend.name] } }, { headers });

      // A cohort that campaigns target is not deleted without force, and the error says why and what force does.
      const refused = await co.deleteCohort({ name: weekend.name }, { headers }).catch((e: unknown) => ConnectError.from(e));
      expect((refused as ConnectError).code).toBe(Code.FailedPrecondition);
      expect((refused as ConnectError).rawMessage).toContain("campaigns");
      expect((refused as ConnectError).rawMessage).toContain("remove it from those campaigns");
      expect((refused as ConnectError).findDetails(ErrorInfoSchema)[0]).toMatchObject({ reason: "RESOURCE_HAS_DEPENDANTS", metadata: { resource: weekend.name, dependants: "campaigns" } });
      expect(await co.getCohort({ name: weekend.name }, { headers })).toMatchObject({ name: weekend.name });

      // force takes the cohort out of every campaign's list; the campaigns and their other cohorts stay.
      await co.deleteCohort({ name: weekend.name, force: true }, { headers });
      expect((await co.getCohort({ name: weekend.name }, { headers }).catch((e: unknown) => ConnectError.from(e)) as ConnectError).code).toBe(Code.NotFound);
      expect((await ca.getCampaign({ name: spring.name }, { headers })).cohorts).toEqual([night.name]);
      expect((await ca.getCampaign({ name: autumn.name }, { headers })).cohorts).toEqual([]);
      // Nothing refers to the other cohort's neighbour any more; it is deleted plainly once the campaign lets go.
      await ca.updateCampaign({ campaign: { name: spring.name, cohorts: [] }, updateMask: { paths: ["cohorts"] } }, { headers });
      await co.deleteCohort({ name: night.name }, { headers });

      // A campaign with a move (detached by force) and a metric (deleted by force).
      const move = await mo.createMove({ move: { displayName: "Referral push", campaign: autumn.name } }, { headers });
      const metric = await me.createMetric({ metric: { displayName: "ctr", subject: autumn.name, value: 2.5 } }, { headers });
      const kept = await me.createMetric({ metric: { displayName: "ctr", subject: spring.name, value: 1 } }, { headers });
      const both = await ca.deleteCampaign({ name: autumn.name }, { headers }).catch((e: unknown) => ConnectError.from(e));
      expect((both as ConnectError).code).toBe(Code.FailedPrecondition);
      expect((both as ConnectError).rawMessage).toMatch(/moves and metrics.*remove it from those moves and delete those metrics with it/);
      await ca.deleteCampaign({ name: autumn.name, force: true }, { headers });
      const detached = await mo.getMove({ name: move.name }, { headers });
      expect(detached.campaign).toBe("");
      expect(detached.updateTime).toBeDefined();
      expect((await me.getMetric({ name: metric.name }, { headers }).catch((e: unknown) => ConnectError.from(e)) as ConnectError).code).toBe(Code.NotFound);
      expect((await me.getMetric({ name: kept.name }, { headers })).subject).toBe(spring.name);
    });

    withStores("Create ignores output-only fields; Update cannot change them", async (storeOf) => {
      const transport = createRouterTransport(({ service }) => service(CohortService, createResourceServiceImpl(CohortService, storeOf(CohortSchema))));
      const client = createClient(CohortService, transport);
      const made = await client.createCohort({ cohort: { displayName: "Forged", origin: { agent: "agents/icp_builder", provider: "openai" } } });
      expect(made.origin).toBeUndefined();
      const bad = await client.updateCohort({ cohort: { name: made.name, origin: { agent: "agents/x" } }, updateMask: { paths: ["origin"] } }).catch((e: unknown) => ConnectError.from(e));
      expect((bad as ConnectError).code).toBe(Code.InvalidArgument);
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

recordStoreContract("in-process", async () => ({ storeOf: (schema) => createMemoryStore(schema), cleanup: async () => {} }));

const pgStore = (db: Database): Opened => ({ storeOf: (schema) => createPgRecordStore(db, schema, collectionOf(schema)), cleanup: () => db.close() });

recordStoreContract("embedded PostgreSQL (PGlite)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "raptorflow-records-"));
  const db = await openRecords({ RAPTORFLOW_DATA_DIR: dir, DATABASE_URL: "" });
  await db.migrate();
  const { storeOf, cleanup } = pgStore(db);
  return { storeOf, cleanup: async () => (await cleanup(), rmSync(dir, { recursive: true, force: true })) };
});

recordStoreContract("PostgreSQL server", async () => {
  if (!(await postgresAvailable("RecordStore contract on PostgreSQL"))) return undefined;
  const scratch = await createScratchDatabase();
  const db = await openRecords({ DATABASE_URL: scratch.url });
  await db.migrate();
  const { storeOf, cleanup } = pgStore(db);
  return { storeOf, cleanup: async () => (await cleanup(), await scratch.drop()) };
});

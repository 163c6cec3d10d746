import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createScratchDatabase, postgresAvailable } from "../../test/support/databases.js";
import { openDatabase } from "../db/database.js";
import { LocalEmbeddings } from "./local-embeddings.js";
import { createInProcessMemoryBank, createPgMemoryBank, type MemoryBank } from "./memory-bank.js";
import { memoryTableMigration } from "./pg-vector-store.js";

const embeddings = new LocalEmbeddings();


async function openPgBank(env: Record<string, string>, cleanup: () => Promise<void>) {
  const db = await openDatabase({ service: "bank-test", schema: "bank_test", entities: [], migrations: [{ name: "memories", class: memoryTableMigration("bank_test", embeddings.dimensions) }], env });
  await db.migrate();
  const warnings: string[] = [];
  const bank = await createPgMemoryBank({ db, table: "bank_test.memories", embeddings, warn: (m) => warnings.push(m) });
  return { bank, warnings, cleanup: async () => (await db.close(), await cleanup()) };
}

/** memoryBankContract is the behaviour of every MemoryBank, run against each implementation. */
function memoryBankContract(name: string, open: () => Promise<{ bank: MemoryBank; cleanup(): Promise<void> } | undefined>): void {
  describe(`MemoryBank contract: ${name}`, () => {
    let opened: { bank: MemoryBank; cleanup(): Promise<void> } | undefined;
    beforeAll(async () => {
      opened = await open();
    }, 30_000);
    afterAll(async () => {
      await opened?.cleanup();
    });
    const test = (title: string, fn: (b: MemoryBank) => Promise<void>) => it(title, async (ctx) => (opened ? fn(opened.bank) : ctx.skip()));

    test("adds, gets and deletes a memory, as stored", async (b) => {
      const m = await b.add("acme", { kind: "brand", content: "We never use exclamation marks in headlines.", source: "agents/brand_memory", labels: { area: "voice" } });
      expect(m.id).toMatch(/^[0-9a-f-]{36}$/);
      const got = await b.get("acme", m.id);
      expect(got).toMatchObject({ id: m.id, kind: "brand", content: m.content, source: "agents/brand_memory", labels: { area: "voice" } });
      expect(got!.createTime.getTime()).toBeGreaterThan(Date.now() - 60_000);
      expect(await b.delete("acme", m.id)).toBe(true);
      expect(await b.get("acme", m.id)).toBeUndefined();
      expect(await b.delete("acme", m.id)).toBe(false);
      expect(await b.get("acme", "not-a-uuid")).toBeUndefined();
    });

    test("finds the memory closest in meaning first, within the asked kinds", async (b) => {
      const org = `search-${Math.random().toString(36).slice(2)}`;
      await b.add(org, { kind: "brand", content: "Our brand voice is warm, plain and a little playful; no jargon.", source: "user", labels: {} });
      await b.add(org, { kind: "knowledge", content: "Electric cargo bikes sell best to families with two children in cities.", source: "user", labels: {} });
      await b.add(org, { kind: "lesson", content: "Discount emails sent on Sunday evening doubled the click rate of the spring campaign.", source: "runs/x", labels: {} });
      const found = await b.search(org, "which families buy electric cargo bikes", { k: 3 });
      expect(found.map((f) => f.item.kind)[0]).toBe("knowledge");
      expect(found[0].similarity).toBeGreaterThan(found[1].similarity);
      expect(found[0].similarity).toBeLessThanOrEqual(1.000001);
      const onlyLessons = await b.search(org, "which families buy electric cargo bikes", { kinds: ["lesson", "brand"], k: 5 });
      expect(onlyLessons.map((f) => f.item.kind).sort()).toEqual(["brand", "lesson"]);
      expect((await b.search(org, "cargo bikes", { k: 1 })).length).toBe(1);
    });

    test("isolates organizations: another's memory is never read, listed, searched or deleted", async (b) => {
      const secret = await b.add("org-a", { kind: "knowledge", content: "Acquisition target: Northwind Traders, closing in March.", source: "user", labels: {} });
      expect(await b.get("org-b", secret.id)).toBeUndefined();
      expect(await b.delete("org-b", secret.id)).toBe(false);
      expect((await b.list("org-b", { pageSize: 100, pageToken: "" })).items.map((i) => i.id)).not.toContain(secret.id);
      expect((await b.search("org-b", "Acquisition target Northwind Traders", { k: 10 })).map((f) => f.item.id)).not.toContain(secret.id);
      expect((await b.get("org-a", secret.id))?.content).toBe(secret.content);
    });

    test("lists newest first, page by page, optionally one kind", async (b) => {
      const org = `pages-${Math.random().toString(36).slice(2)}`;
      const made: string[] = [];
      for (let i = 0; i < 5; i++) made.push((await b.add(org, { kind: i % 2 ? "lesson" : "brand", content: `memory ${i}`, source: "user", labels: {} })).id);
      const p1 = await b.list(org, { pageSize: 2, pageToken: "" });
      const p2 = await b.list(org, { pageSize: 2, pageToken: p1.nextPageToken });
      const p3 = await b.list(org, { pageSize: 2, pageToken: p2.nextPageToken });
      expect([...p1.items, ...p2.items, ...p3.items].map((i) => i.id)).toEqual([...made].reverse());
      expect(p3.nextPageToken).toBe("");
      expect((await b.list(org, { kind: "lesson", pageSize: 10, pageToken: "" })).items.map((i) => i.id)).toEqual([made[3], made[1]]);
      const bad = await b.list(org, { pageSize: 2, pageToken: "nonsense" }).catch((e: unknown) => ConnectError.from(e));
      expect((bad as ConnectError).code).toBe(Code.InvalidArgument);
    });
  });
}

memoryBankContract("in-process", async () => ({ bank: createInProcessMemoryBank(embeddings), cleanup: async () => {} }));

memoryBankContract("embedded PostgreSQL (PGlite, pgvector)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "raptorflow-bank-"));
  const opened = await openPgBank({ RAPTORFLOW_DATA_DIR: dir, DATABASE_URL: "" }, async () => rmSync(dir, { recursive: true, force: true }));
  // PGlite ships pgvector, so no fallback warning.
  expect(opened.warnings).toEqual([]);
  return opened;
});

memoryBankContract("PostgreSQL server (exact search when it has no pgvector)", async () => {
  if (!(await postgresAvailable("MemoryBank contract on PostgreSQL"))) return undefined;
  const scratch = await createScratchDatabase();
  return openPgBank({ DATABASE_URL: scratch.url }, () => scratch.drop());
});

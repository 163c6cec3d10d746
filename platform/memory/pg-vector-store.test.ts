import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Document } from "@langchain/core/documents";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openOrchestratorDatabase } from "../../services/orchestrator/store/open-store.js";
import { createScratchDatabase, postgresAvailable } from "../../test/support/databases.js";
import type { Database } from "../db/database.js";
import { LocalEmbeddings } from "./local-embeddings.js";
import { PgVectorStore } from "./pg-vector-store.js";

describe("LocalEmbeddings", () => {
  it("is deterministic, unit length, and puts texts that share words closer", async () => {
    const e = new LocalEmbeddings();
    const [a, b, c] = await e.embedDocuments(["email campaign for spring sale", "spring sale email", "quarterly tax filing checklist"]);
    expect(await e.embedQuery("email campaign for spring sale")).toEqual(a);
    expect(Math.hypot(...a)).toBeCloseTo(1, 10);
    const dot = (x: number[], y: number[]) => x.reduce((s, v, i) => s + v * y[i], 0);
    expect(dot(a, b)).toBeGreaterThan(dot(a, c));
  });
});

/** vectorStoreContract is the behaviour of the memory store on one database, pgvector or not. */
function vectorStoreContract(name: string, open: () => Promise<{ db: Database; cleanup(): Promise<void> } | undefined>, expectPgvector: boolean): void {
  describe(`PgVectorStore: ${name}`, () => {
    let opened: { db: Database; cleanup(): Promise<void> } | undefined;
    let store: PgVectorStore | undefined;
    const warnings: string[] = [];
    beforeAll(async () => {
      opened = await open();
      if (!opened) return;
      await opened.db.migrate();
      store = await PgVectorStore.open(new LocalEmbeddings(), { db: opened.db, table: "orchestrator.memories", warn: (m) => warnings.push(m) });
      await store.addDocuments([
        new Document({ pageContent: "Spring sale email campaign for gardening tools", metadata: { organization: "acme", namespace: "runs" } }),
        new Document({ pageContent: "Quarterly tax filing checklist for freelancers", metadata: { organization: "acme", namespace: "runs" } }),
        new Document({ pageContent: "Brand voice: warm, plain, never pushy", metadata: { organization: "acme", namespace: "brand" } }),
        new Document({ pageContent: "Spring sale email campaign for gardening tools", metadata: { organization: "globex", namespace: "runs" } }),
      ]);
    });
    afterAll(async () => {
      await opened?.cleanup();
    });
    const test = (title: string, fn: (s: PgVectorStore) => Promise<void>) => it(title, async (ctx) => (store ? fn(store) : ctx.skip()));

    test(`uses ${expectPgvector ? "pgvector" : "exact search in SQL, with a warning"}`, async (s) => {
      expect(s.usesPgvector).toBe(expectPgvector);
      expect(warnings.length).toBe(expectPgvector ? 0 : 1);
    });

    test("finds the nearest memory of the organization first, with its metadata and distance", async (s) => {
      const hits = await s.similaritySearchWithScore("email campaign for the spring sale", 2, { organization: "acme", namespace: "runs" });
      expect(hits[0][0].pageContent).toBe("Spring sale email campaign for gardening tools");
      expect(hits[0][0].metadata).toMatchObject({ organization: "acme", namespace: "runs" });
      expect(hits[0][1]).toBeLessThan(hits[1][1]);
    });

    test("never returns another organization's memories, and filters by namespace", async (s) => {
      const acme = await s.similaritySearch("spring sale email", 10, { organization: "acme" });
      expect(acme.every((d) => d.metadata.organization === "acme")).toBe(true);
      expect(acme).toHaveLength(3);
      const brand = await s.similaritySearch("voice", 10, { organization: "acme", namespace: "brand" });
      expect(brand.map((d) => d.pageContent)).toEqual(["Brand voice: warm, plain, never pushy"]);
      await expect(s.similaritySearch("x", 1)).rejects.toThrow(/organization/);
    });
  });
}

vectorStoreContract(
  "embedded PostgreSQL (PGlite, which ships pgvector)",
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "raptorflow-memory-"));
    const db = await openOrchestratorDatabase({ RAPTORFLOW_DATA_DIR: dir, DATABASE_URL: "" });
    return { db, cleanup: async () => (await db.close(), rmSync(dir, { recursive: true, force: true })) };
  },
  true,
);

vectorStoreContract(
  "PostgreSQL server without pgvector (Debian's PostgreSQL here)",
  async () => {
    if (!(await postgresAvailable("PgVectorStore on PostgreSQL"))) return undefined;
    const scratch = await createScratchDatabase();
    const db = await openOrchestratorDatabase({ DATABASE_URL: scratch.url });
    const has = (await db.orm.em.getConnection().execute(`select 1 from pg_available_extensions where name = 'vector'`)).length > 0;
    if (has) {
      await db.close();
      await scratch.drop();
      console.warn("\n*** SKIPPED the no-pgvector fallback suite: this PostgreSQL has pgvector ***\n");
      return undefined;
    }
    return { db, cleanup: async () => (await db.close(), await scratch.drop()) };
  },
  false,
);

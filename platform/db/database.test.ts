import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EntityManager } from "@mikro-orm/postgresql";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { createScratchDatabase, postgresAvailable } from "../../test/support/databases.js";
import { openOrchestratorDatabase } from "../../services/orchestrator/store/open-store.js";
import type { Database } from "./database.js";
import { redact, retryOnDroppedConnection } from "./database.js";

const tables = async (db: Database): Promise<string[]> =>
  (
    (await db.orm.em
      .getConnection()
      .execute(`select table_name from information_schema.tables where table_schema = 'orchestrator' order by table_name`)) as { table_name: string }[]
  ).map((r) => r.table_name);

/** upAndDown runs the orchestrator's migrations up, down and up again, checking the tables each time. */
const all = ["Migration20261125000000_runs", "Migration20261125020000_memories", "Migration20261202020000_feedback_target", "Migration20261202120000_named_contexts"];

async function upAndDown(db: Database): Promise<void> {
  expect(await db.migrate()).toEqual(all);
  expect(await db.migrate()).toEqual([]);
  expect(await tables(db)).toEqual(expect.arrayContaining(["feedback", "idempotency_keys", "memories", "run_steps", "runs", "shared_contexts"]));
  expect(await db.rollback(0)).toEqual([...all].reverse());
  expect(await tables(db)).toEqual(["migrations"]);
  expect(await db.migrate()).toEqual(all);
  expect(await db.ping()).toBe(true);
}

describe("migrations", () => {
  it("run up and down on the embedded PostgreSQL (PGlite), and the data survives a reopen", async () => {
    const dir = mkdtempSync(join(tmpdir(), "raptorflow-db-"));
    try {
      let db = await openOrchestratorDatabase({ RAPTORFLOW_DATA_DIR: dir });
      expect(db.mode).toBe("embedded");
      await upAndDown(db);
      await db.orm.em.getConnection().execute(
        `insert into orchestrator.runs (id, organization, state, input, create_time, update_time) values ('01a2147b-0000-7000-8000-000000000001', 'acme', 'STATE_SUCCEEDED', 'kept', now(), now())`,
      );
      await db.close();
      db = await openOrchestratorDatabase({ RAPTORFLOW_DATA_DIR: dir });
      expect(await db.migrate()).toEqual([]);
      const rows = (await db.orm.em.getConnection().execute(`select input from orchestrator.runs`)) as { input: string }[];
      expect(rows.map((r) => r.input)).toEqual(["kept"]);
      await db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("run up and down on a PostgreSQL server", async (ctx) => {
    if (!(await postgresAvailable("migrations on PostgreSQL"))) return ctx.skip();
    const scratch = await createScratchDatabase();
    const db = await openOrchestratorDatabase({ DATABASE_URL: scratch.url });
    try {
      expect(db.mode).toBe("postgres");
      await upAndDown(db);
    } finally {
      await db.close();
      await scratch.drop();
    }
  });
});

describe("an unreachable database", () => {
  it("fails with a message naming the service and the server, password hidden", async () => {
    const err = await openOrchestratorDatabase({ DATABASE_URL: "postgres://app:s3cret@127.0.0.1:1/nowhere" }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^orchestrator: cannot open the database \(postgres:\/\/app:\*\*\*@127\.0\.0\.1:1\/nowhere\)/);
    expect((err as Error).message).not.toContain("s3cret");
  });

  it("redact hides passwords in database URLs", () => {
    expect(redact("postgres://app:s3cret@db:5432/x")).toBe("postgres://app:***@db:5432/x");
    expect(redact("postgres://postgres@127.0.0.1:5432/test")).toBe("postgres://postgres@127.0.0.1:5432/test");
  });
});

describe("a connection PostgreSQL drops inside a transaction", () => {
  it("goes back to the pool: with a pool of one the next query still runs, and the pool closes", async (ctx) => {
    if (!(await postgresAvailable("dropped transaction connection"))) return ctx.skip();
    const scratch = await createScratchDatabase();
    const db = await openOrchestratorDatabase({ DATABASE_URL: scratch.url, DATABASE_POOL_MAX: "1" });
    const admin = new pg.Client({ connectionString: scratch.url });
    await admin.connect();
    try {
      // The transaction's connection is idle between two statements when the server ends it.
      let between!: () => void;
      const paused = new Promise<void>((r) => (between = r));
      let resume!: () => void;
      const resumed = new Promise<void>((r) => (resume = r));
      const tx = (db.orm.em.fork() as EntityManager).transactional(async (em) => {
        await em.execute("select 1");
        between();
        await resumed;
        await em.execute("select 2");
      });
      await paused;
      const killed = await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`);
      expect(killed.rowCount).toBe(1);
      resume();
      await expect(tx).rejects.toThrow(/not queryable|terminat/);
      // Before kysely 0.29.9 the failed rollback kept the dead connection checked out: this waited for a free one and timed out.
      expect(await db.orm.em.fork().getConnection().execute("select 3 as x")).toEqual([{ x: 3 }]);
    } finally {
      await admin.end();
      await db.close();
      await scratch.drop();
    }
  });
});

describe("retryOnDroppedConnection", () => {
  const dropped = () => Object.assign(new Error("Connection terminated unexpectedly"), { code: undefined });
  it("runs an operation once more when its connection broke, and only then", async () => {
    const calls: string[] = [];
    let failNext = 1;
    const store = retryOnDroppedConnection(
      {
        async save(id: string) {
          calls.push(`save ${id}`);
          if (failNext-- > 0) throw dropped();
          return `saved ${id}`;
        },
        async bad() {
          calls.push("bad");
          throw new Error('null value in column "input" violates not-null constraint');
        },
        async close() {
          calls.push("close");
        },
      },
      1,
    );
    expect(await store.save("a")).toBe("saved a");
    expect(calls).toEqual(["save a", "save a"]);
    // Any other error is the caller's at once: a bad statement is not run twice.
    await expect(store.bad()).rejects.toThrow(/not-null/);
    expect(calls.filter((c) => c === "bad")).toHaveLength(1);
    // A database that stays down fails the second try too, and that error is the answer.
    failNext = 2;
    await expect(store.save("b")).rejects.toThrow(/Connection terminated/);
    expect(calls.filter((c) => c === "save b")).toHaveLength(2);
    await store.close();
    expect(calls.at(-1)).toBe("close");
  });
});

import { dataStoreOf, openDatabase, type Database } from "../../../platform/db/database.js";
import { createMemoryRunStore, type RunStore } from "../run-store.js";
import { createPgRunStore } from "./pg-run-store.js";
import { entities, migrations, schemaName } from "./schema.js";

/** openOrchestratorDatabase opens the orchestrator's schema (DATABASE_URL, or the embedded PGlite). */
export function openOrchestratorDatabase(env: Record<string, string | undefined> = process.env): Promise<Database> {
  return openDatabase({ service: "orchestrator", schema: schemaName, entities, migrations, env });
}

/** OpenedStore is the run store and, when it is a database, the database for health checks. */
export interface OpenedStore {
  /** store keeps runs. */
  readonly store: RunStore;
  /** db is the database behind the store; undefined for the memory store. */
  readonly db?: Database;
}

/**
 * openRunStore gives the orchestrator its run store: PostgreSQL through
 * MikroORM (DATABASE_URL, or the embedded PGlite in RAPTORFLOW_DATA_DIR),
 * migrated at start-up unless DATABASE_MIGRATE_ON_START=false; or, with
 * DATA_STORE=memory, the in-process store. Runs a crash left PENDING or RUNNING
 * are marked FAILED: all of them with the embedded database (one process owns
 * it), those untouched for twice the longest deadline with a shared server.
 */
export async function openRunStore(env: Record<string, string | undefined>, deadlineMs: number): Promise<OpenedStore> {
  if (dataStoreOf(env) === "memory") return { store: createMemoryRunStore() };
  const db = await openOrchestratorDatabase(env);
  try {
    if (env.DATABASE_MIGRATE_ON_START !== "false") await db.migrate();
    const store = createPgRunStore(db);
    const before = db.mode === "embedded" ? new Date() : new Date(Date.now() - 2 * deadlineMs);
    await store.failInterrupted(before, "interrupted: the orchestrator stopped while the run was in progress");
    return { store, db };
  } catch (e) {
    await db.close();
    throw e;
  }
}

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createScratchDatabase, postgresAvailable } from "../../test/support/databases.js";
import { runStoreContract } from "./run-store.contract.js";
import { createMemoryRunStore } from "./run-store.js";
import { createPgRunStore } from "./store/pg-run-store.js";
import { openOrchestratorDatabase } from "./store/open-store.js";

runStoreContract("in-process", async () => ({ store: createMemoryRunStore(), cleanup: async () => {} }));

runStoreContract("embedded PostgreSQL (PGlite)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "raptorflow-runstore-"));
  const db = await openOrchestratorDatabase({ RAPTORFLOW_DATA_DIR: dir });
  await db.migrate();
  return {
    store: createPgRunStore(db),
    cleanup: async () => {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

runStoreContract("PostgreSQL server", async () => {
  if (!(await postgresAvailable("RunStore contract on PostgreSQL"))) return undefined;
  const scratch = await createScratchDatabase();
  const db = await openOrchestratorDatabase({ DATABASE_URL: scratch.url });
  await db.migrate();
  return {
    store: createPgRunStore(db),
    cleanup: async () => {
      await db.close();
      await scratch.drop();
    },
  };
});

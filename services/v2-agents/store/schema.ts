import { memoryTableMigration } from "../../../platform/memory/pg-vector-store.js";
import { recordKeysMigration, recordsMigration } from "../../../platform/resources/record-table.js";

/** schemaName is V2's own PostgreSQL schema. */
export const schemaName = "v2";

/** memoryDimensions is the length of V2's memory embeddings (LocalEmbeddings' default). */
export const memoryDimensions = 256;

/** memoryTable is where V2 keeps brand memory, preferences, knowledge and lessons. */
export const memoryTable = `${schemaName}.memories`;

/** migrations are V2's versioned migrations, oldest first: its records (campaigns, assets), its memories, the idempotency keys of creates. */
export const migrations = [
  { name: "Migration20261202000000_records", class: recordsMigration(schemaName) },
  { name: "Migration20261202000100_memories", class: memoryTableMigration(schemaName, memoryDimensions) },
  { name: "Migration20261202000200_record_keys", class: recordKeysMigration(schemaName) },
];

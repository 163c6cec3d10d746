import { recordKeysMigration, recordsMigration } from "../../../platform/resources/record-table.js";

/** schemaName is V1's own PostgreSQL schema. */
export const schemaName = "v1";

/** migrations are V1's versioned migrations, oldest first. */
export const migrations = [
  { name: "Migration20261125010000_records", class: recordsMigration(schemaName) },
  { name: "Migration20261202010000_record_keys", class: recordKeysMigration(schemaName) },
];

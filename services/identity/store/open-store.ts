import { openDatabase, type Database, type DatabaseOptions } from "../../../platform/db/database.js";
import { entities, migrations, schemaName } from "./schema.js";

/** identityDatabase says where the identity service keeps its data: its own `identity` schema. */
export function identityDatabase(env: Record<string, string | undefined> = process.env): DatabaseOptions {
  return { service: "identity", schema: schemaName, entities, migrations, env };
}

/** openIdentityDatabase opens the identity schema (DATABASE_URL, or the embedded PGlite). */
export function openIdentityDatabase(env: Record<string, string | undefined> = process.env): Promise<Database> {
  return openDatabase(identityDatabase(env));
}

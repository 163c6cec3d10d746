import { IntelligenceService } from "../../gen/raptorflow/v1/intelligence_pb.js";
import { buildAgentServer } from "../../platform/agents/agent-server.js";
import { serverAuthFromEnv } from "../../platform/auth/auth-from-env.js";
import { providerFromEnv } from "../../platform/llm/provider-from-env.js";
import { openDatabase, openServiceDatabase, type Database, type DatabaseOptions } from "../../platform/db/database.js";
import { withDatabase } from "../../platform/db/health.js";
import { recordEntities } from "../../platform/resources/record-table.js";
import { finishV1Answer } from "./computed-fields.js";
import { createIntelligenceImpl } from "./intelligence-service.js";
import { createV1ResultHooks } from "./result-records.js";
import { openV1Stores, v1ResourceServices } from "./v1-resources.js";
import { migrations, schemaName } from "./store/schema.js";

/** v1Database says where V1 keeps its records: its own schema. */
const v1Database = (env: Record<string, string | undefined>): DatabaseOptions => ({ service: "v1-agents", schema: schemaName, entities: recordEntities, migrations, env });

/** openV1Database opens V1's schema (DATABASE_URL, or the embedded PGlite). */
export function openV1Database(env: Record<string, string | undefined> = process.env): Promise<Database> {
  return openDatabase(v1Database(env));
}

/**
 * build assembles the V1 business-intelligence agent service, the V1
 * resources (the legacy ones and those the agents' results become) and the
 * actions it owns. Every successful agent call keeps its answer as records
 * of the caller's organization, its numbers computed by the tools; the
 * records live in V1's PostgreSQL schema (migrated at start-up unless
 * DATABASE_MIGRATE_ON_START=false), or in the process with DATA_STORE=memory.
 */
export async function build(env: Record<string, string | undefined> = process.env): Promise<ReturnType<typeof buildAgentServer>> {
  // Configuration errors first: a bad LLM_PROVIDER fails before the database opens.
  const provider = providerFromEnv(env);
  const auth = serverAuthFromEnv(env);
  const db = await openServiceDatabase(v1Database(env));
  const stores = openV1Stores(db);
  const server = buildAgentServer({
    catalogDir: import.meta.dirname,
    provider,
    auth,
    hooks: createV1ResultHooks(stores, finishV1Answer),
    services: ({ agents }) => [...v1ResourceServices(stores), { service: IntelligenceService, impl: createIntelligenceImpl(agents) }],
  });
  return withDatabase(server, db);
}

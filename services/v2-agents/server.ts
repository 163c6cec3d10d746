import { AssetSchema, AssetService } from "../../gen/raptorflow/v2/asset_pb.js";
import { CampaignSchema, CampaignService } from "../../gen/raptorflow/v2/campaign_pb.js";
import { MemoryService } from "../../gen/raptorflow/v2/memory_pb.js";
import { createAgentMemory } from "../../platform/agents/agent-memory.js";
import { buildAgentServer } from "../../platform/agents/agent-server.js";
import { serverAuthFromEnv } from "../../platform/auth/auth-from-env.js";
import { providerFromEnv } from "../../platform/llm/provider-from-env.js";
import { openDatabase, openServiceDatabase, type Database, type DatabaseOptions } from "../../platform/db/database.js";
import { withDatabase } from "../../platform/db/health.js";
import { embeddingsFromEnv } from "../../platform/memory/embeddings-from-env.js";
import { createInProcessMemoryBank, createPgMemoryBank } from "../../platform/memory/memory-bank.js";
import { openRecordStore } from "../../platform/resources/pg-record-store.js";
import { recordEntities } from "../../platform/resources/record-table.js";
import { createResourceServiceImpl } from "../../platform/resources/resource-service.js";
import { createMemoryServiceImpl } from "./memory-service.js";
import { memoryDimensions, memoryTable, migrations, schemaName } from "./store/schema.js";

/** v2Database says where V2 keeps its campaigns, assets and memories: its own schema. */
const v2Database = (env: Record<string, string | undefined>): DatabaseOptions => ({ service: "v2-agents", schema: schemaName, entities: recordEntities, migrations, env });

/** openV2Database opens V2's schema (DATABASE_URL, or the embedded PGlite). */
export function openV2Database(env: Record<string, string | undefined> = process.env): Promise<Database> {
  return openDatabase(v2Database(env));
}

/**
 * build assembles the V2 marketing-automation agent service (54 agents in 9
 * departments, prompts as files) and the V2 records it owns: campaigns,
 * their assets, and the organization's memories, searched by meaning. They
 * live in V2's PostgreSQL schema (migrated at start-up unless
 * DATABASE_MIGRATE_ON_START=false), or in the process with DATA_STORE=memory.
 */
export async function build(env: Record<string, string | undefined> = process.env): Promise<ReturnType<typeof buildAgentServer>> {
  // Configuration errors first: a bad LLM_PROVIDER fails before the database opens.
  const provider = providerFromEnv(env);
  const auth = serverAuthFromEnv(env);
  const embeddings = embeddingsFromEnv(memoryDimensions, env);
  const db = await openServiceDatabase(v2Database(env));
  try {
    const bank = db ? await createPgMemoryBank({ db, table: memoryTable, embeddings }) : createInProcessMemoryBank(embeddings);
    const campaigns = openRecordStore(db, CampaignSchema);
    const assets = openRecordStore(db, AssetSchema);
    const server = buildAgentServer({
      catalogDir: import.meta.dirname,
      provider,
      auth,
      memory: createAgentMemory(bank),
      services: () => [
        { service: CampaignService, impl: createResourceServiceImpl(CampaignService, campaigns, { dependants: [{ schema: AssetSchema, store: assets, field: "campaign" }] }) },
        { service: AssetService, impl: createResourceServiceImpl(AssetService, assets) },
        { service: MemoryService, impl: createMemoryServiceImpl(bank) },
      ],
    });
    return withDatabase(server, db);
  } catch (e) {
    await db?.close();
    throw e;
  }
}

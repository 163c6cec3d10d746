import type { DescMessage, DescService } from "@bufbuild/protobuf";
import { AssetSchema, AssetService } from "../../gen/raptorflow/v1/asset_pb.js";
import { CampaignSchema, CampaignService } from "../../gen/raptorflow/v1/campaign_pb.js";
import { CohortSchema, CohortService } from "../../gen/raptorflow/v1/cohort_pb.js";
import { IcpSchema, IcpService } from "../../gen/raptorflow/v1/icp_pb.js";
import { IntelligenceService } from "../../gen/raptorflow/v1/intelligence_pb.js";
import { MetricSchema, MetricService } from "../../gen/raptorflow/v1/metric_pb.js";
import { MoveSchema, MoveService } from "../../gen/raptorflow/v1/move_pb.js";
import { buildAgentServer } from "../../platform/agents/agent-server.js";
import { providerFromEnv } from "../../platform/llm/provider-from-env.js";
import { openDatabase, openServiceDatabase, type Database, type DatabaseOptions } from "../../platform/db/database.js";
import { withDatabase } from "../../platform/db/health.js";
import { createIntelligenceImpl } from "./intelligence-service.js";
import { createPgRecordStore } from "../../platform/resources/pg-record-store.js";
import { recordEntities } from "../../platform/resources/record-table.js";
import { collectionOf, createMemoryStore, createResourceServiceImpl } from "../../platform/resources/resource-service.js";
import { migrations, schemaName } from "./store/schema.js";

/** resources are the legacy V1 resource services and the record each manages. */
const resources: readonly (readonly [DescService, DescMessage])[] = [
  [IcpService, IcpSchema],
  [CohortService, CohortSchema],
  [CampaignService, CampaignSchema],
  [MoveService, MoveSchema],
  [MetricService, MetricSchema],
  [AssetService, AssetSchema],
];

/** v1Database says where V1 keeps its records: its own schema. */
const v1Database = (env: Record<string, string | undefined>): DatabaseOptions => ({ service: "v1-agents", schema: schemaName, entities: recordEntities, migrations, env });

/** openV1Database opens V1's schema (DATABASE_URL, or the embedded PGlite). */
export function openV1Database(env: Record<string, string | undefined> = process.env): Promise<Database> {
  return openDatabase(v1Database(env));
}

/**
 * build assembles the V1 business-intelligence agent service and the legacy
 * V1 resources and actions it owns; the records live in V1's PostgreSQL
 * schema (migrated at start-up unless DATABASE_MIGRATE_ON_START=false), or in
 * the process with DATA_STORE=memory.
 */
export async function build(env: Record<string, string | undefined> = process.env): Promise<ReturnType<typeof buildAgentServer>> {
  // Configuration errors first: a bad LLM_PROVIDER fails before the database opens.
  const provider = providerFromEnv(env);
  const db = await openServiceDatabase(v1Database(env));
  const server = buildAgentServer({
    catalogDir: import.meta.dirname,
    provider,
    services: ({ catalog, provider }) => [
      ...resources.map(([service, schema]) => ({
        service,
        impl: createResourceServiceImpl(service, db ? createPgRecordStore(db, schema, collectionOf(schema)) : createMemoryStore(schema)),
      })),
      { service: IntelligenceService, impl: createIntelligenceImpl(catalog, provider) },
    ],
  });
  return withDatabase(server, db);
}

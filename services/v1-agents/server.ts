import type { DescMessage, DescService } from "@bufbuild/protobuf";
import { AssetSchema, AssetService } from "../../gen/raptorflow/v1/asset_pb.js";
import { CampaignSchema, CampaignService } from "../../gen/raptorflow/v1/campaign_pb.js";
import { CohortSchema, CohortService } from "../../gen/raptorflow/v1/cohort_pb.js";
import { IcpSchema, IcpService } from "../../gen/raptorflow/v1/icp_pb.js";
import { IntelligenceService } from "../../gen/raptorflow/v1/intelligence_pb.js";
import { MetricSchema, MetricService } from "../../gen/raptorflow/v1/metric_pb.js";
import { MoveSchema, MoveService } from "../../gen/raptorflow/v1/move_pb.js";
import { buildAgentServer } from "../../platform/agents/agent-server.js";
import { dataStoreOf, openDatabase, type Database } from "../../platform/db/database.js";
import { healthFollowsDatabase } from "../../platform/db/health.js";
import { createIntelligenceImpl } from "./intelligence-service.js";
import { createPgRecordStore } from "../../platform/resources/pg-record-store.js";
import { RecordEntity } from "../../platform/resources/record-table.js";
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

/** openV1Database opens V1's schema (DATABASE_URL, or the embedded PGlite). */
export function openV1Database(env: Record<string, string | undefined> = process.env): Promise<Database> {
  return openDatabase({ service: "v1-agents", schema: schemaName, entities: [RecordEntity], migrations, env });
}

/**
 * build assembles the V1 business-intelligence agent service and the legacy
 * V1 resources and actions it owns; the records live in V1's PostgreSQL
 * schema (migrated at start-up unless DATABASE_MIGRATE_ON_START=false), or in
 * the process with DATA_STORE=memory.
 */
export async function build(env: Record<string, string | undefined> = process.env): Promise<ReturnType<typeof buildAgentServer>> {
  let db: Database | undefined;
  if (dataStoreOf(env) === "postgres") {
    db = await openV1Database(env);
    if (env.DATABASE_MIGRATE_ON_START !== "false") await db.migrate();
  }
  const server = buildAgentServer({
    catalogDir: import.meta.dirname,
    services: ({ catalog, provider }) => [
      ...resources.map(([service, schema]) => ({
        service,
        impl: createResourceServiceImpl(service, db ? createPgRecordStore(db, schema, collectionOf(schema)) : createMemoryStore(schema)),
      })),
      { service: IntelligenceService, impl: createIntelligenceImpl(catalog, provider) },
    ],
  });
  const health = healthFollowsDatabase(server, db);
  return {
    ...server,
    setServing: health.setServing,
    async close() {
      health.stop();
      await server.close();
      await db?.close();
    },
  };
}

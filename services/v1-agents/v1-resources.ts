import type { DescMessage, DescService, MessageShape } from "@bufbuild/protobuf";
import { AssetSchema, AssetService } from "../../gen/raptorflow/v1/asset_pb.js";
import { CampaignSchema, CampaignService } from "../../gen/raptorflow/v1/campaign_pb.js";
import { CohortSchema, CohortService } from "../../gen/raptorflow/v1/cohort_pb.js";
import { CompetitorSurfaceSchema, CompetitorSurfaceService } from "../../gen/raptorflow/v1/competitor_surface_pb.js";
import { IcpSchema, IcpService } from "../../gen/raptorflow/v1/icp_pb.js";
import { InsightSchema, InsightService } from "../../gen/raptorflow/v1/insight_pb.js";
import { JtbdMapSchema, JtbdMapService } from "../../gen/raptorflow/v1/jtbd_map_pb.js";
import { MetricSchema, MetricService } from "../../gen/raptorflow/v1/metric_pb.js";
import { MonetizationModelSchema, MonetizationModelService } from "../../gen/raptorflow/v1/monetization_model_pb.js";
import { MoveSchema, MoveService } from "../../gen/raptorflow/v1/move_pb.js";
import { PlanSchema, PlanService } from "../../gen/raptorflow/v1/plan_pb.js";
import { PositioningSchema, PositioningService } from "../../gen/raptorflow/v1/positioning_pb.js";
import { StrategyProfileSchema, StrategyProfileService } from "../../gen/raptorflow/v1/strategy_profile_pb.js";
import type { ServiceRegistration } from "../../mesh/grpc-server.js";
import type { Database } from "../../platform/db/database.js";
import { openRecordStore } from "../../platform/resources/pg-record-store.js";
import { collectionOf, createResourceServiceImpl, type Dependant, type RecordStore } from "../../platform/resources/resource-service.js";

/**
 * v1Resources are V1's resource services and the record each manages, by
 * collection: the legacy ones (`/api/...` and `/v1/...`) and the ones the V1
 * agents' results became (`/v1/...` only).
 */
export const v1Resources = {
  icps: [IcpService, IcpSchema],
  cohorts: [CohortService, CohortSchema],
  campaigns: [CampaignService, CampaignSchema],
  moves: [MoveService, MoveSchema],
  metrics: [MetricService, MetricSchema],
  assets: [AssetService, AssetSchema],
  competitorSurfaces: [CompetitorSurfaceService, CompetitorSurfaceSchema],
  strategyProfiles: [StrategyProfileService, StrategyProfileSchema],
  positionings: [PositioningService, PositioningSchema],
  jtbdMaps: [JtbdMapService, JtbdMapSchema],
  monetizationModels: [MonetizationModelService, MonetizationModelSchema],
  plans: [PlanService, PlanSchema],
  insights: [InsightService, InsightSchema],
} as const satisfies Record<string, readonly [DescService, DescMessage]>;

/** V1Collection names one of V1's collections. */
export type V1Collection = keyof typeof v1Resources;

/** V1Stores are the stores of V1's collections, typed by their records. */
export type V1Stores = { readonly [C in V1Collection]: RecordStore<MessageShape<(typeof v1Resources)[C][1]>> };

/**
 * openV1Stores opens a store per V1 collection: in V1's PostgreSQL schema
 * (one `records` table for all of them), or in the process without a
 * database (DATA_STORE=memory, tests).
 */
export function openV1Stores(db: Database | undefined): V1Stores {
  const entries = Object.entries(v1Resources).map(([collection, [, schema]]) => {
    if (collectionOf(schema) !== collection) throw new Error(`${schema.typeName} is not the ${collection} collection`);
    return [collection, openRecordStore(db, schema)];
  });
  return Object.fromEntries(entries) as unknown as V1Stores;
}

type AnyStore = RecordStore<MessageShape<DescMessage>>;

/**
 * v1Dependants says which records refer to which, and what a forced Delete
 * does to them. References are kept but emptied (`detach`): a cohort
 * outlives its ICP, a campaign the cohort it no longer targets, a move its
 * campaign or plan — they are business records in their own right, and
 * deleting them as a side effect would be a surprise. Metrics are the
 * exception: a measurement of a deleted campaign or move means nothing, so
 * they are deleted with it.
 */
export function v1Dependants(stores: V1Stores): Readonly<Partial<Record<V1Collection, readonly Dependant[]>>> {
  const s = stores as unknown as Record<V1Collection, AnyStore>;
  return {
    icps: [{ schema: CohortSchema, store: s.cohorts, field: "icp", onForce: "detach" }],
    cohorts: [{ schema: CampaignSchema, store: s.campaigns, field: "cohorts", onForce: "detach" }],
    campaigns: [
      { schema: MoveSchema, store: s.moves, field: "campaign", onForce: "detach" },
      { schema: AssetSchema, store: s.assets, field: "campaign", onForce: "detach" },
      { schema: MetricSchema, store: s.metrics, field: "subject", onForce: "delete" },
    ],
    moves: [{ schema: MetricSchema, store: s.metrics, field: "subject", onForce: "delete" }],
    plans: [{ schema: MoveSchema, store: s.moves, field: "plan", onForce: "detach" }],
  };
}

/** v1ResourceServices serves every V1 collection with the one descriptor-driven implementation of the standard methods. */
export function v1ResourceServices(stores: V1Stores): ServiceRegistration[] {
  const dependants = v1Dependants(stores);
  return (Object.entries(v1Resources) as [V1Collection, readonly [DescService, DescMessage]][]).map(([collection, [service]]) => ({
    service,
    impl: createResourceServiceImpl(service, (stores as unknown as Record<V1Collection, AnyStore>)[collection], { dependants: dependants[collection] }),
  }));
}

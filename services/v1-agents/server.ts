import { AssetSchema, AssetService } from "../../gen/raptorflow/v1/asset_pb.js";
import { CampaignSchema, CampaignService } from "../../gen/raptorflow/v1/campaign_pb.js";
import { CohortSchema, CohortService } from "../../gen/raptorflow/v1/cohort_pb.js";
import { IcpSchema, IcpService } from "../../gen/raptorflow/v1/icp_pb.js";
import { IntelligenceService } from "../../gen/raptorflow/v1/intelligence_pb.js";
import { MetricSchema, MetricService } from "../../gen/raptorflow/v1/metric_pb.js";
import { MoveSchema, MoveService } from "../../gen/raptorflow/v1/move_pb.js";
import type { DescMessage, DescService } from "@bufbuild/protobuf";
import { buildAgentServer } from "../../platform/agents/agent-server.js";
import { createIntelligenceImpl } from "./intelligence-service.js";
import { createMemoryStore, createResourceServiceImpl } from "./resource-service.js";

/** resources are the legacy V1 resource services and the record each manages. */
const resources: readonly (readonly [DescService, DescMessage])[] = [
  [IcpService, IcpSchema],
  [CohortService, CohortSchema],
  [CampaignService, CampaignSchema],
  [MoveService, MoveSchema],
  [MetricService, MetricSchema],
  [AssetService, AssetSchema],
];

/** build assembles the V1 business-intelligence agent service and the legacy V1 resources and actions it owns. */
export function build(): ReturnType<typeof buildAgentServer> {
  return buildAgentServer({
    catalogDir: import.meta.dirname,
    services: ({ catalog, provider }) => [
      ...resources.map(([service, schema]) => ({ service, impl: createResourceServiceImpl(service, createMemoryStore(schema)) })),
      { service: IntelligenceService, impl: createIntelligenceImpl(catalog, provider) },
    ],
  });
}

import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  AgentSchema,
  AgentService,
  AgentSystem,
  GetAgentRequestSchema,
  ModelTier,
  type Agent,
  type GetAgentRequest,
} from "../gen/raptorflow/agent/v1/agent_pb.js";

// A small, realistic catalog entry: about 200 bytes on the wire.
const template: Agent = create(AgentSchema, {
  name: "agents/icp_builder",
  system: AgentSystem.V1,
  department: "market_intelligence",
  displayName: "ICP builder",
  description: "Builds an ideal customer profile from the company's market and customers.",
  defaultModelTier: ModelTier.CAPABLE,
  promptVersion: "2025-01-01",
  tools: ["web_search", "firmographics"],
  inputs: ["company", "market"],
  outputs: ["icp", "segments"],
});

/**
 * benchAgentService is the one handler every benchmark case serves, written
 * once in Connect-ES's `ServiceImpl` shape: `GetAgent` answers a small Agent
 * message without any I/O, so the benchmark measures the RPC stack only.
 */
export const benchAgentService: Partial<ServiceImpl<typeof AgentService>> = {
  getAgent(req) {
    return { ...template, name: req.name };
  },
};

/**
 * benchRequest is the request every client sends; it passes the contract's
 * protovalidate rules (`name` matches `^agents/[a-z][a-z0-9_]{0,63}$`).
 */
export const benchRequest: GetAgentRequest = create(GetAgentRequestSchema, { name: "agents/icp_builder" });

/** benchMethod is the method under test, `raptorflow.agent.v1.AgentService/GetAgent`. */
export const benchMethod = AgentService.method.getAgent;

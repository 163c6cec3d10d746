import { IcpService } from "../../gen/raptorflow/v1/icp_pb.js";
import { buildAgentServer } from "../../platform/agents/agent-server.js";
import { createIcpServiceImpl, createMemoryIcpStore } from "./icp-service.js";

/** build assembles the V1 business-intelligence agent service and the legacy V1 resources it owns. */
export function build(): ReturnType<typeof buildAgentServer> {
  return buildAgentServer({
    catalogDir: import.meta.dirname,
    services: [{ service: IcpService, impl: createIcpServiceImpl(createMemoryIcpStore()) }],
  });
}

import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { AgentResultSchema, RunAgentRequestSchema, type AgentResult, type AgentService, type RunAgentRequest } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import type { IntelligenceService } from "../../gen/raptorflow/v1/intelligence_pb.js";

/**
 * createIntelligenceImpl implements the V1 actions that run agents rather
 * than store records: EnrichCompany (company_enrich) and ScanRadar
 * (trend_scraper, then competitor_surface with the trends as shared context).
 * They run the agents through the V1 agent service itself, in process, so an
 * action's agents behave as any RunAgent call does: tools, the result cache,
 * and each result kept as records of the caller's organization.
 */
export function createIntelligenceImpl(agents: Pick<ServiceImpl<typeof AgentService>, "runAgent">): ServiceImpl<typeof IntelligenceService> {
  const run = async (req: Omit<RunAgentRequest, "$typeName">, ctx: HandlerContext): Promise<AgentResult> =>
    create(AgentResultSchema, await agents.runAgent(create(RunAgentRequestSchema, req), ctx));
  return {
    async enrichCompany(req, ctx) {
      const result = await run(
        {
          name: "agents/company_enrich",
          input: `Enrich the company at ${req.domain}${req.companyName ? ` (${req.companyName})` : ""}.`,
          parameters: { company_name: req.companyName || req.domain, domain: req.domain, ...(req.sources.length ? { website_text: req.sources.join("\n\n") } : {}) },
          context: {},
          run: "",
          modelTier: 0,
        },
        ctx,
      );
      return { domain: req.domain, profile: result.output, result };
    },
    async scanRadar(req, ctx) {
      const trends = await run({ name: "agents/trend_scraper", input: `Scan the trends around: ${req.topic}`, parameters: { industry: req.topic }, context: {}, run: "", modelTier: 0 }, ctx);
      const competitors = await run(
        {
          name: "agents/competitor_surface",
          input: `Map the competitors around: ${req.topic}${req.competitors.length ? ` (watch ${req.competitors.join(", ")})` : ""}`,
          parameters: { market: req.topic, known_competitors: req.competitors },
          context: { trend_scraper: trends.output ?? {} },
          run: "",
          modelTier: 0,
        },
        ctx,
      );
      return { topic: req.topic, trends: trends.output, competitors: competitors.output, results: [trends, competitors] };
    },
  };
}

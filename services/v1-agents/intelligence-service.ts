import type { ServiceImpl } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import type { IntelligenceService } from "../../gen/raptorflow/v1/intelligence_pb.js";
import { runAgentResult } from "../../platform/agents/agent-service.js";
import type { AgentDefinition, Catalog } from "../../platform/agents/catalog.js";
import type { LlmProvider } from "../../platform/llm/llm-provider.js";

/**
 * createIntelligenceImpl implements the V1 actions that run agents rather
 * than store records: EnrichCompany (company_enrich) and ScanRadar
 * (trend_scraper, then competitor_surface with the trends as shared context).
 */
export function createIntelligenceImpl(catalog: Catalog, provider: LlmProvider): ServiceImpl<typeof IntelligenceService> {
  const agent = (id: string): AgentDefinition => {
    const a = catalog.get(id);
    if (!a) throw new ConnectError(`the V1 catalog has no ${id} agent`, Code.FailedPrecondition);
    return a;
  };
  return {
    async enrichCompany(req, ctx) {
      const result = await runAgentResult(provider, agent("company_enrich"), {
        input: `Enrich the company at ${req.domain}${req.companyName ? ` (${req.companyName})` : ""}.`,
        parameters: { company: req.companyName || req.domain, domain: req.domain, sources: req.sources },
        context: {},
        signal: ctx.signal,
      });
      return { domain: req.domain, profile: result.output, result };
    },
    async scanRadar(req, ctx) {
      const parameters = { topic: req.topic, competitors: req.competitors };
      const trends = await runAgentResult(provider, agent("trend_scraper"), {
        input: `Scan the trends around: ${req.topic}`,
        parameters,
        context: {},
        signal: ctx.signal,
      });
      const competitors = await runAgentResult(provider, agent("competitor_surface"), {
        input: `Map the competitors around: ${req.topic}${req.competitors.length ? ` (watch ${req.competitors.join(", ")})` : ""}`,
        parameters,
        context: { trend_scraper: trends.output ?? {} },
        signal: ctx.signal,
      });
      return { topic: req.topic, trends: trends.output, competitors: competitors.output, results: [trends, competitors] };
    },
  };
}

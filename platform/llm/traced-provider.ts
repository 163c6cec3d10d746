import { context, SpanKind, SpanStatusCode, trace, type Attributes, type Span } from "@opentelemetry/api";
import { ConnectError } from "@connectrpc/connect";
import { codeName } from "../../mesh/call-stats.js";
import { durationBuckets, instruments, tracer } from "../../mesh/telemetry.js";
import type { LlmChunk, LlmProvider, LlmRequest, LlmResponse } from "./llm-provider.js";
import { createPriceTable, type PriceTable } from "./prices.js";

const llmInstruments = () =>
  instruments("llm", (meter) => ({
    duration: meter.createHistogram("gen_ai.client.operation.duration", {
      unit: "s",
      description: "Duration of model calls (tool rounds included) by provider, model and error.",
      advice: { explicitBucketBoundaries: durationBuckets },
    }),
    tokens: meter.createCounter("raptorflow.llm.tokens", {
      unit: "{token}",
      description: "Tokens sent to (input) and produced by (output) the models, by provider and model.",
    }),
    cost: meter.createCounter("raptorflow.llm.cost", {
      unit: "USD",
      description: "What the model calls cost, in US dollars at the price table's prices, by provider and model.",
    }),
  }));

/** recordResponse puts a finished call's model, usage and cost on its span and in the model metrics. */
function recordResponse(span: Span, provider: LlmProvider, res: LlmResponse, prices: PriceTable, seconds: number): void {
  const answeredBy = res.provider ?? provider.name;
  const cost = prices.cost(res.model, res.usage.inputTokens, res.usage.outputTokens);
  span.setAttributes({
    "gen_ai.response.model": res.model,
    "gen_ai.usage.input_tokens": res.usage.inputTokens,
    "gen_ai.usage.output_tokens": res.usage.outputTokens,
    "raptorflow.llm.provider": answeredBy,
    "raptorflow.llm.rounds": res.rounds ?? 1,
    "raptorflow.llm.tool_calls": res.toolCalls?.length ?? 0,
    "raptorflow.cost_usd": cost,
  });
  const at: Attributes = { "gen_ai.provider.name": answeredBy, "gen_ai.response.model": res.model };
  const m = llmInstruments();
  m.duration.record(seconds, at);
  m.tokens.add(res.usage.inputTokens, { ...at, "gen_ai.token.type": "input" });
  m.tokens.add(res.usage.outputTokens, { ...at, "gen_ai.token.type": "output" });
  m.cost.add(cost, at);
}

/** recordFailure marks a failed call on its span and in the duration metric. */
function recordFailure(span: Span, provider: LlmProvider, req: LlmRequest, e: unknown, seconds: number): void {
  const type = e instanceof ConnectError ? codeName(e.code) : (e as Error)?.name ?? "Error";
  span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error)?.message });
  span.setAttribute("error.type", type);
  llmInstruments().duration.record(seconds, { "gen_ai.provider.name": provider.name, "gen_ai.response.model": provider.model(req.tier), "error.type": type });
}

/**
 * traceProvider wraps a provider so every model call is a CLIENT span
 * (`chat <model>`, child of the agent's call) carrying the provider, the
 * model, the tokens and the cost (OpenAI, Vertex AI and Bedrock price lists,
 * MODEL_PRICES), and is counted in the model metrics
 * (`gen_ai.client.operation.duration`, `raptorflow.llm.tokens`,
 * `raptorflow.llm.cost`). Prompts and answers are never recorded.
 */
export function traceProvider(provider: LlmProvider, prices: PriceTable = createPriceTable()): LlmProvider {
  const start = (req: LlmRequest): Span =>
    tracer().startSpan(`chat ${provider.model(req.tier)}`, {
      kind: SpanKind.CLIENT,
      attributes: {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider.name,
        "gen_ai.request.model": provider.model(req.tier),
        "raptorflow.llm.tier": req.tier,
        "raptorflow.llm.tools": req.tools?.length ?? 0,
      },
    });
  return {
    name: provider.name,
    model: (tier) => provider.model(tier),
    async complete(req) {
      const span = start(req);
      const started = performance.now();
      try {
        const res = await context.with(trace.setSpan(context.active(), span), () => provider.complete(req));
        recordResponse(span, provider, res, prices, (performance.now() - started) / 1000);
        return res;
      } catch (e) {
        recordFailure(span, provider, req, e, (performance.now() - started) / 1000);
        throw e;
      } finally {
        span.end();
      }
    },
    async *stream(req): AsyncIterable<LlmChunk> {
      const span = start(req);
      span.setAttribute("gen_ai.request.stream", true);
      const started = performance.now();
      let finished = false;
      try {
        for await (const chunk of provider.stream(req)) {
          if ("done" in chunk) {
            recordResponse(span, provider, chunk.done, prices, (performance.now() - started) / 1000);
            finished = true;
          }
          yield chunk;
        }
      } catch (e) {
        recordFailure(span, provider, req, e, (performance.now() - started) / 1000);
        finished = true;
        throw e;
      } finally {
        if (!finished) span.setAttribute("raptorflow.llm.abandoned", true);
        span.end();
      }
    },
  };
}

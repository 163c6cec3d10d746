import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { IncomingMessage, ServerResponse } from "node:http";
import { context, metrics, propagation, trace, type Meter, type Tracer } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-proto";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider, PeriodicExportingMetricReader, type IMetricReader } from "@opentelemetry/sdk-metrics";
import {
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type Sampler,
  type SpanExporter,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace";
import { meshName } from "./topology.js";
import { registerRuntimeMetrics } from "./runtime-metrics.js";
import { createSpanFileExporter } from "./span-file-exporter.js";

type Env = Readonly<Record<string, string | undefined>>;

/** instrumentationName names our tracer and meter (the instrumentation scope). */
export const instrumentationName = "raptorflow";

/** ServiceIdentity is what names this process in telemetry, status and logs. */
export interface ServiceIdentity {
  /** service is the service's name in the topology (`orchestrator`), or the process's role. */
  readonly service: string;
  /** version is RAPTORFLOW_VERSION (the image's build sets it) or package.json's. */
  readonly version: string;
  /** instance is this process's host name (the task or pod). */
  readonly instance: string;
  /** startTime is when this process started. */
  readonly startTime: Date;
}

/** Telemetry is the OpenTelemetry SDK of one process: its traces, metrics and their exporters. */
export interface Telemetry extends ServiceIdentity {
  /** exporting lists where telemetry leaves the process (`otlp-traces`, `otlp-metrics`, `span-files`); empty when nothing does. */
  readonly exporting: readonly string[];
  /** serveMetrics answers a Prometheus scrape with every metric of the process. */
  serveMetrics(req: IncomingMessage, res: ServerResponse): void;
  /** shutdown flushes the exporters and stops them. */
  shutdown(): Promise<void>;
}

const packageVersion = ((): string => {
  try {
    return (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;
  } catch {
    return "0.0.0";
  }
})();

const startTime = new Date();
let started: Telemetry | undefined;
let identity: ServiceIdentity | undefined;

/**
 * serviceIdentity is this process's identity: the one startTelemetry was
 * given, or, before that (tests, tools), OTEL_SERVICE_NAME or `raptorflow`.
 */
export function serviceIdentity(env: Env = process.env): ServiceIdentity {
  return (identity ??= {
    service: env.OTEL_SERVICE_NAME || meshName,
    version: env.RAPTORFLOW_VERSION || packageVersion,
    instance: hostname(),
    startTime,
  });
}

/** currentTelemetry is the SDK startTelemetry started in this process, if any. */
export function currentTelemetry(): Telemetry | undefined {
  return started;
}

/** tracer is our tracer (a no-op until startTelemetry runs). */
export function tracer(): Tracer {
  return trace.getTracer(instrumentationName, packageVersion);
}

const instrumentCache = new WeakMap<object, Map<string, unknown>>();

/**
 * instruments creates a set of metric instruments once per meter provider:
 * the API hands out no-op instruments before the SDK starts and never
 * upgrades them, so modules ask here, at first use, instead of at import.
 */
export function instruments<T>(key: string, make: (meter: Meter) => T): T {
  const provider = metrics.getMeterProvider();
  let byKey = instrumentCache.get(provider);
  if (!byKey) instrumentCache.set(provider, (byKey = new Map()));
  if (!byKey.has(key)) byKey.set(key, make(provider.getMeter(instrumentationName, packageVersion)));
  return byKey.get(key) as T;
}

/** durationBuckets are the histogram bounds of every duration we record, in seconds (OpenTelemetry's defaults are for milliseconds). */
export const durationBuckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60];

/**
 * otlpUrl is where a signal goes with OTLP (http/protobuf): its own
 * endpoint (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, used as is) or the shared
 * one with the signal's path (`OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`);
 * undefined — nothing leaves the process — without either, or when the
 * signal's exporter is `none`.
 */
export function otlpUrl(env: Env, signal: "traces" | "metrics"): string | undefined {
  const upper = signal.toUpperCase();
  if (env[`OTEL_${upper}_EXPORTER`] === "none") return undefined;
  const own = env[`OTEL_EXPORTER_OTLP_${upper}_ENDPOINT`];
  if (own) return own;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT;
  return base ? `${base.replace(/\/+$/, "")}/v1/${signal}` : undefined;
}

/** samplerOf reads OTEL_TRACES_SAMPLER (parentbased_always_on, the default, or parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG). */
function samplerOf(env: Env): Sampler {
  const kind = env.OTEL_TRACES_SAMPLER || "parentbased_always_on";
  if (kind === "parentbased_always_on") return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  if (kind === "parentbased_traceidratio") {
    const ratio = Number(env.OTEL_TRACES_SAMPLER_ARG ?? "1");
    if (!(ratio >= 0 && ratio <= 1)) throw new Error(`OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1, got "${env.OTEL_TRACES_SAMPLER_ARG}"`);
    return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
  throw new Error(`OTEL_TRACES_SAMPLER must be parentbased_always_on or parentbased_traceidratio, got "${kind}"`);
}

/**
 * startTelemetry starts OpenTelemetry in this process for one service:
 * W3C trace context and baggage propagation, an AsyncLocalStorage context,
 * a tracer provider and a meter provider with the service's resource, and
 * runtime metrics. Spans always exist (logs carry their ids; the gateway
 * returns its `traceparent`), but leave the process only when configured:
 * OTLP (`OTEL_EXPORTER_OTLP_ENDPOINT`, or the per-signal endpoints; the
 * protocol is http/protobuf) and, for tests and debugging,
 * RAPTORFLOW_TRACE_DIR (each finished span as a JSON line in
 * `<dir>/<service>.jsonl`; tests may pass their own `spanExporter`). Metrics are always readable from the
 * Prometheus endpoint (`serveMetrics`), and pushed with OTLP when
 * configured. Call it once, before the service is built.
 */
export function startTelemetry(service: string, env: Env = process.env, options: { readonly spanExporter?: SpanExporter } = {}): Telemetry {
  if (started) {
    if (started.service !== service) throw new Error(`telemetry already started for ${started.service}, not ${service}`);
    return started;
  }
  identity = { ...serviceIdentity(env), service };
  const id = identity;
  const resource = resourceFromAttributes({
    "service.name": service,
    "service.namespace": meshName,
    "service.version": id.version,
    "service.instance.id": id.instance,
    ...(env.NODE_ENV ? { "deployment.environment.name": env.NODE_ENV } : {}),
  });
  const exporting: string[] = [];

  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }));

  const spanProcessors: SpanProcessor[] = [];
  const tracesUrl = otlpUrl(env, "traces");
  if (tracesUrl) {
    spanProcessors.push(new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: tracesUrl }) }));
    exporting.push("otlp-traces");
  }
  if (options.spanExporter) spanProcessors.push(new SimpleSpanProcessor({ exporter: options.spanExporter }));
  if (env.RAPTORFLOW_TRACE_DIR) {
    spanProcessors.push(new SimpleSpanProcessor({ exporter: createSpanFileExporter(env.RAPTORFLOW_TRACE_DIR, service) }));
    exporting.push("span-files");
  }
  const tracerProvider = new TracerProvider({ resource, sampler: samplerOf(env), spanProcessors });
  trace.setGlobalTracerProvider(tracerProvider);

  // The Prometheus reader serves scrapes from our own listener (ops-http.ts), not a server of its own.
  const prometheus = new PrometheusExporter({ preventServerStart: true, withResourceConstantLabels: /^service\.name$/, withoutScopeInfo: true });
  const readers: IMetricReader[] = [prometheus];
  const metricsUrl = otlpUrl(env, "metrics");
  if (metricsUrl) {
    readers.push(new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter({ url: metricsUrl }), exportIntervalMillis: Number(env.OTEL_METRIC_EXPORT_INTERVAL || 60_000) }));
    exporting.push("otlp-metrics");
  }
  const meterProvider = new MeterProvider({ resource, readers });
  metrics.setGlobalMeterProvider(meterProvider);
  registerRuntimeMetrics();

  started = {
    ...id,
    exporting,
    serveMetrics: (req, res) => prometheus.getMetricsRequestHandler(req, res),
    async shutdown() {
      await Promise.allSettled([tracerProvider.shutdown(), meterProvider.shutdown()]);
    },
  };
  return started;
}

import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Span, type TextMapGetter, type TextMapSetter } from "@opentelemetry/api";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { isOrganizationId, organizationHeader, principalKey } from "./call-context.js";
import { bindIterable, withCallFields, type CallFields } from "./call-scope.js";
import { codeName, processCallStats, serverFaultCodes, type CallStats } from "./call-stats.js";
import { logger } from "./logger.js";
import { durationBuckets, instruments, tracer } from "./telemetry.js";

/** headerGetter reads W3C trace context from Fetch Headers (Connect's request headers, gRPC metadata). */
export const headerGetter: TextMapGetter<Headers> = {
  keys: (h) => [...h.keys()],
  get: (h, k) => h.get(k) ?? undefined,
};

/** headerSetter writes W3C trace context into Fetch Headers. */
export const headerSetter: TextMapSetter<Headers> = {
  set: (h, k, v) => h.set(k, v),
};

const rpcInstruments = () =>
  instruments("rpc", (meter) => ({
    server: meter.createHistogram("rpc.server.call.duration", {
      unit: "s",
      description: "Duration of the RPCs this service answered, by method and status code: their rate, errors and latency.",
      advice: { explicitBucketBoundaries: durationBuckets },
    }),
    client: meter.createHistogram("rpc.client.call.duration", {
      unit: "s",
      description: "Duration of the RPCs this service made to its upstreams, by method and status code.",
      advice: { explicitBucketBoundaries: durationBuckets },
    }),
  }));

/** RpcCall names one RPC for telemetry. */
export interface RpcCall {
  /** system is the protocol: `grpc` inside the mesh; the gateway says how it was asked (`http`, `connect_rpc`). */
  readonly system: string;
  /** service is the fully-qualified service, `raptorflow.v3.OrchestratorService`. */
  readonly service: string;
  /** method is the method's name, `CreateRun`. */
  readonly method: string;
}

/** rpcAttributes are a call's span and metric attributes (OpenTelemetry's RPC conventions). */
export function rpcAttributes(call: RpcCall): Attributes {
  return { "rpc.system": call.system, "rpc.service": call.service, "rpc.method": call.method };
}

/**
 * recordServerCall counts one answered call in `rpc.server.call.duration`
 * (labelled with its code name, `rpc.response.status_code`) and in the
 * process's recent-call window. The gateway calls it for the RPCs it
 * serves over REST; the server interceptor for everything else.
 */
export function recordServerCall(call: RpcCall, code: Code | 0, seconds: number, stats: CallStats = processCallStats): void {
  rpcInstruments().server.record(seconds, { ...rpcAttributes(call), "rpc.response.status_code": codeName(code) });
  stats.record(code);
}

/** finishSpan sets a call's outcome on its span and ends it; `isFault` says which codes are errors for this side of the call. */
export function finishSpan(span: Span, code: Code | 0, error: unknown, isFault: (c: Code) => boolean): void {
  span.setAttribute("rpc.response.status_code", codeName(code));
  if (code !== 0 && isFault(code)) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof ConnectError ? error.rawMessage : String(error) });
    if (error instanceof Error) span.recordException(error);
  }
  span.end();
}

/**
 * claimedOrganization is the organization a call says it acts for (an
 * access token's wins once the auth interceptor has verified it): its
 * `x-raptorflow-organization` when shaped like one, `default` (the embedded
 * single-tenant organization) without one.
 */
function claimedOrganization(header: Headers): string | undefined {
  const org = header.get(organizationHeader);
  if (org === null || org === "") return "default";
  return isOrganizationId(org) ? org : undefined;
}

const codeOf = (e: unknown): Code | 0 => (e === undefined ? 0 : ConnectError.from(e).code);

/**
 * createServerTelemetryInterceptor is the outermost interceptor of every
 * service: it continues the caller's trace (W3C `traceparent` in the
 * metadata) with a SERVER span, runs the handler with that span active and
 * the call's log fields (request id, organization, RPC), records the RED
 * metrics (`rpc.server.call.duration` by method and code) and logs the
 * finished call (debug when OK, info for a caller's mistake, error for a
 * fault). A stream's span ends when the stream does.
 */
export function createServerTelemetryInterceptor(stats: CallStats = processCallStats): Interceptor {
  const log = logger("rpc");
  return (next) => async (req) => {
    const started = performance.now();
    const call: RpcCall = { system: "grpc", service: req.service.typeName, method: req.method.name };
    const rpc = `${call.service}/${call.method}`;
    const parent = propagation.extract(ROOT_CONTEXT, req.header, headerGetter);
    const organization = claimedOrganization(req.header);
    const span = tracer().startSpan(rpc, { kind: SpanKind.SERVER, attributes: { ...rpcAttributes(call), ...(organization ? { "raptorflow.organization": organization } : {}) } }, parent);
    const fields: CallFields = { requestId: req.header.get("x-request-id") ?? undefined, organization, rpc };
    const ctx = withCallFields(trace.setSpan(parent, span), fields);
    const finish = (error?: unknown): void => {
      // A stream its caller abandoned ends without an error, but was cancelled.
      const code = error === undefined && req.signal.aborted ? Code.Canceled : codeOf(error);
      const seconds = (performance.now() - started) / 1000;
      // The verified organization (an access token's) wins over the claimed one once the auth interceptor has run.
      const verified = req.contextValues.get(principalKey)?.organization;
      if (verified && verified !== organization) {
        span.setAttribute("raptorflow.organization", verified);
        fields.organization = verified;
      }
      recordServerCall(call, code, seconds, stats);
      context.with(ctx, () => {
        const line = { code: codeName(code), duration_ms: Math.round(seconds * 1000) };
        if (code === 0) log.debug(line, "call finished");
        else if (serverFaultCodes.has(code) || code === Code.Unimplemented) log.error({ ...line, err: error }, "call failed");
        else log.info({ ...line, error: ConnectError.from(error).rawMessage }, "call refused");
      });
      finishSpan(span, code, error, (c) => serverFaultCodes.has(c) || c === Code.Unimplemented);
    };
    try {
      const res = await context.with(ctx, () => next(req));
      if (!res.stream) {
        finish();
        return res;
      }
      return { ...res, message: bindIterable(res.message, ctx, finish) };
    } catch (e) {
      finish(e);
      throw e;
    }
  };
}

/**
 * createClientTelemetryInterceptor traces the calls a service makes to an
 * upstream (`peer`, its name in the topology): a CLIENT span, child of
 * whatever is active, whose context goes out as `traceparent` (replacing a
 * forwarded one), and `rpc.client.call.duration`.
 */
export function createClientTelemetryInterceptor(peer: string): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const call: RpcCall = { system: "grpc", service: req.service.typeName, method: req.method.name };
    const attributes = rpcAttributes(call);
    const span = tracer().startSpan(`${call.service}/${call.method}`, { kind: SpanKind.CLIENT, attributes: { ...attributes, "peer.service": peer } });
    const ctx = trace.setSpan(context.active(), span);
    propagation.inject(ctx, req.header, headerSetter);
    const finish = (error?: unknown): void => {
      const code = codeOf(error);
      rpcInstruments().client.record((performance.now() - started) / 1000, { ...attributes, "peer.service": peer, "rpc.response.status_code": codeName(code) });
      // Every failed outgoing call is an error for the caller's trace.
      finishSpan(span, code, error, () => true);
    };
    try {
      const res = await context.with(ctx, () => next(req));
      if (!res.stream) {
        finish();
        return res;
      }
      return { ...res, message: bindIterable(res.message, ctx, finish) };
    } catch (e) {
      finish(e);
      throw e;
    }
  };
}

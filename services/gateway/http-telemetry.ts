import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { context, isSpanContextValid, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span, type SpanContext, type TextMapGetter } from "@opentelemetry/api";
import type { Interceptor } from "@connectrpc/connect";
import { ConnectError } from "@connectrpc/connect";
import { withCallFields, type CallFields } from "../../mesh/call-scope.js";
import { codeName } from "../../mesh/call-stats.js";
import { recordServerCall, rpcAttributes, type RpcCall } from "../../mesh/telemetry-interceptor.js";
import { durationBuckets, instruments, tracer } from "../../mesh/telemetry.js";

const nodeHeaderGetter: TextMapGetter<IncomingHttpHeaders> = {
  keys: (h) => Object.keys(h),
  get: (h, k) => h[k],
};

const httpInstruments = () =>
  instruments("http", (meter) => ({
    duration: meter.createHistogram("http.server.request.duration", {
      unit: "s",
      description: "Duration of the HTTP requests the gateway answered, by method, route and status.",
      advice: { explicitBucketBoundaries: durationBuckets },
    }),
  }));

/** HttpCall is what the gateway knows of one HTTP request while it runs: its span, its log fields and its route. */
export interface HttpCall {
  /** span is the request's SERVER span. */
  readonly span: Span;
  /** fields are its log fields (request id, organization, RPC). */
  readonly fields: CallFields;
  /** route is the matched route template (`/v3/{name=runs/*}`), once known. */
  route?: string;
}

const calls = new WeakMap<IncomingMessage, HttpCall>();

/** httpCallOf is the telemetry of a request the traced handler is answering. */
export function httpCallOf(req: IncomingMessage): HttpCall | undefined {
  return calls.get(req);
}

/** formatTraceparent writes a span context as a W3C `traceparent`. */
export function formatTraceparent(sc: SpanContext): string {
  return `00-${sc.traceId}-${sc.spanId}-${sc.traceFlags.toString(16).padStart(2, "0")}`;
}

/** activeTraceparent is the `traceparent` of the active span, when there is a real one (the SDK runs). */
export function activeTraceparent(): string | undefined {
  const sc = trace.getActiveSpan()?.spanContext();
  return sc && isSpanContextValid(sc) ? formatTraceparent(sc) : undefined;
}

/**
 * tracedHandler wraps the gateway's HTTP request handler (fastify's
 * `serverFactory`): each request gets a SERVER span continuing the
 * caller's trace (its `traceparent`, or a new trace), active for
 * everything fastify does for it, and its log fields; its `traceparent`
 * response header is the span's, so a caller can quote it. When the
 * response ends the span gets the route and status, and
 * `http.server.request.duration` counts it.
 */
export function tracedHandler(handler: (req: IncomingMessage, res: ServerResponse) => void): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const started = performance.now();
    const method = req.method ?? "GET";
    const parent = propagation.extract(ROOT_CONTEXT, req.headers, nodeHeaderGetter);
    const span = tracer().startSpan(method, { kind: SpanKind.SERVER, attributes: { "http.request.method": method, "url.path": (req.url ?? "/").split("?")[0], "url.scheme": "http" } }, parent);
    const id = req.headers["x-request-id"];
    const call: HttpCall = { span, fields: { requestId: typeof id === "string" && id ? id : undefined } };
    calls.set(req, call);
    const sc = span.spanContext();
    if (isSpanContextValid(sc)) res.setHeader("traceparent", formatTraceparent(sc));
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      const status = res.statusCode;
      const route = call.route ?? "unmatched";
      span.updateName(`${method} ${route}`);
      span.setAttribute("http.route", route);
      span.setAttribute("http.response.status_code", status);
      if (status >= 500 || !res.writableFinished) span.setStatus({ code: SpanStatusCode.ERROR, message: res.writableFinished ? `HTTP ${status}` : "the client went away" });
      span.end();
      httpInstruments().duration.record((performance.now() - started) / 1000, { "http.request.method": method, "http.route": route, "http.response.status_code": status });
    };
    res.once("finish", end);
    res.once("close", end);
    context.with(withCallFields(trace.setSpan(parent, span), call.fields), () => handler(req, res));
  };
}

/**
 * annotateRpc tells a request's telemetry which RPC it is: the span's
 * name, route and `rpc.*` attributes, and the log fields' RPC.
 */
export function annotateRpc(req: IncomingMessage, rpc: RpcCall, route: string): void {
  const call = calls.get(req);
  if (!call) return;
  call.route = route;
  call.fields.rpc = `${rpc.service}/${rpc.method}`;
  call.span.setAttributes(rpcAttributes(rpc));
}

/**
 * createGatewayRpcInterceptor measures the RPCs the gateway answers over
 * Connect and gRPC-Web as the services measure theirs
 * (`rpc.server.call.duration` with the code name), and names the RPC on the
 * request's span and log lines; the request's span is the server span.
 */
export function createGatewayRpcInterceptor(): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const rpc: RpcCall = { system: "connect_rpc", service: req.service.typeName, method: req.method.name };
    const span = trace.getActiveSpan();
    span?.setAttributes(rpcAttributes(rpc));
    span?.updateName(`POST /${rpc.service}/${rpc.method}`);
    const finish = (e?: unknown): void => {
      const code = e === undefined ? 0 : ConnectError.from(e).code;
      span?.setAttribute("rpc.response.status_code", codeName(code));
      recordServerCall(rpc, code, (performance.now() - started) / 1000);
    };
    try {
      const res = await next(req);
      if (!res.stream) {
        finish();
        return res;
      }
      const messages = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* messages;
            finish();
          } catch (e) {
            finish(e);
            throw e;
          }
        })(),
      };
    } catch (e) {
      finish(e);
      throw e;
    }
  };
}

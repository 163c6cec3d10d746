import { createRegistry, type DescMethodStreaming, type DescMethodUnary, type DescService, type JsonValue, type Registry } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createAsyncIterable } from "@connectrpc/connect/protocol";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { file_google_rpc_error_details } from "../../gen/google/rpc/error_details_pb.js";
import { bindingsOf, type Binding, type TranscodedService } from "./bindings.js";
import { metadataHeaders, requestIdentity, upstreamCall, type RequestIdentity } from "./http-headers.js";
import { requestMessage } from "./request-message.js";
import { callFields } from "../../mesh/call-scope.js";
import { recordServerCall, type RpcCall } from "../../mesh/telemetry-interceptor.js";
import { annotateRpc } from "./http-telemetry.js";
import { isResponseTooLarge, responseText, sendError, writeStream, type ResponseLimits } from "./responses.js";

export { bindingsOf, type Binding, type TranscodedService } from "./bindings.js";
export { statusJson } from "./responses.js";

/** TranscoderOptions configure the REST transcoder. */
export interface TranscoderOptions {
  /** services to expose. */
  readonly services: readonly TranscodedService[];
  /** timeoutMs is the default (and largest) deadline of upstream calls. */
  readonly timeoutMs: number;
  /** maxResponseBytes bounds a JSON response or one stream message (default 4 MiB). */
  readonly maxResponseBytes?: number;
  /** answerOptions answers OPTIONS (405 with `Allow`); false leaves OPTIONS to a CORS plugin that answers preflights. */
  readonly answerOptions?: boolean;
}

const methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;

/**
 * restTranscoder is the fastify plugin that serves the REST bindings of any
 * gRPC service from its descriptors alone: it matches the URL against the
 * compiled templates, builds the request from path variables, query
 * parameters and body (canonical proto3 JSON), calls the upstream with the
 * caller's metadata and deadline, and answers JSON with the contract's
 * success code. Errors are `google.rpc.Status` JSON with the HTTP status of
 * the gRPC code; server streams are NDJSON, or Server-Sent Events for
 * `Accept: text/event-stream`.
 */
export function restTranscoder(options: TranscoderOptions) {
  const bindings = bindingsOf(options.services);
  const byMethod = new Map<string, Binding[]>();
  for (const b of bindings) byMethod.set(b.httpMethod, [...(byMethod.get(b.httpMethod) ?? []), b]);
  const registry = registryOf(options.services.map((s) => s.service));
  const limits: ResponseLimits = { maxResponseBytes: options.maxResponseBytes ?? 4 * 1024 * 1024 };

  const find = (httpMethod: string, path: string): { binding: Binding; vars: Map<string, string> } | undefined => {
    for (const b of byMethod.get(httpMethod) ?? []) {
      const vars = b.template.match(path);
      if (vars) return { binding: b, vars };
    }
    return undefined;
  };

  // Made in onRequest, before routing and body parsing, so that every answer
  // (404, 405, 413, bad JSON included) carries the request's id and trace.
  const identities = new WeakMap<FastifyRequest, RequestIdentity>();

  const handle = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const q = request.url.indexOf("?");
    const path = q < 0 ? request.url : request.url.slice(0, q);
    // HEAD is GET without a body (fastify drops the body).
    const found = find(request.method === "HEAD" ? "GET" : request.method, path);
    if (!found) {
      const allowed = [...new Set(bindings.filter((b) => b.template.match(path)).map((b) => b.httpMethod))].sort();
      if (allowed.length === 0) return sendError(reply, new ConnectError(`no route for ${request.method} ${path}`, Code.NotFound), registry, 404);
      reply.header("allow", allowed.join(", "));
      return sendError(reply, new ConnectError(`method ${request.method} is not allowed on ${path}`, Code.Unimplemented), registry, 405);
    }
    const { binding, vars } = found;
    const rpc: RpcCall = { system: "http", service: binding.method.parent.typeName, method: binding.method.name };
    annotateRpc(request.raw, rpc, binding.template.source);
    // The RPC is measured as every service measures the ones it answers (rpc.server.call.duration).
    const started = performance.now();
    const measured = (code: Code | 0): void => recordServerCall(rpc, code, (performance.now() - started) / 1000);
    try {
      const call = upstreamCall(request.headers, identities.get(request) ?? requestIdentity(request.headers), options.timeoutMs);
      const message = requestMessage(binding, {
        vars,
        query: request.query as Record<string, string | string[]>,
        body: request.body as JsonValue | undefined,
      });
      const signal = abortOnClose(reply);
      if (binding.method.methodKind === "unary") {
        const res = await binding.transport.unary(binding.method as DescMethodUnary, signal, call.timeoutMs, call.header, message);
        const text = responseText(binding, res.message, registry, limits);
        measured(0);
        return reply
          .code(binding.successCode)
          .headers({ ...metadataHeaders(res.header), ...metadataHeaders(res.trailer, "grpc-trailer-") })
          .type("application/json")
          .send(text);
      }
      if (binding.method.methodKind === "server_streaming") {
        const res = await binding.transport.stream(binding.method as DescMethodStreaming, signal, call.timeoutMs, call.header, createAsyncIterable([message]));
        const framing = String(request.headers.accept ?? "").includes("text/event-stream") ? "sse" : "ndjson";
        const headers = { "x-request-id": call.requestId, traceparent: call.traceparent, ...metadataHeaders(res.header) };
        const sent = await writeStream(reply, binding, res.message, registry, limits, framing, headers);
        // A failure after the first message is the stream's last frame, not the call's status.
        measured(0);
        return sent;
      }
      throw new ConnectError(`${binding.method.name} streams requests and has no REST form`, Code.Unimplemented);
    } catch (e) {
      const err = ConnectError.from(e);
      measured(err.code);
      return sendError(reply, err, registry, isResponseTooLarge(err) ? 502 : undefined);
    }
  };

  return async function plugin(app: FastifyInstance): Promise<void> {
    // Malformed or empty JSON bodies, bodies over the limit and the like answer
    // as every other error does: google.rpc.Status JSON (scoped to these routes).
    app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
      const status = err.statusCode;
      if (status === 413) return sendError(reply, new ConnectError(err.message, Code.ResourceExhausted), registry, 413);
      if (status === 415) return sendError(reply, new ConnectError(err.message, Code.InvalidArgument), registry, 415);
      if (status !== undefined && status >= 400 && status < 500) return sendError(reply, new ConnectError(err.message, Code.InvalidArgument), registry, status);
      return sendError(reply, new ConnectError("internal error", Code.Internal, undefined, undefined, err), registry, 500);
    });
    app.addHook("onRequest", async (request, reply) => {
      const identity = requestIdentity(request.headers, request.id);
      identities.set(request, identity);
      const fields = callFields();
      if (fields) fields.requestId = identity.requestId;
      reply.header("x-request-id", identity.requestId).header("traceparent", identity.traceparent);
    });
    app.route({ method: options.answerOptions === false ? methods.filter((m) => m !== "OPTIONS") : [...methods], url: "/*", handler: handle });
  };
}

/**
 * abortOnClose cancels the upstream call when the REST client goes away
 * before the response finished.
 */
function abortOnClose(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) ac.abort();
  });
  return ac.signal;
}

/** registryOf holds every type the services' files reach, plus google.rpc's error details, for Any details and JSON. */
export function registryOf(services: readonly DescService[]): Registry {
  const files = new Map<string, DescService["file"]>();
  const add = (f: DescService["file"]): void => {
    if (files.has(f.name)) return;
    files.set(f.name, f);
    f.dependencies.forEach(add);
  };
  services.forEach((s) => add(s.file));
  return createRegistry(...files.values(), file_google_rpc_error_details);
}

import { create, toJson, type DescMessage, type JsonObject, type JsonValue, type MessageShape, type Registry } from "@bufbuild/protobuf";
import { AnySchema, anyPack, durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { FastifyReply } from "fastify";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { Binding } from "./bindings.js";
import { httpStatusOf } from "./http-status.js";

/**
 * statusJson renders an error as google.rpc.Status JSON (`code`, `message`,
 * `details`), each detail a typed Any (`@type`) so ErrorInfo, BadRequest,
 * RetryInfo or buf.validate.Violations reach the REST client intact.
 */
export function statusJson(err: ConnectError, registry: Registry): JsonObject {
  const details: JsonValue[] = [];
  for (const d of err.details) {
    try {
      const any =
        "desc" in d
          ? anyPack(d.desc, create(d.desc, d.value))
          : create(AnySchema, { typeUrl: `type.googleapis.com/${d.type}`, value: d.value });
      details.push(toJson(AnySchema, any, { registry }));
    } catch {
      // A detail of a type this gateway does not know is left out rather than failing the answer.
    }
  }
  return { code: err.code, message: err.rawMessage, details };
}

/** errorHeaders are the HTTP headers an error implies: `WWW-Authenticate` for 401, `Retry-After` from a RetryInfo. */
export function errorHeaders(err: ConnectError): Record<string, string> {
  const out: Record<string, string> = {};
  if (err.code === Code.Unauthenticated) out["www-authenticate"] = 'Bearer realm="raptorflow"';
  const [retry] = err.findDetails(RetryInfoSchema);
  if (retry?.retryDelay) out["retry-after"] = String(Math.max(0, Math.ceil(durationMs(retry.retryDelay) / 1000)));
  return out;
}

/** sendError answers an error with its HTTP status (or `status`), its headers and a google.rpc.Status body. */
export function sendError(reply: FastifyReply, err: ConnectError, registry: Registry, status?: number): FastifyReply {
  if (err.cause !== undefined && err.code === Code.Internal) reply.log.error({ err: err.cause }, "internal error");
  return reply
    .code(status ?? httpStatusOf(err.code))
    .headers(errorHeaders(err))
    .type("application/json")
    .send(JSON.stringify(statusJson(err, registry)));
}

/** ResponseLimits bound what the gateway sends back. */
export interface ResponseLimits {
  /** maxResponseBytes is the largest JSON body (or stream message) the gateway sends. */
  readonly maxResponseBytes: number;
}

/** responseText serialises a response message (or its `response_body` field) as JSON, within the size limit. */
export function responseText(b: Binding, message: MessageShape<DescMessage>, registry: Registry, limits: ResponseLimits): string {
  let json: JsonValue = toJson(b.method.output, message, { registry });
  if (b.responseField) json = (json as JsonObject)[b.responseField.jsonName] ?? null;
  const text = JSON.stringify(json);
  // Cheap check first: a string is never more than three bytes per UTF-16 unit.
  if (text.length * 3 > limits.maxResponseBytes && Buffer.byteLength(text) > limits.maxResponseBytes) {
    throw new ConnectError(
      `the response is larger than the gateway's limit of ${limits.maxResponseBytes} bytes`,
      Code.ResourceExhausted,
      undefined,
      undefined,
      "response-too-large",
    );
  }
  return text;
}

/** isResponseTooLarge tells the size-limit error apart from an upstream RESOURCE_EXHAUSTED. */
export function isResponseTooLarge(err: ConnectError): boolean {
  return err.cause === "response-too-large";
}

/** StreamFraming is how a server stream is written: grpc-gateway's NDJSON or Server-Sent Events. */
export type StreamFraming = "ndjson" | "sse";

/**
 * writeStream sends a server stream as it arrives. It waits for the first
 * message before sending headers, so an error before it still gets its own
 * HTTP status; after that, an error is the last frame (`{"error": …}` in
 * NDJSON, an `error` event in SSE). It honours backpressure.
 */
export async function writeStream(
  reply: FastifyReply,
  b: Binding,
  messages: AsyncIterable<MessageShape<DescMessage>>,
  registry: Registry,
  limits: ResponseLimits,
  framing: StreamFraming,
  headers: Record<string, string>,
): Promise<FastifyReply> {
  const it = messages[Symbol.asyncIterator]();
  let next = await it.next();
  // The first frame is made before the headers go out, so a first message
  // over the size limit is still an ordinary 502.
  let pending: string | undefined = next.done ? undefined : responseText(b, next.value, registry, limits);
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    ...headers,
    "content-type": framing === "sse" ? "text/event-stream" : "application/x-ndjson",
    "cache-control": "no-store",
    "x-accel-buffering": "no",
  });
  const frame = (text: string, event?: string): string =>
    framing === "sse" ? `${event ? `event: ${event}\n` : ""}data: ${text}\n\n` : `${event ? `{"error":${text}}` : `{"result":${text}}`}\n`;
  try {
    for (; !next.done; next = await it.next()) {
      if (res.destroyed) break;
      const text = pending ?? responseText(b, next.value, registry, limits);
      pending = undefined;
      if (!res.write(frame(text))) {
        await new Promise((r) => {
          res.once("drain", r);
          res.once("close", r);
        });
      }
    }
  } catch (e) {
    if (!res.destroyed) res.write(frame(JSON.stringify(statusJson(ConnectError.from(e), registry)), "error"));
  } finally {
    if (!next.done) {
      // The client went away: abortOnClose has cancelled the upstream call;
      // one more read lets Connect's stream wrapper release its deadline timer.
      await it.next().catch(() => undefined);
    }
  }
  res.end();
  return reply;
}

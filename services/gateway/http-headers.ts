import { randomFillSync, randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseTimeout } from "@connectrpc/connect/protocol-grpc";
import type { IncomingHttpHeaders } from "node:http";
import { activeTraceparent } from "./http-telemetry.js";

/** UpstreamCall is what the gateway sends upstream besides the message. */
export interface UpstreamCall {
  /** header is the gRPC request metadata. */
  readonly header: Headers;
  /** timeoutMs is the upstream deadline. */
  readonly timeoutMs: number;
  /** requestId is the request's id (the client's `X-Request-Id`, or one made here). */
  readonly requestId: string;
  /** traceparent is the W3C trace context (the client's, or a new trace). */
  readonly traceparent: string;
}

const metadataPrefix = "grpc-metadata-";
/** Headers clients may not set through `Grpc-Metadata-`: the gRPC protocol owns them. */
const reserved = /^(grpc-|content-type$|te$|user-agent$|host$|connection$|:)/;
const traceparentPattern = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

// Trace ids need randomness on every request that has none; one system call
// per 4 KiB instead of two per request (a profile showed randomBytes at ~8%
// of the gateway's CPU).
const pool = Buffer.alloc(4096);
let poolOffset = pool.length;

/** randomHex returns `bytes` random bytes as hex, from a pool refilled in bulk. */
function randomHex(bytes: number): string {
  if (poolOffset + bytes > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const hex = pool.toString("hex", poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return hex;
}

/** RequestIdentity is what names a request across the mesh: its id and its trace. */
export interface RequestIdentity {
  /** requestId is the client's `X-Request-Id`, or one made here. */
  readonly requestId: string;
  /** traceparent is the client's W3C trace context, or a new trace. */
  readonly traceparent: string;
}

/**
 * requestIdentity reads (or makes) a request's id and trace context; every
 * answer, errors included, carries them. With tracing on, the trace context
 * is the gateway's server span (the caller's trace continued, or a new one);
 * without, the caller's is passed on as it came, or a new trace is made.
 */
export function requestIdentity(headers: IncomingHttpHeaders, fallbackId?: string): RequestIdentity {
  const one = (k: string): string | undefined => {
    const v = headers[k];
    return Array.isArray(v) ? v[0] : v;
  };
  const given = one("traceparent");
  return {
    requestId: one("x-request-id") || fallbackId || randomUUID(),
    traceparent: activeTraceparent() ?? (given && traceparentPattern.test(given) ? given : `00-${randomHex(16)}-${randomHex(8)}-01`),
  };
}

/**
 * upstreamCall maps a REST request's headers to the upstream gRPC call, as
 * grpc-gateway does: `Authorization` → `authorization`, `Idempotency-Key` →
 * `idempotency-key`, `Grpc-Metadata-<Key>`
 * → `<key>`, `X-Request-Id` and W3C `traceparent`/`tracestate`/`baggage`
 * pass through (an id and a trace are made when absent), and `Grpc-Timeout`
 * (gRPC's format, such as `500m`) sets the deadline, capped by the default.
 */
export function upstreamCall(headers: IncomingHttpHeaders, identity: RequestIdentity, defaultTimeoutMs: number): UpstreamCall {
  const header = new Headers();
  const one = (k: string): string | undefined => {
    const v = headers[k];
    return Array.isArray(v) ? v[0] : v;
  };
  const auth = one("authorization");
  if (auth !== undefined) header.set("authorization", auth);
  // A retried POST with the same Idempotency-Key returns the first result.
  const idempotencyKey = one("idempotency-key");
  if (idempotencyKey !== undefined) header.set("idempotency-key", idempotencyKey);
  // Cache-Control: no-cache opts out of cached agent results.
  const cacheControl = one("cache-control");
  if (cacheControl !== undefined) header.set("cache-control", cacheControl);
  for (const [k, v] of Object.entries(headers)) {
    if (!k.startsWith(metadataPrefix) || v === undefined) continue;
    const key = k.slice(metadataPrefix.length);
    if (key === "" || reserved.test(key)) continue;
    for (const value of Array.isArray(v) ? v : [v]) header.append(key, value);
  }
  const { requestId, traceparent } = identity;
  header.set("x-request-id", requestId);
  header.set("traceparent", traceparent);
  for (const k of ["tracestate", "baggage"]) {
    const v = one(k);
    if (v !== undefined) header.set(k, v);
  }
  let timeoutMs = defaultTimeoutMs;
  const grpcTimeout = one("grpc-timeout");
  if (grpcTimeout !== undefined) {
    const parsed = parseTimeout(grpcTimeout, Number.MAX_SAFE_INTEGER);
    if (parsed.error || parsed.timeoutMs === undefined) {
      throw new ConnectError(`Grpc-Timeout: "${grpcTimeout}" is not a gRPC timeout (such as 500m or 2S)`, Code.InvalidArgument);
    }
    timeoutMs = Math.min(parsed.timeoutMs, defaultTimeoutMs);
  }
  return { header, timeoutMs, requestId, traceparent };
}

/**
 * metadataHeaders turns upstream response metadata (headers, and trailers
 * with `prefix` `Grpc-Trailer-`) into HTTP headers, `Grpc-Metadata-<Key>` as
 * grpc-gateway does. Protocol headers stay behind.
 */
export function metadataHeaders(md: Headers | undefined, prefix = "grpc-metadata-"): Record<string, string> {
  const out: Record<string, string> = {};
  md?.forEach((v, k) => {
    if (reserved.test(k) || k === "content-length" || k === "date") return;
    out[`${prefix}${k}`] = v;
  });
  return out;
}

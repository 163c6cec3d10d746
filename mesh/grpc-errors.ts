import * as grpc from "@grpc/grpc-js";
import { Code, ConnectError } from "@connectrpc/connect";
import { findTrailerError, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { headersFromMetadata, metadataFromHeaders } from "./metadata.js";

/**
 * statusFromError turns anything a handler threw into the gRPC status grpc-js
 * sends: the code and message of a ConnectError, its details as
 * `grpc-status-details-bin` (a google.rpc.Status), its metadata as trailers.
 * Anything that is not a ConnectError becomes INTERNAL with a generic message:
 * the cause stays in the server's log and never reaches the caller.
 */
export function statusFromError(e: unknown, trailer?: Headers): Partial<grpc.StatusObject> {
  const err = toConnectError(e);
  const headers = new Headers(trailer);
  err.metadata.forEach((v, k) => headers.set(k, v));
  setTrailerStatus(headers, err);
  return {
    code: err.code as number as grpc.status,
    details: err.rawMessage,
    metadata: metadataFromHeaders(headers),
  };
}

/**
 * toConnectError keeps ConnectErrors, turns an abort (the caller cancelled or
 * the deadline passed) into CANCELLED, and hides everything else behind
 * INTERNAL.
 */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  if (e instanceof Error && e.name === "AbortError") return new ConnectError("the call was cancelled", Code.Canceled, undefined, undefined, e);
  if (isBackendUnreachable(e)) return new ConnectError("a backing store is unavailable; try again shortly", Code.Unavailable, undefined, undefined, e);
  return new ConnectError("internal error", Code.Internal, undefined, undefined, e);
}

/** unreachableCodes are the socket errors of a server that is down or went away. */
const unreachableCodes = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENOTFOUND"]);

/**
 * isBackendUnreachable tells an error that says the database (or another
 * server a handler uses) cannot be reached, rather than that the request or
 * the code is wrong: a socket error, PostgreSQL's connection exceptions
 * (SQLSTATE class 08) and shutdown states (57P01-57P03), the pool failing to
 * connect or a connection ending mid-query, and MikroORM's wrapper of them.
 * Callers get UNAVAILABLE, which they may retry, instead of INTERNAL.
 */
export function isBackendUnreachable(e: unknown): boolean {
  for (let cur: unknown = e, depth = 0; cur && typeof cur === "object" && depth < 5; cur = (cur as { cause?: unknown }).cause, depth++) {
    const { code, name, message } = cur as { code?: unknown; name?: unknown; message?: unknown };
    if (typeof code === "string" && (unreachableCodes.has(code) || code.startsWith("08") || /^57P0[123]$/.test(code))) return true;
    if (name === "ConnectionException") return true;
    if (typeof message === "string" && /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/.test(message)) return true;
  }
  return false;
}

/**
 * errorFromStatus turns a grpc-js client error into a ConnectError with the
 * code, message, details and trailers the server sent.
 */
export function errorFromStatus(status: Partial<grpc.StatusObject> & { message?: string }): ConnectError {
  const trailer = status.metadata ? headersFromMetadata(status.metadata) : new Headers();
  trailer.set("grpc-status", String(status.code ?? grpc.status.UNKNOWN));
  trailer.set("grpc-message", encodeURIComponent(status.details ?? ""));
  const found = findTrailerError(trailer);
  if (found) return found;
  return new ConnectError(status.details ?? "unknown error", (status.code ?? Code.Unknown) as number as Code, trailer);
}

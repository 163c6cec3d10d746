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
  return new ConnectError("internal error", Code.Internal, undefined, undefined, e);
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

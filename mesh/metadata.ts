import * as grpc from "@grpc/grpc-js";
import { decodeBinaryHeader, encodeBinaryHeader } from "@connectrpc/connect";

/**
 * headersFromMetadata turns grpc-js Metadata into Fetch Headers, the form
 * Connect handlers and interceptors read. Binary (`-bin`) values are base64
 * encoded, as Connect expects for binary headers.
 */
export function headersFromMetadata(md: grpc.Metadata): Headers {
  const headers = new Headers();
  for (const [key, values] of Object.entries(md.getMap())) {
    if (key.endsWith("-bin")) {
      for (const v of md.get(key)) {
        headers.append(key, encodeBinaryHeader(typeof v === "string" ? Buffer.from(v) : v));
      }
    } else {
      headers.append(key, String(values));
    }
  }
  return headers;
}

/**
 * metadataFromHeaders turns Fetch Headers into grpc-js Metadata, leaving out
 * the headers the gRPC protocol itself owns (grpc-js writes those).
 */
export function metadataFromHeaders(headers: Headers | undefined): grpc.Metadata {
  const md = new grpc.Metadata();
  if (headers === undefined) return md;
  headers.forEach((value, key) => {
    if (reserved.has(key)) return;
    if (key.endsWith("-bin")) {
      for (const part of value.split(",")) {
        md.add(key, Buffer.from(decodeBinaryHeader(part.trim())));
      }
    } else {
      md.add(key, value);
    }
  });
  return md;
}

const reserved = new Set([
  "content-type",
  "te",
  "grpc-timeout",
  "grpc-encoding",
  "grpc-accept-encoding",
  "user-agent",
  "grpc-status",
  "grpc-message",
  "connect-protocol-version",
  "connect-timeout-ms",
  "content-length",
  "host",
  "connection",
  "accept-encoding",
]);

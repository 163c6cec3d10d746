import * as grpc from "@grpc/grpc-js";
import { Code, ConnectError, decodeBinaryHeader, encodeBinaryHeader } from "@connectrpc/connect";

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

/** legalKey and legalValue are what gRPC metadata can carry (grpc-js's own rules): lower-case keys of letters, digits and `_.-`; visible ASCII values. */
const legalKey = /^[0-9a-z_.-]+$/;
const legalValue = /^[ -~]*$/;

/**
 * metadataFromHeaders turns Fetch Headers into grpc-js Metadata, leaving out
 * the headers the gRPC protocol itself owns (grpc-js writes those). A
 * header gRPC metadata cannot carry (a key or a text value with other
 * characters: a client's mistake, passed on by the gateway) is
 * INVALID_ARGUMENT naming the key — never repeating the value, which may be
 * a credential.
 */
export function metadataFromHeaders(headers: Headers | undefined): grpc.Metadata {
  const md = new grpc.Metadata();
  if (headers === undefined) return md;
  headers.forEach((value, key) => {
    if (reserved.has(key)) return;
    if (!legalKey.test(key)) throw new ConnectError(`the header "${key.replace(/[^ -~]/g, "?")}" cannot travel as gRPC metadata: its name may hold lower-case letters, digits, "_", "." and "-" only`, Code.InvalidArgument);
    if (!key.endsWith("-bin") && !legalValue.test(value)) throw new ConnectError(`the header "${key}" cannot travel as gRPC metadata: its value may hold visible ASCII characters only`, Code.InvalidArgument);
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

import type { ConnectRouter } from "@connectrpc/connect";
import { createAsyncIterable, readAllBytes, type UniversalHandler, type UniversalServerResponse } from "@connectrpc/connect/protocol";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * malformedBodiesAreInvalid wraps every handler of a Connect router so that
 * a Connect request whose binary body is not the method's message answers
 * `invalid_argument` (HTTP 400), as a client's mistake — connect-es reports
 * it as `internal` (HTTP 500), since its decoder cannot tell a client's bad
 * bytes from its own. The same for gRPC-Web, whose status is in a trailer
 * frame: a trailers-only answer with `grpc-status: 13` for a body that did
 * not parse becomes `grpc-status: 3`. Bad JSON bodies already answer
 * `invalid_argument`; every other answer passes through untouched (streamed
 * answers stay streamed: only the first chunk is looked at).
 */
export function malformedBodiesAreInvalid(router: ConnectRouter): void {
  router.handlers.forEach((handler, i) => {
    const wrapped = async (req: Parameters<UniversalHandler>[0]): Promise<UniversalServerResponse> => {
      const res = await handler(req);
      if (res.status === 200 && res.body !== undefined && res.header?.get("content-type")?.startsWith("application/grpc-web")) return grpcWebParseError(res, handler.method.input.typeName);
      if (res.status !== 500 || res.body === undefined || !res.header?.get("content-type")?.startsWith("application/json")) return res;
      // An error answer of Connect's unary protocol: a small JSON object.
      const bytes = await readAllBytes(res.body, 64 * 1024);
      let error: { code?: unknown; message?: unknown } = {};
      try {
        error = JSON.parse(decoder.decode(bytes)) as typeof error;
      } catch {
        // Not ours to change.
      }
      if (error.code === "internal" && typeof error.message === "string" && error.message.startsWith("parse binary:")) {
        const body = encoder.encode(JSON.stringify({ code: "invalid_argument", message: `the request body is not a valid ${handler.method.input.typeName}: ${error.message}` }));
        return { ...res, status: 400, body: createAsyncIterable([body]) };
      }
      return { ...res, body: createAsyncIterable([bytes]) };
    };
    router.handlers[i] = Object.assign(wrapped, handler) as UniversalHandler;
  });
}

/**
 * grpcWebParseError looks at the first frame of a gRPC-Web answer: when it is
 * the trailer (a trailers-only answer) saying INTERNAL because the request
 * body did not parse, it is rewritten as INVALID_ARGUMENT; otherwise the
 * answer is passed on as it came.
 */
async function grpcWebParseError(res: UniversalServerResponse, typeName: string): Promise<UniversalServerResponse> {
  const it = res.body![Symbol.asyncIterator]();
  const first = await it.next();
  const rest = async function* () {
    if (!first.done) yield first.value;
    for (let n = await it.next(); !n.done; n = await it.next()) yield n.value;
  };
  const chunk = first.done ? undefined : first.value;
  // A trailer frame: flag 0x80, a 4-byte length, then HTTP/1-style header lines.
  if (!chunk || chunk.length < 5 || (chunk[0] & 0x80) === 0) return { ...res, body: rest() };
  const length = new DataView(chunk.buffer, chunk.byteOffset + 1, 4).getUint32(0);
  if (chunk.length !== 5 + length) return { ...res, body: rest() };
  const trailer = decoder.decode(chunk.subarray(5));
  const message = decodeURIComponent(/^grpc-message: *(.*)$/im.exec(trailer)?.[1]?.trim() ?? "");
  if (!/^grpc-status: *13\s*$/im.test(trailer) || !message.startsWith("parse binary:")) return { ...res, body: rest() };
  const text = encoder.encode(`grpc-status: 3\r\ngrpc-message: ${encodeURIComponent(`the request body is not a valid ${typeName}: ${message}`)}\r\n`);
  const frame = new Uint8Array(5 + text.length);
  frame[0] = 0x80;
  new DataView(frame.buffer).setUint32(1, text.length);
  frame.set(text, 5);
  return { ...res, body: createAsyncIterable([frame]) };
}

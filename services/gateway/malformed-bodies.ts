import type { ConnectRouter } from "@connectrpc/connect";
import { createAsyncIterable, readAllBytes, type UniversalHandler, type UniversalServerResponse } from "@connectrpc/connect/protocol";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * malformedBodiesAreInvalid wraps every handler of a Connect router so that
 * a Connect request whose binary body is not the method's message answers
 * `invalid_argument` (HTTP 400), as a client's mistake — connect-es reports
 * it as `internal` (HTTP 500), since its decoder cannot tell a client's bad
 * bytes from its own. Bad JSON bodies already answer `invalid_argument`;
 * every other answer passes through untouched.
 */
export function malformedBodiesAreInvalid(router: ConnectRouter): void {
  router.handlers.forEach((handler, i) => {
    const wrapped = async (req: Parameters<UniversalHandler>[0]): Promise<UniversalServerResponse> => {
      const res = await handler(req);
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

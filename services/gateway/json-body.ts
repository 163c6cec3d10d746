import type { FastifyInstance } from "fastify";

/**
 * jsonDepthExceeds tells whether a JSON text nests objects and arrays deeper
 * than `max`, in one pass without recursion and without parsing (brackets
 * inside strings do not count), so a hostile body is refused before any
 * recursive code — protobuf's JSON reader of `google.protobuf.Struct` is
 * one — walks it.
 */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > max) return true;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    }
  }
  return false;
}

/**
 * JsonTooDeep is the 400 of a body nested past the limit; the transcoder's
 * error handler answers it as every bad body, a google.rpc.Status.
 */
class JsonTooDeep extends Error {
  readonly statusCode = 400;
}

/**
 * useJsonBodyLimits replaces the app's `application/json` parser with
 * fastify's own (prototype-poisoning checks included) behind a depth check:
 * a body nested deeper than `maxDepth` is a 400 before it is parsed. The
 * body size is bounded by fastify's `bodyLimit` as before.
 */
export function useJsonBodyLimits(app: FastifyInstance, maxDepth: number): void {
  const parse = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    if (jsonDepthExceeds(body as string, maxDepth)) return done(new JsonTooDeep(`the JSON body nests deeper than ${maxDepth} levels`), undefined);
    parse(request, body as string, done);
  });
}

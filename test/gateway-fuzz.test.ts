import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { DescMessage } from "@bufbuild/protobuf";
import { createRouterTransport } from "@connectrpc/connect";
import fc from "fast-check";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contractServices, isTestContract } from "../platform/auth/policy-table.js";
import { bindingsOf, type Binding } from "../services/gateway/bindings.js";
import { build } from "../services/gateway/server.js";
import { startSecureMesh, type SecureMesh } from "./support/secure-mesh.js";

/**
 * The gateway under fire: thousands of malformed requests — random JSON,
 * wrong types, huge strings, deep nesting, invalid UTF-8, path traversal in
 * path variables, bad headers — through the real gateway in front of the
 * real services (in process, AUTH=required). Every answer must be a
 * well-formed 4xx (a google.rpc.Status, or a Connect error) or a success;
 * never a 5xx; the process must not die; the heap must stay bounded.
 * FUZZ_RUNS sets how many requests (default 2,000; a longer run:
 * FUZZ_RUNS=20000 npx vitest run test/gateway-fuzz.test.ts).
 */

const runs = Number(process.env.FUZZ_RUNS || 2_000);

/** gc collects garbage when it can be asked to (for a fair heap reading). */
const gc: () => void = (() => {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
})();

/** FuzzRequest is one request the gateway gets. */
interface FuzzRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly payload?: string | Buffer;
}

/** segment is a path variable's value: well-shaped, traversal, encoded, huge or plain junk. */
const segment = fc.oneof(
  fc.stringMatching(/^[a-z0-9-]{1,20}$/),
  fc.constantFrom("..", "../..", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2f", "....//", "%00", "%ff%fe", "a%20b", "%E2%80%AE", "~root", "*", "{name}", "%", "%zz", ";", "?x=1", "#frag"),
  fc.string({ maxLength: 40 }).map(encodeURIComponent),
  fc.integer({ min: 200, max: 20_000 }).map((n) => "a".repeat(n)),
);

/** pathOf fills a binding's template with fuzzed segments (`{name=runs/*}` gets `runs/<seg>` or a bare segment). */
const pathOf = (b: Binding, segs: string[], shaped: boolean[]): string => {
  let i = 0;
  return b.template.source.replace(/\{([^}=]+)(?:=([^}]*))?\}/g, (_m, _v, pattern: string | undefined) => {
    const s = segs[i % segs.length];
    const keep = shaped[i++ % shaped.length];
    return pattern && keep ? pattern.replace(/\*\*?/g, s) : s;
  });
};

/** wrongValue is a JSON value of a type a field probably does not take. */
const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1e308, -1e308, "NaN", "Infinity", "", " ", "0x10", "2024-13-45T99:99:99Z", "9".repeat(40), [], {}),
  fc.double(),
  fc.string({ maxLength: 30 }),
  fc.array(fc.integer(), { maxLength: 5 }),
  fc.integer({ min: 1_000, max: 300_000 }).map((n) => "x".repeat(n)),
);

/** fieldsBody is an object with a message's own field names (JSON and proto names), set to wrong or random values. */
const fieldsBody = (input: DescMessage): fc.Arbitrary<Record<string, unknown>> => {
  const names = input.fields.flatMap((f) => [f.jsonName, f.name]);
  if (names.length === 0) return fc.constant({});
  return fc.dictionary(fc.constantFrom(...names), fc.oneof(wrongValue, fc.jsonValue({ maxDepth: 3 })), { maxKeys: 6 });
};

/** deep nests arrays or objects `depth` levels. */
const deep = fc.tuple(fc.integer({ min: 20, max: 5_000 }), fc.boolean()).map(([depth, arrays]) => (arrays ? `${"[".repeat(depth)}1${"]".repeat(depth)}` : `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`));

/** payloadFor is a body for a binding: JSON of its fields with wrong types, random JSON, deep nesting, invalid UTF-8, junk, huge, or none. */
const payloadFor = (b: Binding): fc.Arbitrary<string | Buffer | undefined> =>
  fc.oneof(
    { weight: 4, arbitrary: fieldsBody(b.bodyField?.message ?? b.method.input).map((o) => JSON.stringify(o)) },
    { weight: 2, arbitrary: fc.json({ maxDepth: 4 }) },
    { weight: 1, arbitrary: deep.map((d) => `{"input":"x","parameters":${d}}`) },
    { weight: 1, arbitrary: deep },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 200 }).map((a) => Buffer.concat([Buffer.from('{"input":"'), Buffer.from([0xff, 0xfe, 0xc3, 0x28]), Buffer.from(a), Buffer.from('"}')])) },
    { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
    { weight: 1, arbitrary: fc.constantFrom(undefined, "", "null", "[]", "{", '{"a":1,}', "\u0000", '"\\ud800"', '{"__proto__":{"polluted":true}}', '{"constructor":{"prototype":{"polluted":true}}}') },
    { weight: 1, arbitrary: fc.constant(JSON.stringify({ input: "y".repeat(1_200_000) })) },
  );

/** junkHeader is a header value a client should not send. */
const junkHeader = fc.oneof(
  fc.constantFrom("", " ", "Bearer", "Bearer ", "Bearer a.b.c", "Basic Zm9vOmJhcg==", "bearer \u00ff", "Bearer ".padEnd(8_000, "A"), "1", "-1", "999999999H", "1e9m", "00-xyz", "application/json; charset=utf-7"),
  fc.string({ maxLength: 60 }).map((s) => s.replace(/[^\x20-\x7e]/g, "")),
);

/** headersArb are a request's headers: mostly a valid token (so requests reach validation and the handlers), sometimes junk in every header we read. */
const headersArb = (token: string): fc.Arbitrary<Record<string, string>> =>
  fc
    .record(
      {
        authorization: fc.oneof({ weight: 6, arbitrary: fc.constant(`Bearer ${token}`) }, { weight: 1, arbitrary: junkHeader }),
        "content-type": fc.oneof(
          { weight: 8, arbitrary: fc.constant("application/json") },
          { weight: 1, arbitrary: fc.constantFrom("text/plain", "application/x-www-form-urlencoded", "application/proto", "multipart/form-data; boundary=x", "application/json; charset=latin1", "") },
        ),
        // A valid but tiny deadline would rightly answer 504 (the client's own deadline passed): valid ones here are generous.
        "grpc-timeout": fc.oneof(junkHeader.filter((v) => !/^\d{1,8}[HMSmun]$/.test(v.trim())), fc.constant("30S")),
        "idempotency-key": fc.oneof(fc.string({ maxLength: 30 }).map((s) => s.replace(/[^\x20-\x7e]/g, "")), fc.constant("k".repeat(300))),
        "grpc-metadata-x-raptorflow-organization": junkHeader,
        traceparent: junkHeader,
        "x-request-id": junkHeader,
        accept: fc.constantFrom("application/json", "text/event-stream", "*/*", "text/html"),
        "cache-control": junkHeader,
      },
      { requiredKeys: ["authorization"] },
    )
    .map((h) => Object.fromEntries(Object.entries(h).filter(([, v]) => v !== "")) as Record<string, string>);

/** queryArb is a query string of field names and junk, some repeated. */
const queryArb = fc.array(fc.tuple(fc.constantFrom("pageSize", "page_size", "pageToken", "filter", "orderBy", "system", "name", "x", "updateMask", "force", "mode"), fc.oneof(fc.string({ maxLength: 20 }), wrongValue.map(String))), { maxLength: 4 })
  .map((pairs) => (pairs.length ? `?${pairs.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&")}` : ""));

describe("the gateway under malformed requests", () => {
  let mesh: SecureMesh;
  let gateway: FastifyInstance;
  let bindings: Binding[];
  let token: string;

  beforeAll(async () => {
    mesh = await startSecureMesh();
    gateway = await build({ env: mesh.env, logger: false });
    token = await mesh.token("acme", "admin");
    const dummy = createRouterTransport(() => {});
    const services = (await contractServices()).filter((s) => !isTestContract(s) && s.typeName !== "raptorflow.agent.v1.AgentService");
    bindings = bindingsOf(services.map((service) => ({ service, transport: dummy })));
  }, 60_000);
  afterAll(async () => {
    await gateway?.close();
    await mesh?.stop();
  });

  it(`answers ${runs} malformed requests with well-formed 4xx (or success), never a 5xx, with the heap bounded`, async () => {
    const rest = fc.integer({ min: 0, max: bindings.length - 1 }).chain((i) => {
      const b = bindings[i];
      return fc.record({
        method: fc.oneof({ weight: 5, arbitrary: fc.constant(b.httpMethod) }, { weight: 1, arbitrary: fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS") }),
        path: fc.tuple(fc.array(segment, { minLength: 1, maxLength: 3 }), fc.array(fc.boolean(), { minLength: 1, maxLength: 3 })).map(([segs, shaped]) => pathOf(b, segs, shaped)),
        query: queryArb,
        payload: payloadFor(b),
        headers: headersArb(token),
      });
    });
    const rpc = fc.integer({ min: 0, max: bindings.length - 1 }).chain((i) => {
      const m = bindings[i].method;
      return fc.record({
        method: fc.constant("POST"),
        path: fc.constant(`/${m.parent.typeName}/${m.name}`),
        query: fc.constant(""),
        payload: fc.oneof(
          fieldsBody(m.input).map((o) => JSON.stringify(o)),
          fc.json({ maxDepth: 4 }),
          deep,
          deep.map((d) => `{"input":"x","parameters":${d},"attributes":${d}}`),
          fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
        ),
        headers: headersArb(token).map((h) => ({ ...h, "content-type": h["content-type"] === "application/proto" ? "application/proto" : "application/json", "connect-protocol-version": "1" })),
      });
    });
    const requests: fc.Arbitrary<FuzzRequest> = fc.oneof({ weight: 4, arbitrary: rest }, { weight: 1, arbitrary: rpc }).map((r) => ({ method: r.method, url: `${r.path}${r.query}`, headers: r.headers, payload: r.method === "GET" || r.method === "HEAD" ? undefined : r.payload }));

    const statuses = new Map<number, number>();
    const bad: string[] = [];
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    await fc.assert(
      fc.asyncProperty(requests, async (req) => {
        const res = await gateway.inject({ method: req.method as "GET", url: req.url, headers: req.headers, payload: req.payload });
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        const what = `${req.method} ${req.url.slice(0, 120)} -> ${res.statusCode} ${res.body.slice(0, 200)}`;
        if (res.statusCode >= 500) bad.push(what);
        // A 4xx says what was wrong in a JSON error body — or, for what Connect refuses at the HTTP level (415 for a content type a method does not take), in its status alone.
        else if (res.statusCode >= 400 && req.method !== "HEAD" && !(res.body === "" && res.statusCode === 415)) {
          let body: { code?: unknown; message?: unknown; error?: unknown } | undefined;
          try {
            body = res.json();
          } catch {
            bad.push(`not JSON: ${what}`);
          }
          // A google.rpc.Status (REST), a Connect error (code as a string), or fastify's own for what no route takes.
          const wellFormed = body && typeof body.message === "string" && (typeof body.code === "number" || typeof body.code === "string" || typeof body.error === "string");
          if (body && !wellFormed) bad.push(`not an error body: ${what}`);
        }
        if (bad.length > 0) throw new Error(bad.join("\n"));
      }),
      { numRuns: runs, endOnFailure: true },
    );
    gc();
    const heapGrowthMb = (process.memoryUsage().heapUsed - heapBefore) / 1024 / 1024;
    const summary = [...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}: ${n}`).join(", ");
    console.log(`gateway fuzz: ${runs} requests; answers by status: ${summary}; heap growth after GC ${heapGrowthMb.toFixed(1)} MB`);
    expect(bad).toEqual([]);
    expect([...statuses.keys()].every((s) => s < 500)).toBe(true);
    // Bounded: what stays after a collection is the records the valid creates made, not the requests.
    expect(heapGrowthMb).toBeLessThan(150);
    // Still alive and answering.
    expect((await gateway.inject({ url: "/healthz" })).statusCode).toBe(200);
    expect((await gateway.inject({ url: "/v3/capabilities", headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(200);
  }, 180_000);
});

import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { toJson, type DescMessage, type JsonValue, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EchoService, type Kitchen, type StreamBooksRequest, type UpdateBookRequest } from "../gen/raptorflow/conformance/v1/conformance_pb.js";
import { createMeshServer, type MeshServer } from "../mesh/grpc-server.js";
import { createGrpcTransport, type GrpcTransport } from "../mesh/grpc-transport.js";
import { createGatewayApp } from "../services/gateway/gateway-app.js";
import { createEchoImpl } from "./support/echo-service.js";

/*
 * Conformance of the REST↔gRPC gateway with google/api/http.proto and our
 * gateway rules, against real peers: the echo backend on a grpc-js server
 * and the gateway on a real HTTP port, called with fetch.
 */

/** Received is one request the backend got, found by the X-Request-Id the test sent. */
interface Received {
  readonly rpc: string;
  readonly schema: DescMessage;
  readonly request: Message;
}

const received = new Map<string, Received>();
/** streams whose upstream call was cancelled (ctx.signal aborted) before the generator finished, by parent. */
const cancelledStreams = new Set<string>();

/** backendImpl is the echo backend, recording each unary request; StreamBooks also sends a header and notes cancellation. */
function backendImpl(): ServiceImpl<typeof EchoService> {
  const echo = createEchoImpl();
  const impl: Record<string, unknown> = { ...echo };
  for (const m of EchoService.methods) {
    if (m.methodKind !== "unary") continue;
    const inner = echo[m.localName as keyof typeof echo] as unknown as (req: Message, ctx: HandlerContext) => unknown;
    impl[m.localName] = (req: Message, ctx: HandlerContext) => {
      const id = ctx.requestHeader.get("x-request-id");
      if (id) received.set(id, { rpc: m.name, schema: m.input, request: req });
      return inner(req, ctx);
    };
  }
  const echoMetadata = impl.echoMetadata as (req: Message, ctx: HandlerContext) => unknown;
  impl.echoMetadata = (req: Message, ctx: HandlerContext) => {
    ctx.responseTrailer.set("x-echo-trailer", "done");
    return echoMetadata(req, ctx);
  };
  impl.streamBooks = async function* (req: StreamBooksRequest, ctx: HandlerContext) {
    ctx.responseHeader.set("x-stream", "books");
    let finished = false;
    // The handler context is also aborted when a call ends normally; only an
    // abort while the generator still runs is a cancellation.
    ctx.signal.addEventListener("abort", () => finished || cancelledStreams.add(req.parent), { once: true });
    if (req.parent === "shelves/forbidden") throw new ConnectError("no access to this shelf", Code.PermissionDenied);
    try {
      yield* echo.streamBooks(req, ctx) as AsyncIterable<never>;
    } finally {
      finished = true;
    }
  };
  return impl as ServiceImpl<typeof EchoService>;
}

let backend: MeshServer;
let transport: GrpcTransport;
let app: FastifyInstance;
let base: string;

beforeAll(async () => {
  backend = createMeshServer({ services: [{ service: EchoService, impl: backendImpl() }] });
  const port = await backend.listen(0, "127.0.0.1");
  backend.setServing(true);
  transport = createGrpcTransport({ address: `127.0.0.1:${port}` });
  app = await createGatewayApp({
    services: [{ service: EchoService, transport }],
    timeoutMs: 5000,
    maxRequestBytes: 64 * 1024,
    maxResponseBytes: 256 * 1024,
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const addr = app.server.address();
  base = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
});

afterAll(async () => {
  await app?.close();
  transport?.close();
  await backend?.shutdown();
});

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** json is the parsed body, or undefined when it is not JSON. */
  readonly json: JsonValue | undefined;
  /** requestId is the X-Request-Id the test sent (to find what the backend received). */
  readonly requestId: string;
}

interface Call {
  readonly method: string;
  readonly path: string;
  /** body is sent as JSON; a string is sent as it is (with a JSON content type unless contentType says otherwise). */
  readonly body?: unknown;
  readonly contentType?: string;
  readonly headers?: Record<string, string>;
}

/** call sends a REST request as any HTTP client would, with a fresh X-Request-Id unless the call sets one. */
async function call({ method, path, body, contentType, headers = {} }: Call): Promise<Answer> {
  const requestId = headers["x-request-id"] ?? randomUUID();
  const h: Record<string, string> = { "x-request-id": requestId, ...headers };
  let payload: string | undefined;
  if (body !== undefined) {
    payload = typeof body === "string" ? body : JSON.stringify(body);
    h["content-type"] = contentType ?? "application/json";
  }
  const res = await fetch(base + path, { method, headers: h, body: payload });
  const text = await res.text();
  let json: JsonValue | undefined;
  try {
    json = JSON.parse(text) as JsonValue;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json, requestId };
}

/** receivedBy is the request the backend received for a call, checking the RPC. */
function receivedBy(answer: Answer, rpc: string): Received {
  const r = received.get(answer.requestId);
  expect(r, `the backend received no ${rpc} call`).toBeDefined();
  expect(r!.rpc).toBe(rpc);
  return r!;
}

/** expectStatus asserts an HTTP status with a google.rpc.Status JSON body whose message names each of `mentions`. */
function expectStatus(a: Answer, httpStatus: number, code: Code, ...mentions: string[]): { code: number; message: string; details: JsonValue[] } {
  expect(a.status, a.text).toBe(httpStatus);
  expect(a.headers.get("content-type")).toMatch(/^application\/json/);
  const body = a.json as { code: number; message: string; details: JsonValue[] };
  expect(body).toEqual({ code, message: expect.any(String), details: expect.any(Array) });
  for (const m of mentions) expect(body.message).toContain(m);
  return body;
}

const kitchenSink = {
  stringValue: "héllo",
  int32Value: -7,
  int64Value: "-9007199254740993",
  uint64Value: "18446744073709551615",
  doubleValue: 2.5,
  floatValue: 0.5,
  boolValue: true,
  bytesValue: "AAEC/w==",
  kind: "KIND_ALPHA",
  tags: ["a", "b"],
  kinds: ["KIND_BETA", "KIND_UNSPECIFIED"],
  nested: { text: "n", number: 3, deeper: { text: "d" } },
  timestamp: "2024-01-02T03:04:05.123Z",
  duration: "1.500s",
  fieldMask: "fooBar,nested.deeperText",
  wrappedInt32: 0,
  wrappedBool: false,
  wrappedString: "",
  structValue: { a: [1, "x", null, true], b: { c: 1.5 } },
  labels: { k: "v", "": "empty key" },
  choiceNumber: 0,
  optionalInt32: 0,
  validated: "ok",
};

interface MappingRow extends Call {
  readonly name: string;
  /** rpc is the RPC the backend must have received. */
  readonly rpc: string;
  /** request is the canonical proto3 JSON of what the backend received. */
  readonly request: JsonValue;
  /** response is the JSON the client gets; an echo RPC's response is its request. */
  readonly response?: JsonValue;
  readonly status?: number;
  /** check looks at the received message itself, beyond its JSON form. */
  readonly check?: (request: Message) => void;
}

const mappingRows: MappingRow[] = [
  // body: "*" on a literal path, canonical proto3 JSON both ways.
  {
    name: 'body "*": every field kind in canonical JSON reaches the backend and comes back canonical',
    method: "POST",
    path: "/v1/echo",
    body: kitchenSink,
    rpc: "Echo",
    request: kitchenSink,
    check: (m) => {
      const k = m as Kitchen;
      expect(k.int64Value).toBe(-9007199254740993n);
      expect(k.uint64Value).toBe(18446744073709551615n);
      expect([...k.bytesValue]).toEqual([0, 1, 2, 255]);
      expect(k.fieldMask?.paths).toEqual(["foo_bar", "nested.deeper_text"]);
      expect(k.timestamp?.nanos).toBe(123_000_000);
      expect(k.wrappedInt32).toBe(0);
      expect(k.choice).toEqual({ case: "choiceNumber", value: 0 });
      expect(k.optionalInt32).toBe(0);
    },
  },
  {
    name: 'body "*": original proto field names and non-canonical forms are accepted; the answer is canonical',
    method: "POST",
    path: "/v1/echo",
    body: {
      string_value: "x",
      int64_value: 7,
      uint64_value: "42",
      bool_value: true,
      bytes_value: "AAEC_w",
      duration: "1.5s",
      nested: { deeper: { text: "d" } },
      wrapped_int32: 3,
      choice_text: "c",
      optional_int32: 1,
      field_mask: "a",
      double_value: "NaN",
      int32_value: "12",
      struct_value: {},
    },
    rpc: "Echo",
    request: {
      stringValue: "x",
      int32Value: 12,
      int64Value: "7",
      uint64Value: "42",
      doubleValue: "NaN",
      boolValue: true,
      bytesValue: "AAEC/w==",
      nested: { deeper: { text: "d" } },
      duration: "1.500s",
      fieldMask: "a",
      wrappedInt32: 3,
      structValue: {},
      choiceText: "c",
      optionalInt32: 1,
    },
  },
  {
    name: 'body "*": enums by number or name; default values are left out of the answer',
    method: "POST",
    path: "/v1/echo",
    body: { kind: 2, kinds: [1, "KIND_BETA", 0], int32Value: 0, stringValue: "", boolValue: false },
    rpc: "Echo",
    request: { kind: "KIND_BETA", kinds: ["KIND_ALPHA", "KIND_BETA", "KIND_UNSPECIFIED"] },
  },
  {
    name: 'body "*": no body at all is an empty message',
    method: "POST",
    path: "/v1/echo",
    rpc: "Echo",
    request: {},
  },
  // No body (an additional binding): every field from the query.
  {
    name: "query: scalars and numbers, percent-decoded",
    method: "GET",
    path:
      "/v1/echo?stringValue=a%26b%2Bc%20d%2F%C3%A9&int32Value=-4&int64Value=9007199254740993&uint64Value=18446744073709551615" +
      "&doubleValue=2.5&floatValue=-0.5&boolValue=true",
    rpc: "Echo",
    request: {
      stringValue: "a&b+c d/é",
      int32Value: -4,
      int64Value: "9007199254740993",
      uint64Value: "18446744073709551615",
      doubleValue: 2.5,
      floatValue: -0.5,
      boolValue: true,
    },
    check: (m) => expect((m as Kitchen).int64Value).toBe(9007199254740993n),
  },
  {
    name: "query: nested fields a.b=1, by JSON or proto names",
    method: "GET",
    path: "/v1/echo?nested.text=x&nested.number=3&nested.deeper.text=y&string_value=s",
    rpc: "Echo",
    request: { stringValue: "s", nested: { text: "x", number: 3, deeper: { text: "y" } } },
  },
  {
    name: "query: repeated fields as repeated keys",
    method: "GET",
    path: "/v1/echo?tags=a&tags=b&tags=c&kinds=1&kinds=KIND_BETA",
    rpc: "Echo",
    request: { tags: ["a", "b", "c"], kinds: ["KIND_ALPHA", "KIND_BETA"] },
  },
  {
    name: "query: an enum by name",
    method: "GET",
    path: "/v1/echo?kind=KIND_BETA",
    rpc: "Echo",
    request: { kind: "KIND_BETA" },
  },
  {
    name: "query: an enum by number",
    method: "GET",
    path: "/v1/echo?kind=1",
    rpc: "Echo",
    request: { kind: "KIND_ALPHA" },
  },
  {
    name: "query: bools and a wrapped bool",
    method: "GET",
    path: "/v1/echo?boolValue=true&wrappedBool=false",
    rpc: "Echo",
    request: { boolValue: true, wrappedBool: false },
  },
  {
    name: "query: well-known types Timestamp, Duration, FieldMask and wrappers",
    method: "GET",
    path: "/v1/echo?timestamp=2024-01-02T03:04:05.5Z&duration=-1.25s&fieldMask=fooBar,nested.text&wrappedInt32=7&wrappedString=s&wrapped_bool=true",
    rpc: "Echo",
    request: {
      timestamp: "2024-01-02T03:04:05.500Z",
      duration: "-1.250s",
      fieldMask: "fooBar,nested.text",
      wrappedInt32: 7,
      wrappedBool: true,
      wrappedString: "s",
    },
    check: (m) => {
      const k = m as Kitchen;
      expect(k.fieldMask?.paths).toEqual(["foo_bar", "nested.text"]);
      expect(k.timestamp?.seconds).toBe(BigInt(Date.UTC(2024, 0, 2, 3, 4, 5) / 1000));
    },
  },
  {
    name: "query: bytes in standard or URL-safe base64",
    method: "GET",
    path: "/v1/echo?bytesValue=AAEC%2Fw%3D%3D",
    rpc: "Echo",
    request: { bytesValue: "AAEC/w==" },
  },
  {
    name: "query: bytes in URL-safe base64 without padding",
    method: "GET",
    path: "/v1/echo?bytesValue=AAEC_w",
    rpc: "Echo",
    request: { bytesValue: "AAEC/w==" },
  },
  // body: "field" with a {field} path variable; the rest from the query.
  {
    name: '{field} and body "nested": the path, the body field and the query together',
    method: "PUT",
    path: "/v1/echo/hello%20world?int32Value=3&tags=x&tags=y&kind=KIND_BETA",
    body: { text: "body", deeper: { text: "d" } },
    rpc: "EchoField",
    request: { stringValue: "hello world", int32Value: 3, kind: "KIND_BETA", tags: ["x", "y"], nested: { text: "body", deeper: { text: "d" } } },
  },
  {
    name: "{field}: a single-segment variable percent-decodes everything, %2F included",
    method: "PUT",
    path: "/v1/echo/a%2Fb%3Fc%25d",
    body: {},
    rpc: "EchoField",
    request: { stringValue: "a/b?c%d", nested: {} },
  },
  {
    name: 'body "nested" absent: the body field stays unset',
    method: "PUT",
    path: "/v1/echo/x",
    rpc: "EchoField",
    request: { stringValue: "x" },
  },
  // {field=pattern} with * and **.
  {
    name: "{name=shelves/*/books/*}: a multi-segment variable",
    method: "GET",
    path: "/v1/shelves/s1/books/b%201",
    rpc: "GetBook",
    request: { name: "shelves/s1/books/b 1" },
    response: { name: "shelves/s1/books/b 1", title: "Title of shelves/s1/books/b 1", text: "Text of shelves/s1/books/b 1" },
  },
  {
    name: "{path=**}: any depth",
    method: "GET",
    path: "/v1/files/a/b/c.txt",
    rpc: "GetFile",
    request: { path: "a/b/c.txt" },
    response: { path: "a/b/c.txt" },
  },
  {
    name: "{path=**}: a multi-segment variable keeps %2F encoded and decodes the rest",
    method: "GET",
    path: "/v1/files/a%2Fb/c%20d",
    rpc: "GetFile",
    request: { path: "a%2Fb/c d" },
    response: { path: "a%2Fb/c d" },
  },
  // Custom verbs.
  {
    name: "custom verb :archive",
    method: "POST",
    path: "/v1/shelves/s1/books/b1:archive",
    body: {},
    rpc: "ArchiveBook",
    request: { name: "shelves/s1/books/b1" },
    response: { name: "shelves/s1/books/b1", archived: true },
  },
  // Nested field paths in the template.
  {
    name: "{book.name=…}: a nested field path, with the field mask from the query",
    method: "PATCH",
    path: "/v1/shelves/s1/books/b1?updateMask=title,text",
    body: { text: "t" },
    rpc: "UpdateBook",
    request: { book: { name: "shelves/s1/books/b1", text: "t" }, updateMask: "title,text" },
    response: { name: "shelves/s1/books/b1", title: "title,text", text: "t" },
    check: (m) => expect((m as UpdateBookRequest).updateMask?.paths).toEqual(["title", "text"]),
  },
  {
    name: "{book.name=…}: the path variable wins over the same field in the body; update_mask by its proto name",
    method: "PATCH",
    path: "/v1/shelves/s1/books/b1?update_mask=title",
    body: { name: "shelves/other/books/x", title: "T" },
    rpc: "UpdateBook",
    request: { book: { name: "shelves/s1/books/b1", title: "T" }, updateMask: "title" },
    response: { name: "shelves/s1/books/b1", title: "title" },
  },
  // body: "book" with other fields from the query.
  {
    name: 'body "book": the body is the field, book_id from the query (201)',
    method: "POST",
    path: "/v1/shelves/s1/books?bookId=42",
    body: { title: "T", text: "X" },
    status: 201,
    rpc: "CreateBook",
    request: { parent: "shelves/s1", book: { title: "T", text: "X" }, bookId: "42" },
    response: { name: "shelves/s1/books/42", title: "T", text: "X" },
  },
  {
    name: 'body "book": query parameters by proto name',
    method: "POST",
    path: "/v1/shelves/s2/books?book_id=7",
    body: { title: "T" },
    status: 201,
    rpc: "CreateBook",
    request: { parent: "shelves/s2", book: { title: "T" }, bookId: "7" },
    response: { name: "shelves/s2/books/7", title: "T" },
  },
  // response_body.
  {
    name: 'response_body "text": the answer is that field alone',
    method: "GET",
    path: "/v1/shelves/s1/books/b1/text",
    rpc: "GetBookText",
    request: { name: "shelves/s1/books/b1" },
    response: "Text of shelves/s1/books/b1",
  },
];

describe("mapping: google/api/http.proto", () => {
  it.each(mappingRows)("$name", async (row) => {
    const a = await call(row);
    expect(a.status, a.text).toBe(row.status ?? 200);
    expect(a.headers.get("content-type")).toMatch(/^application\/json/);
    const r = receivedBy(a, row.rpc);
    expect(toJson(r.schema, r.request)).toEqual(row.request);
    row.check?.(r.request);
    expect(a.json).toEqual(row.response ?? row.request);
  });
});

interface BadRequestRow extends Call {
  readonly name: string;
  /** mentions are what the message must name. */
  readonly mentions: string[];
}

const badRequests: BadRequestRow[] = [
  { name: "an unknown JSON field", method: "POST", path: "/v1/echo", body: { bogus: 1 }, mentions: ["bogus"] },
  { name: "an unknown nested JSON field", method: "POST", path: "/v1/echo", body: { nested: { bogus: 1 } }, mentions: ["nested.bogus"] },
  { name: "an unknown field in a body field", method: "POST", path: "/v1/shelves/s1/books", body: { bogus: 1 }, mentions: ["book.bogus"] },
  { name: "malformed JSON", method: "POST", path: "/v1/echo", body: '{"stringValue":', mentions: ["JSON"] },
  { name: "a string for an int32", method: "POST", path: "/v1/echo", body: { int32Value: "abc" }, mentions: ["int32_value"] },
  { name: "a bool for an int32", method: "POST", path: "/v1/echo", body: { int32Value: true }, mentions: ["int32_value"] },
  { name: "a fraction for an int32", method: "POST", path: "/v1/echo", body: { int32Value: 1.5 }, mentions: ["int32_value"] },
  { name: "an unknown enum name", method: "POST", path: "/v1/echo", body: { kind: "KIND_NOPE" }, mentions: ["kind", "KIND_NOPE"] },
  { name: "a bad timestamp", method: "POST", path: "/v1/echo", body: { timestamp: "yesterday" }, mentions: ["timestamp"] },
  { name: 'a body "*" that is not an object', method: "POST", path: "/v1/echo", body: [1], mentions: ["object"] },
  { name: "a body field of the wrong type", method: "PUT", path: "/v1/echo/x", body: '"text"', mentions: ["nested"] },
  { name: "an unknown query parameter", method: "GET", path: "/v1/echo?bogus=1", mentions: ["bogus"] },
  { name: "an unknown nested query parameter", method: "GET", path: "/v1/echo?nested.bogus=1", mentions: ["nested.bogus"] },
  { name: "a query bool that is not true or false", method: "GET", path: "/v1/echo?boolValue=yes", mentions: ["boolValue", "yes"] },
  { name: "a query number that is not a number", method: "GET", path: "/v1/echo?int32Value=abc", mentions: ["int32_value"] },
  { name: "an int64 out of range", method: "GET", path: "/v1/echo?int64Value=9223372036854775808", mentions: ["int64_value"] },
  { name: "an unknown query enum name", method: "GET", path: "/v1/echo?kind=KIND_NOPE", mentions: ["kind"] },
  { name: "two values for a singular query field", method: "GET", path: "/v1/echo?int32Value=1&int32Value=2", mentions: ["int32Value"] },
  { name: "a bad query duration", method: "GET", path: "/v1/echo?duration=5", mentions: ["duration"] },
  { name: "a query parameter on a body \"*\" route", method: "POST", path: "/v1/echo?stringValue=x", body: {}, mentions: ["stringValue"] },
  { name: "a query parameter that sets the body field", method: "PUT", path: "/v1/echo/x?nested.text=y", body: {}, mentions: ["nested.text"] },
];

describe("errors: strict requests are 400 with a Status naming the problem", () => {
  it.each(badRequests)("$name", async (row) => {
    const a = await call(row);
    expectStatus(a, 400, Code.InvalidArgument, ...row.mentions);
    expect(received.has(a.requestId), "the backend must not be called").toBe(false);
  });

  it("a protovalidate violation is 400 with its violations as details", async () => {
    const a = await call({ method: "POST", path: "/v1/echo", body: { validated: "too long" } });
    const body = expectStatus(a, 400, Code.InvalidArgument, "validated");
    expect(body.details).toEqual([expect.objectContaining({ "@type": "type.googleapis.com/buf.validate.Violations" })]);
  });
});

interface RouteRow extends Call {
  readonly name: string;
  readonly status: 404 | 405;
  readonly allow?: string;
}

const routeRows: RouteRow[] = [
  { name: "an unknown path", method: "GET", path: "/v2/nothing", status: 404 },
  { name: "a prefix of a template", method: "GET", path: "/v1/shelves/s1", status: 404 },
  { name: "a trailing segment too many", method: "GET", path: "/v1/shelves/s1/books/b1/text/more", status: 404 },
  { name: "a wrong method on a path with two bindings", method: "DELETE", path: "/v1/echo", status: 405, allow: "GET, POST" },
  { name: "a wrong method on a book", method: "DELETE", path: "/v1/shelves/s1/books/b1", status: 405, allow: "GET, PATCH" },
  { name: "a wrong method on a ** path", method: "PUT", path: "/v1/files/a/b", body: {}, status: 405, allow: "GET" },
  { name: "GET on a POST-only path", method: "GET", path: "/v1/metadata", status: 405, allow: "POST" },
];

describe("errors: routing", () => {
  it.each(routeRows)("$name → $status", async (row) => {
    const a = await call(row);
    if (row.status === 404) {
      expectStatus(a, 404, Code.NotFound, row.path);
      expect(a.headers.get("allow")).toBeNull();
    } else {
      expectStatus(a, 405, Code.Unimplemented, row.method);
      expect(a.headers.get("allow")).toBe(row.allow);
    }
  });
});

const codeRows: { code: Code; name: string; http: number }[] = [
  { code: Code.Canceled, name: "CANCELLED", http: 499 },
  { code: Code.Unknown, name: "UNKNOWN", http: 500 },
  { code: Code.InvalidArgument, name: "INVALID_ARGUMENT", http: 400 },
  { code: Code.DeadlineExceeded, name: "DEADLINE_EXCEEDED", http: 504 },
  { code: Code.NotFound, name: "NOT_FOUND", http: 404 },
  { code: Code.AlreadyExists, name: "ALREADY_EXISTS", http: 409 },
  { code: Code.PermissionDenied, name: "PERMISSION_DENIED", http: 403 },
  { code: Code.ResourceExhausted, name: "RESOURCE_EXHAUSTED", http: 429 },
  { code: Code.FailedPrecondition, name: "FAILED_PRECONDITION", http: 400 },
  { code: Code.Aborted, name: "ABORTED", http: 409 },
  { code: Code.OutOfRange, name: "OUT_OF_RANGE", http: 400 },
  { code: Code.Unimplemented, name: "UNIMPLEMENTED", http: 501 },
  { code: Code.Internal, name: "INTERNAL", http: 500 },
  { code: Code.Unavailable, name: "UNAVAILABLE", http: 503 },
  { code: Code.DataLoss, name: "DATA_LOSS", http: 500 },
  { code: Code.Unauthenticated, name: "UNAUTHENTICATED", http: 401 },
];

describe("errors: gRPC status → HTTP status", () => {
  it.each(codeRows)("$name ($code) → $http", async ({ code, name, http }) => {
    const a = await call({ method: "POST", path: "/v1/fail", body: { code, message: `failed with ${name} ✓` } });
    expect(a.status, a.text).toBe(http);
    expect(a.json).toEqual({ code, message: `failed with ${name} ✓`, details: [] });
    expect(a.headers.get("www-authenticate") !== null).toBe(code === Code.Unauthenticated);
    expect(a.headers.get("retry-after")).toBeNull();
    expect(a.headers.get("x-request-id")).toBe(a.requestId);
  });

  it("UNAUTHENTICATED carries a WWW-Authenticate challenge", async () => {
    const a = await call({ method: "POST", path: "/v1/fail", body: { code: Code.Unauthenticated, message: "who are you" } });
    expect(a.status).toBe(401);
    expect(a.headers.get("www-authenticate")).toMatch(/^Bearer\b/);
  });

  interface DetailRow {
    readonly name: string;
    readonly request: Record<string, JsonValue>;
    readonly details: JsonValue[];
    readonly retryAfter: string | null;
  }
  const detailRows: DetailRow[] = [
    {
      name: "ErrorInfo",
      request: { code: Code.FailedPrecondition, message: "m", reason: "BOOK_LOCKED" },
      details: [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "BOOK_LOCKED", domain: "conformance.raptorflow.ai" }],
      retryAfter: null,
    },
    {
      name: "BadRequest",
      request: { code: Code.InvalidArgument, message: "m", badField: "book.title" },
      details: [{ "@type": "type.googleapis.com/google.rpc.BadRequest", fieldViolations: [{ field: "book.title", description: "is wrong" }] }],
      retryAfter: null,
    },
    {
      name: "RetryInfo, whole seconds → Retry-After",
      request: { code: Code.Unavailable, message: "m", retryDelay: "2s" },
      details: [{ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "2s" }],
      retryAfter: "2",
    },
    {
      name: "RetryInfo, a fraction rounds up → Retry-After",
      request: { code: Code.ResourceExhausted, message: "m", retryDelay: "2.5s" },
      details: [{ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "2.500s" }],
      retryAfter: "3",
    },
    {
      name: "ErrorInfo, RetryInfo and BadRequest together, in order",
      request: { code: Code.ResourceExhausted, message: "m", reason: "QUOTA", retryDelay: "10s", badField: "x" },
      details: [
        { "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "QUOTA", domain: "conformance.raptorflow.ai" },
        { "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "10s" },
        { "@type": "type.googleapis.com/google.rpc.BadRequest", fieldViolations: [{ field: "x", description: "is wrong" }] },
      ],
      retryAfter: "10",
    },
  ];

  it.each(detailRows)("upstream details are preserved: $name", async ({ request, details, retryAfter }) => {
    const a = await call({ method: "POST", path: "/v1/fail", body: request });
    expect(a.json).toEqual({ code: request.code, message: "m", details });
    expect(a.headers.get("retry-after")).toBe(retryAfter);
  });
});

/** stream reads a streaming answer to its end. */
async function stream(path: string, accept?: string, headers: Record<string, string> = {}): Promise<Answer> {
  return call({ method: "GET", path, headers: accept ? { accept, ...headers } : headers });
}

const ndjson = (text: string): JsonValue[] =>
  text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as JsonValue);

/** sse parses Server-Sent Events into {event, data}. */
const sse = (text: string): { event: string; data: JsonValue }[] =>
  text
    .split("\n\n")
    .filter((e) => e.trim() !== "")
    .map((e) => {
      let event = "message";
      const data: string[] = [];
      for (const line of e.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      return { event, data: JSON.parse(data.join("\n")) as JsonValue };
    });

const book = (i: number, shelf = "shelves/s1") => ({ name: `${shelf}/books/${i}` });
const internalStatus = { code: Code.Internal, message: "stream failed on purpose", details: [] };

describe("streaming", () => {
  const framings = [
    {
      framing: "NDJSON",
      accept: undefined,
      contentType: /^application\/x-ndjson/,
      frames: (a: Answer) => ndjson(a.text),
      result: (b: JsonValue) => ({ result: b }),
      error: (s: JsonValue) => ({ error: s }),
    },
    {
      framing: "SSE",
      accept: "text/event-stream",
      contentType: /^text\/event-stream/,
      frames: (a: Answer) => sse(a.text) as unknown as JsonValue[],
      result: (b: JsonValue) => ({ event: "message", data: b }),
      error: (s: JsonValue) => ({ event: "error", data: s }),
    },
  ];

  it.each(framings)("$framing: every message, in order, with the upstream's headers", async (f) => {
    const a = await stream("/v1/shelves/s1/books:stream?count=3", f.accept);
    expect(a.status).toBe(200);
    expect(a.headers.get("content-type")).toMatch(f.contentType);
    expect(a.headers.get("grpc-metadata-x-stream")).toBe("books");
    expect(a.headers.get("x-request-id")).toBe(a.requestId);
    expect(f.frames(a)).toEqual([0, 1, 2].map((i) => f.result(book(i))));
  });

  it.each(framings)("$framing: an empty stream is a 200 with no frames", async (f) => {
    const a = await stream("/v1/shelves/s1/books:stream?count=0", f.accept);
    expect(a.status).toBe(200);
    expect(a.headers.get("content-type")).toMatch(f.contentType);
    expect(f.frames(a)).toEqual([]);
  });

  it.each(framings)("$framing: a mid-stream error is the last frame, as a Status", async (f) => {
    const a = await stream("/v1/shelves/s2/books:stream?count=5&failAfter=2", f.accept);
    expect(a.status).toBe(200);
    expect(f.frames(a)).toEqual([f.result(book(0, "shelves/s2")), f.result(book(1, "shelves/s2")), f.error(internalStatus)]);
  });

  it.each(framings)("$framing: an upstream error before the first message gets its own HTTP status and Status body", async (f) => {
    const a = await stream("/v1/shelves/forbidden/books:stream?count=3", f.accept);
    expectStatus(a, 403, Code.PermissionDenied, "no access");
    expect(a.headers.get("x-request-id")).toBe(a.requestId);
  });

  it.each(framings)("$framing: a first message over the response limit is a 502", async (f) => {
    const a = await stream("/v1/shelves/s1/books:stream?count=3&textBytes=300000", f.accept);
    expectStatus(a, 502, Code.ResourceExhausted, "limit");
  });

  it.each(framings)("$framing: an error before the first message (the deadline) gets its own HTTP status and Status body", async (f) => {
    const a = await stream("/v1/shelves/slow/books:stream?count=2&interval=30s", f.accept, { "grpc-timeout": "50m" });
    expectStatus(a, 504, Code.DeadlineExceeded);
    expect(a.headers.get("x-request-id")).toBe(a.requestId);
  });

  it.each(framings)("$framing: a client that disconnects mid-stream cancels the upstream call", async (f) => {
    const parent = `shelves/gone-${f.framing.toLowerCase()}`;
    const ac = new AbortController();
    const res = await fetch(`${base}/v1/${parent}/books:stream?count=1000&interval=0.05s`, {
      headers: f.accept ? { accept: f.accept } : {},
      signal: ac.signal,
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain(`${parent}/books/0`);
    expect(cancelledStreams.has(parent)).toBe(false);
    ac.abort();
    await reader.cancel().catch(() => undefined);
    for (let i = 0; i < 200 && !cancelledStreams.has(parent); i++) await sleep(25);
    expect(cancelledStreams.has(parent), "the backend saw no cancellation").toBe(true);
  });

  it("a stream that ends normally is not reported as cancelled (control for the disconnect test)", async () => {
    const a = await stream("/v1/shelves/complete/books:stream?count=2&interval=0.01s");
    expect(ndjson(a.text)).toHaveLength(2);
    await sleep(50);
    expect(cancelledStreams.has("shelves/complete")).toBe(false);
  });
});

describe("headers", () => {
  const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

  /** metadataCall calls EchoMetadata; the answer holds the metadata and the deadline the backend saw. */
  const metadataCall = async (headers: Record<string, string>, responseMetadata: Record<string, string> = {}) => {
    const a = await call({ method: "POST", path: "/v1/metadata", body: { responseMetadata }, headers });
    expect(a.status, a.text).toBe(200);
    const body = a.json as { metadata: Record<string, string>; timeoutMs: string };
    return { a, metadata: body.metadata, timeoutMs: Number(body.timeoutMs) };
  };

  interface HeaderRow {
    readonly name: string;
    readonly headers: Record<string, string>;
    /** metadata the backend must have seen. */
    readonly metadata: Record<string, string>;
  }
  const rows: HeaderRow[] = [
    { name: "Authorization → authorization", headers: { authorization: "Bearer tok-123" }, metadata: { authorization: "Bearer tok-123" } },
    { name: "Grpc-Metadata-<Key> → <key>", headers: { "Grpc-Metadata-Tenant": "acme" }, metadata: { tenant: "acme" } },
    {
      name: "Grpc-Metadata- with a dashed key",
      headers: { "Grpc-Metadata-X-Api-Client": "sdk/1.2" },
      metadata: { "x-api-client": "sdk/1.2" },
    },
    { name: "X-Request-Id passes through", headers: { "x-request-id": "req-conformance-1" }, metadata: { "x-request-id": "req-conformance-1" } },
    { name: "traceparent passes through", headers: { traceparent }, metadata: { traceparent } },
  ];

  it.each(rows)("$name", async ({ headers, metadata }) => {
    const r = await metadataCall(headers);
    expect(r.metadata).toMatchObject(metadata);
  });

  it("X-Request-Id and traceparent are returned on the response", async () => {
    const { a } = await metadataCall({ "x-request-id": "req-conformance-2", traceparent });
    expect(a.headers.get("x-request-id")).toBe("req-conformance-2");
    expect(a.headers.get("traceparent")).toBe(traceparent);
  });

  it("X-Request-Id and traceparent are made when absent: the backend and the client see the same ones", async () => {
    const res = await fetch(`${base}/v1/metadata`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { metadata: Record<string, string> };
    const id = res.headers.get("x-request-id");
    const tp = res.headers.get("traceparent");
    expect(id).toMatch(/\S+/);
    expect(tp).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/);
    expect(body.metadata["x-request-id"]).toBe(id);
    expect(body.metadata.traceparent).toBe(tp);
  });

  it("two requests without ids get different ones", async () => {
    const ids = await Promise.all(
      [1, 2].map(async () => (await fetch(`${base}/v1/metadata`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).headers),
    );
    expect(ids[0].get("x-request-id")).not.toBe(ids[1].get("x-request-id"));
    expect(ids[0].get("traceparent")).not.toBe(ids[1].get("traceparent"));
  });

  it("Grpc-Timeout sets the upstream deadline", async () => {
    const r = await metadataCall({ "grpc-timeout": "500m" });
    expect(r.timeoutMs).toBeGreaterThan(0);
    expect(r.timeoutMs).toBeLessThanOrEqual(500);
  });

  it("without Grpc-Timeout the upstream gets the default deadline", async () => {
    const r = await metadataCall({});
    expect(r.timeoutMs).toBeGreaterThan(500);
    expect(r.timeoutMs).toBeLessThanOrEqual(5000);
  });

  it("a malformed Grpc-Timeout is 400 naming it", async () => {
    const a = await call({ method: "POST", path: "/v1/metadata", body: {}, headers: { "grpc-timeout": "soon" } });
    expectStatus(a, 400, Code.InvalidArgument, "Grpc-Timeout");
    expect(received.has(a.requestId)).toBe(false);
  });

  it("upstream response metadata comes back as Grpc-Metadata-<Key>, trailers as Grpc-Trailer-<Key>", async () => {
    const { a } = await metadataCall({}, { "x-served-by": "echo", shelf: "s1" });
    expect(a.headers.get("grpc-metadata-x-served-by")).toBe("echo");
    expect(a.headers.get("grpc-metadata-shelf")).toBe("s1");
    expect(a.headers.get("grpc-trailer-x-echo-trailer")).toBe("done");
    expect(a.headers.get("grpc-metadata-x-echo-trailer")).toBeNull();
  });
});

describe("success codes", () => {
  const rows = [
    { name: "CreateBook (success_code 201)", method: "POST", path: "/v1/shelves/s1/books", body: { title: "T" }, status: 201 },
    { name: "Echo, primary binding", method: "POST", path: "/v1/echo", body: {}, status: 200 },
    { name: "Echo, additional binding", method: "GET", path: "/v1/echo", status: 200 },
    { name: "UpdateBook", method: "PATCH", path: "/v1/shelves/s1/books/b1", body: {}, status: 200 },
    { name: "ArchiveBook", method: "POST", path: "/v1/shelves/s1/books/b1:archive", body: {}, status: 200 },
    { name: "GetBook", method: "GET", path: "/v1/shelves/s1/books/b1", status: 200 },
  ];
  it.each(rows)("$name → $status", async (row) => {
    const a = await call(row);
    expect(a.status, a.text).toBe(row.status);
  });
});

describe("limits", () => {
  it("a request body over maxRequestBytes is 413 with a Status body, and never reaches the backend", async () => {
    const a = await call({ method: "POST", path: "/v1/echo", body: { stringValue: "x".repeat(64 * 1024) } });
    expectStatus(a, 413, Code.ResourceExhausted);
    expect(received.has(a.requestId)).toBe(false);
  });

  it("a request body just under maxRequestBytes is served", async () => {
    const stringValue = "x".repeat(64 * 1024 - 100);
    const a = await call({ method: "POST", path: "/v1/echo", body: { stringValue } });
    expect(a.status).toBe(200);
    expect(a.json).toEqual({ stringValue });
  });

  it("a response over maxResponseBytes is 502 with a Status body", async () => {
    // 30 000 zeros (about 60 KiB in) echo back as 30 000 "KIND_UNSPECIFIED" (about 570 KiB out).
    const a = await call({ method: "POST", path: "/v1/echo", body: { kinds: new Array(30_000).fill(0) } });
    expectStatus(a, 502, Code.ResourceExhausted, String(256 * 1024));
    expect(received.has(a.requestId)).toBe(true);
  });

  it("an upstream RESOURCE_EXHAUSTED stays 429, not the response-limit 502", async () => {
    const a = await call({ method: "POST", path: "/v1/fail", body: { code: Code.ResourceExhausted, message: "quota" } });
    expect(a.status).toBe(429);
  });
});

describe("fixed after review", () => {
  it("a query parameter cannot override a path variable, in either spelling", async () => {
    for (const q of ["stringValue", "string_value"]) {
      const a = await call({ method: "PUT", path: `/v1/echo/frompath?${q}=fromquery`, body: {} });
      expectStatus(a, 400, Code.InvalidArgument, q, "path");
    }
  });

  it("errors answered before routing or body parsing carry the request's id and trace", async () => {
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    for (const c of [
      { method: "GET", path: "/v1/nowhere" },
      { method: "DELETE", path: "/v1/echo" },
      { method: "POST", path: "/v1/echo", body: "{not json" },
      { method: "POST", path: "/v1/echo", body: JSON.stringify({ stringValue: "x".repeat(70 * 1024) }) },
    ]) {
      const a = await call({ ...c, headers: { traceparent } });
      expect(a.status).toBeGreaterThanOrEqual(400);
      expect(a.headers.get("x-request-id")).toBe(a.requestId);
      expect(a.headers.get("traceparent")).toBe(traceparent);
    }
  });
});

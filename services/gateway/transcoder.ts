import {
  create,
  createRegistry,
  fromJson,
  getOption,
  hasOption,
  toJson,
  type DescField,
  type DescMessage,
  type DescMethod,
  type DescMethodStreaming,
  type DescMethodUnary,
  type DescService,
  type JsonObject,
  type JsonValue,
  type Registry,
} from "@bufbuild/protobuf";
import { AnySchema, anyPack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { createAsyncIterable } from "@connectrpc/connect/protocol";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { http } from "../../gen/google/api/annotations_pb.js";
import type { HttpRule } from "../../gen/google/api/http_pb.js";
import { file_google_rpc_error_details } from "../../gen/google/rpc/error_details_pb.js";
import { forwardHeaders } from "../../mesh/call-context.js";
import { httpStatusOf } from "./http-status.js";
import { compilePathTemplate, type PathTemplate } from "./path-template.js";

/** TranscodedService is a gRPC service the gateway exposes over REST, and where to send its calls. */
export interface TranscodedService {
  /** service is the descriptor whose `google.api.http` options define the routes. */
  readonly service: DescService;
  /** transport reaches the upstream (grpc-js in the mesh). */
  readonly transport: Transport;
}

/** TranscoderOptions configure the REST transcoder. */
export interface TranscoderOptions {
  /** services to expose. */
  readonly services: readonly TranscodedService[];
  /** timeoutMs is the deadline of upstream calls. */
  readonly timeoutMs: number;
}

/** Binding is one REST route of one RPC. */
export interface Binding {
  /** httpMethod is GET, POST, … */
  readonly httpMethod: string;
  /** template is the compiled path. */
  readonly template: PathTemplate;
  /** body is "", "*" or a top-level field name. */
  readonly body: string;
  /** responseBody is "" or the response field to return. */
  readonly responseBody: string;
  /** method is the RPC. */
  readonly method: DescMethod;
  /** transport reaches its service. */
  readonly transport: Transport;
}

/**
 * bindingsOf reads the `google.api.http` option (with its
 * additional_bindings) of every method of the services: the REST surface
 * comes from the contract, never from hand-written routes.
 */
export function bindingsOf(services: readonly TranscodedService[]): Binding[] {
  const out: Binding[] = [];
  for (const { service, transport } of services) {
    for (const method of service.methods) {
      if (!hasOption(method, http)) continue;
      const rule = getOption(method, http);
      for (const r of [rule, ...rule.additionalBindings]) {
        const b = bindingOf(r, method, transport);
        if (b) out.push(b);
      }
    }
  }
  return out;
}

function bindingOf(rule: HttpRule, method: DescMethod, transport: Transport): Binding | undefined {
  const p = rule.pattern;
  let httpMethod: string;
  let path: string;
  switch (p.case) {
    case "get":
    case "put":
    case "post":
    case "delete":
    case "patch":
      httpMethod = p.case.toUpperCase();
      path = p.value;
      break;
    case "custom":
      httpMethod = p.value.kind.toUpperCase();
      path = p.value.path;
      break;
    default:
      return undefined;
  }
  return { httpMethod, template: compilePathTemplate(path), body: rule.body, responseBody: rule.responseBody, method, transport };
}

/**
 * restTranscoder is the fastify plugin that serves the REST bindings: it
 * matches the URL against the compiled templates, builds the request message
 * from path variables, query parameters and body (protobuf JSON mapping),
 * calls the upstream over gRPC and answers with JSON. Errors are
 * `google.rpc.Status` JSON with the HTTP status of the gRPC code.
 */
export function restTranscoder(options: TranscoderOptions) {
  const bindings = bindingsOf(options.services);
  const registry = registryOf(options.services.map((s) => s.service));
  return async function plugin(app: FastifyInstance): Promise<void> {
    // Malformed or empty JSON bodies and the like answer as every other
    // error does: google.rpc.Status JSON (scoped to this plugin's routes).
    app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
      const clientError = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500;
      const e = clientError
        ? new ConnectError(err.message, Code.InvalidArgument)
        : new ConnectError("internal error", Code.Internal, undefined, undefined, err);
      return sendError(reply, e, registry, clientError ? err.statusCode : 500);
    });
    app.route({
      method: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
      url: "/*",
      handler: async (request, reply) => {
        const path = request.url.split("?")[0];
        let binding: Binding | undefined;
        let vars: Map<string, string> | undefined;
        // HEAD is GET without a body (fastify drops the body).
        const httpMethod = request.method === "HEAD" ? "GET" : request.method;
        const allowed = new Set<string>();
        for (const b of bindings) {
          const m = b.template.match(path);
          if (!m) continue;
          allowed.add(b.httpMethod);
          if (b.httpMethod !== httpMethod || binding) continue;
          binding = b;
          vars = m;
        }
        if (!binding || !vars) {
          if (allowed.size === 0) return sendError(reply, new ConnectError(`no route for ${request.method} ${path}`, Code.NotFound), registry, 404);
          reply.header("allow", [...allowed].sort().join(", "));
          return sendError(reply, new ConnectError(`method ${request.method} is not allowed on ${path}`, Code.Unimplemented), registry, 405);
        }
        try {
          const message = requestMessage(binding, vars, request);
          const headers = forwardHeaders(new Headers(request.headers as Record<string, string>));
          const signal = abortOnClose(reply);
          if (binding.method.methodKind === "unary") {
            const res = await binding.transport.unary(binding.method as DescMethodUnary, signal, options.timeoutMs, headers, message);
            return reply.type("application/json").send(responseJson(binding, res.message, registry));
          }
          if (binding.method.methodKind === "server_streaming") {
            const res = await binding.transport.stream(binding.method as DescMethodStreaming, signal, options.timeoutMs, headers, createAsyncIterable([message]));
            return await streamNdjson(reply, binding, res.message, registry);
          }
          throw new ConnectError(`${binding.method.name} streams requests and has no REST form`, Code.Unimplemented);
        } catch (e) {
          return sendError(reply, ConnectError.from(e), registry);
        }
      },
    });
  };
}

function abortOnClose(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  // The response closing before it finished means the client went away: cancel upstream.
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) ac.abort();
  });
  return ac.signal;
}

/** requestMessage builds the request from body, path variables and query, per http.proto. */
function requestMessage(b: Binding, vars: Map<string, string>, request: FastifyRequest) {
  const input = b.method.input;
  const json: JsonObject = {};
  const body = (request.body ?? undefined) as JsonValue | undefined;
  if (b.body === "*") {
    if (body !== undefined && (typeof body !== "object" || body === null || Array.isArray(body))) {
      throw new ConnectError("the request body must be a JSON object", Code.InvalidArgument);
    }
    Object.assign(json, body ?? {});
  } else if (b.body !== "") {
    const f = input.fields.find((x) => x.name === b.body);
    if (!f) throw new ConnectError(`body field "${b.body}" is not in ${input.typeName}`, Code.Internal);
    if (body !== undefined) json[f.jsonName] = body;
  }
  for (const [fieldPath, value] of vars) setPath(json, input, fieldPath.split("."), [value], fieldPath);
  if (b.body !== "*") {
    const query = (request.query ?? {}) as Record<string, string | string[]>;
    for (const [key, value] of Object.entries(query)) {
      if (vars.has(key)) continue;
      setPath(json, input, key.split("."), Array.isArray(value) ? value : [value], key);
    }
  }
  try {
    return fromJson(input, json, { ignoreUnknownFields: false });
  } catch (e) {
    const field = badField(input, json, "");
    throw new ConnectError(`invalid request${field ? ` field "${field}"` : ""}: ${(e as Error).message}`, Code.InvalidArgument);
  }
}

/**
 * badField finds the field a JSON request fails on, so the 400 names it
 * (protobuf-es's decoder does not always say which field held a bad enum or
 * number). It decodes one key at a time and descends into nested messages.
 */
function badField(message: DescMessage, json: JsonObject, prefix: string): string | undefined {
  for (const [key, value] of Object.entries(json)) {
    try {
      fromJson(message, { [key]: value }, { ignoreUnknownFields: false });
      continue;
    } catch {
      const field = message.fields.find((f) => f.name === key || f.jsonName === key);
      const path = `${prefix}${field?.name ?? key}`;
      if (field?.fieldKind === "message" && value !== null && typeof value === "object" && !Array.isArray(value)) {
        return badField(field.message, value, `${path}.`) ?? path;
      }
      return path;
    }
  }
  return undefined;
}

/** setPath puts string values at a field path, converted to the JSON form the field's type takes. */
function setPath(json: JsonObject, message: DescMessage, path: string[], values: string[], source: string): void {
  const [head, ...rest] = path;
  const field = message.fields.find((f) => f.name === head || f.jsonName === head);
  if (!field) throw new ConnectError(`${source}: no field "${head}" in ${message.typeName}`, Code.InvalidArgument);
  if (rest.length > 0) {
    if (field.fieldKind !== "message" || field.message.typeName.startsWith("google.protobuf.")) {
      throw new ConnectError(`${source}: "${head}" has no fields`, Code.InvalidArgument);
    }
    const child = (json[field.jsonName] ??= {}) as JsonObject;
    setPath(child, field.message, rest, values, source);
    return;
  }
  const conv = values.map((v) => scalarJson(field, v, source));
  if (field.fieldKind === "list") {
    const prev = (json[field.jsonName] as JsonValue[] | undefined) ?? [];
    json[field.jsonName] = [...prev, ...conv];
  } else {
    if (conv.length > 1) throw new ConnectError(`${source}: "${head}" takes one value, got ${conv.length}`, Code.InvalidArgument);
    json[field.jsonName] = conv[0];
  }
}

function scalarJson(field: DescField, v: string, source: string): JsonValue {
  if (field.fieldKind === "map") throw new ConnectError(`${source}: map fields cannot be set from the URL`, Code.InvalidArgument);
  const kind = field.fieldKind === "list" ? field.listKind : field.fieldKind;
  if (kind === "enum") return /^-?\d+$/.test(v) ? Number(v) : v;
  if (kind === "message") {
    // Well-known types with a string JSON form (Timestamp, Duration, FieldMask) and wrappers.
    return v;
  }
  if (kind === "scalar") {
    const t = field.fieldKind === "list" ? field.scalar : field.fieldKind === "scalar" ? field.scalar : undefined;
    // ScalarType.BOOL is 8.
    if (t === 8) {
      if (v === "true" || v === "false") return v === "true";
      throw new ConnectError(`${source}: "${v}" is not a bool (true or false)`, Code.InvalidArgument);
    }
  }
  return v;
}

function responseJson(b: Binding, message: Parameters<typeof toJson>[1], registry: Registry): JsonValue {
  const json = toJson(b.method.output, message, { registry }) as JsonObject;
  if (b.responseBody === "") return json;
  const f = b.method.output.fields.find((x) => x.name === b.responseBody);
  return f ? (json[f.jsonName] ?? null) : json;
}

async function streamNdjson(
  reply: FastifyReply,
  b: Binding,
  messages: AsyncIterable<Parameters<typeof toJson>[1]>,
  registry: Registry,
): Promise<FastifyReply> {
  // Wait for the first message before sending headers: an error before it
  // still gets its own HTTP status, like any unary error.
  const it = messages[Symbol.asyncIterator]();
  let next = await it.next();
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
  try {
    for (; !next.done; next = await it.next()) {
      if (!res.write(`${JSON.stringify({ result: responseJson(b, next.value, registry) })}\n`)) {
        await new Promise((r) => res.once("drain", r));
      }
    }
  } catch (e) {
    // Headers are gone: the error travels in-band as the last line, as grpc-gateway does.
    res.write(`${JSON.stringify({ error: statusJson(ConnectError.from(e), registry) })}\n`);
  }
  res.end();
  return reply;
}

/** statusJson renders an error as google.rpc.Status JSON, details as typed Any values. */
export function statusJson(err: ConnectError, registry: Registry): JsonObject {
  const details: JsonValue[] = [];
  for (const d of err.details) {
    try {
      const any =
        "desc" in d
          ? anyPack(d.desc, create(d.desc, d.value))
          : create(AnySchema, { typeUrl: `type.googleapis.com/${d.type}`, value: d.value });
      details.push(toJson(AnySchema, any, { registry }));
    } catch {
      // A detail of a type this gateway does not know is left out rather than failing the answer.
    }
  }
  return { code: err.code, message: err.rawMessage, details };
}

function sendError(reply: FastifyReply, err: ConnectError, registry: Registry, status?: number): FastifyReply {
  if (err.cause !== undefined && err.code === Code.Internal) reply.log.error({ err: err.cause }, "internal error");
  return reply.code(status ?? httpStatusOf(err.code)).type("application/json").send(statusJson(err, registry));
}

/** registryOf holds every type the services' files reach, for Any details and JSON. */
export function registryOf(services: readonly DescService[]): Registry {
  const files = new Map<string, DescService["file"]>();
  const add = (f: DescService["file"]): void => {
    if (files.has(f.name)) return;
    files.set(f.name, f);
    f.dependencies.forEach(add);
  };
  services.forEach((s) => add(s.file));
  return createRegistry(...files.values(), file_google_rpc_error_details);
}

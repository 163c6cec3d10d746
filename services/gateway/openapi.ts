import {
  getOption,
  hasOption,
  isFieldSet,
  ScalarType,
  type DescEnum,
  type DescEnumValue,
  type DescField,
  type DescFile,
  type DescMessage,
  type DescMethod,
  type DescService,
} from "@bufbuild/protobuf";
import type { Transport } from "@connectrpc/connect";
import {
  field as fieldRulesExt,
  FieldRulesSchema,
  Ignore,
  RepeatedRulesSchema,
  MapRulesSchema,
  StringRulesSchema,
  type FieldRules,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { field_behavior, FieldBehavior } from "../../gen/google/api/field_behavior_pb.js";
import { bindingsOf, type Binding } from "./transcoder.js";

/** OpenApiOptions say what to document and how to title it. */
export interface OpenApiOptions {
  /** services whose `google.api.http` bindings are the REST surface. */
  readonly services: readonly DescService[];
  /** title of the API (`info.title`). */
  readonly title: string;
  /** version of the document (`info.version`). */
  readonly version: string;
  /** serverUrl, when given, is the only entry of `servers`; without it clients use the document's origin. */
  readonly serverUrl?: string;
}

type Json = Record<string, unknown>;

const STATUS_SCHEMA = "google.rpc.Status";
const ERROR_RESPONSE = "Error";

/**
 * openApiDocument builds an OpenAPI 3.1.0 document of the REST routes the
 * gateway's transcoder serves, purely from the protobuf descriptors: one
 * operation per `google.api.http` binding (additional_bindings included, read
 * by the transcoder's own `bindingsOf`), request and response schemas in the
 * canonical proto3 JSON mapping, `buf.validate` rules where JSON Schema has
 * the same rule, and `google.rpc.Status` as the error answer.
 *
 * Descriptors embedded by protoc-gen-es carry no comments; descriptors that
 * do (a `buf build` image) lend theirs to summaries and descriptions.
 */
export function openApiDocument(options: OpenApiOptions): object {
  const builder = new SchemaBuilder();
  const paths = new PathTable();
  const tags: Json[] = [];
  const opIds = new Set<string>();
  for (const service of options.services) {
    tags.push({ name: service.name, description: commentOf(service) ?? `\`${service.typeName}\`` });
    // bindingsOf needs a transport per service to build routes; nothing is called here.
    const bindings = bindingsOf([{ service, transport: NO_TRANSPORT }]);
    const seen = new Map<DescMethod, number>();
    for (const b of bindings) {
      const index = seen.get(b.method) ?? 0;
      seen.set(b.method, index + 1);
      let opId = `${service.name}_${b.method.name}${index === 0 ? "" : `_${index}`}`;
      for (let n = 2; opIds.has(opId); n++) opId = `${service.name}_${b.method.name}_${index}_${n}`;
      opIds.add(opId);
      paths.add(b, (route) => operation(b, route, opId, index, builder));
    }
  }
  const doc: Json = {
    openapi: "3.1.0",
    info: { title: options.title, version: options.version },
  };
  if (options.serverUrl !== undefined) doc.servers = [{ url: options.serverUrl }];
  doc.tags = tags;
  doc.paths = paths.toJson();
  doc.components = {
    schemas: builder.components(),
    responses: {
      [ERROR_RESPONSE]: {
        description:
          "An error: `google.rpc.Status` JSON, answered with the HTTP status of its gRPC code (INVALID_ARGUMENT 400, NOT_FOUND 404, …).",
        content: { "application/json": { schema: { $ref: schemaRef(STATUS_SCHEMA) } } },
      },
    },
  };
  return doc;
}

/** NO_TRANSPORT stands in for the transport `bindingsOf` wants; the document never calls it. */
const NO_TRANSPORT = new Proxy({} as Transport, {
  get() {
    throw new Error("openApiDocument does not call services");
  },
});

// ---------------------------------------------------------------------------
// Paths

/** Segment is one part of a parsed path template. */
type Segment = { kind: "literal"; text: string } | { kind: "var"; field: string; sub: string[] } | { kind: "wild"; text: "*" | "**" };

/** Route is one binding's OpenAPI path and how its template variables are named in it. */
interface Route {
  readonly path: string;
  /** params are the path parameters in URL order. */
  readonly params: readonly RouteParam[];
}

interface RouteParam {
  /** name in the OpenAPI path. */
  readonly name: string;
  /** field is the request field path it fills, or undefined for an unnamed wildcard. */
  readonly field: string | undefined;
  /** segments is what the parameter matches (`runs/*`). */
  readonly segments: readonly string[];
  /** of says the parameter is part of a variable expanded into the path (name and segment index). */
  readonly of?: { readonly field: string; readonly template: string };
}

/**
 * PathTable gathers the path items. OpenAPI holds templated paths that differ
 * only in their variable names (`/api/{name}`, `/api/{icp.name}`) to be the
 * same path, so such bindings share one path item and the first one's names;
 * a second binding of the same method on the same path has its variables'
 * segments spelled out in the path instead.
 */
class PathTable {
  private readonly items = new Map<string, { path: string; names: string[]; ops: Map<string, Json> }>();

  add(b: Binding, build: (route: Route) => Json): void {
    const segs = parseTemplate(b.template.source, b.template.verb);
    const verb = b.template.verb === undefined ? "" : `:${b.template.verb}`;
    const method = b.httpMethod.toLowerCase();
    if (!["get", "put", "post", "delete", "patch", "head", "options", "trace"].includes(method)) return;
    let route = compactRoute(segs, verb);
    let item = this.items.get(keyOf(route.path));
    if (item?.ops.has(method)) {
      route = expandedRoute(segs, verb);
      item = this.items.get(keyOf(route.path));
      if (item?.ops.has(method)) {
        throw new Error(`openApiDocument: ${b.httpMethod} ${b.template.source} (${b.method.parent.name}.${b.method.name}) repeats the route ${b.httpMethod} ${item.path}`);
      }
    }
    if (item) {
      // Same path as an earlier binding: take its parameter names, in order.
      const names = item.names;
      route = { path: item.path, params: route.params.map((p, i) => ({ ...p, name: names[i] })) };
    } else {
      item = { path: route.path, names: route.params.map((p) => p.name), ops: new Map() };
      this.items.set(keyOf(route.path), item);
    }
    item.ops.set(method, build(route));
  }

  toJson(): Json {
    const out: Json = {};
    for (const item of this.items.values()) out[item.path] = Object.fromEntries(item.ops);
    return out;
  }
}

function keyOf(path: string): string {
  return path.replace(/\{[^}]*\}/g, "{}");
}

/** parseTemplate splits a template the way path-template.ts compiles it (the template is already known to be valid). */
function parseTemplate(source: string, verb: string | undefined): Segment[] {
  let body = source.slice(1);
  if (verb !== undefined) body = body.slice(0, body.length - verb.length - 1);
  const parts: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of body) {
    if (ch === "{") depth++;
    if (ch === "}") depth--;
    if (ch === "/" && depth === 0) {
      parts.push(cur);
      cur = "";
    } else cur += ch;
  }
  parts.push(cur);
  return parts.map((part): Segment => {
    if (part.startsWith("{")) {
      const inner = part.slice(1, -1);
      const eq = inner.indexOf("=");
      return eq < 0 ? { kind: "var", field: inner, sub: ["*"] } : { kind: "var", field: inner.slice(0, eq), sub: inner.slice(eq + 1).split("/") };
    }
    if (part === "*" || part === "**") return { kind: "wild", text: part };
    return { kind: "literal", text: part };
  });
}

/** compactRoute is one parameter per variable: `/v3/{name=runs/*}` is `/v3/{name}`. */
function compactRoute(segs: Segment[], verb: string): Route {
  const params: RouteParam[] = [];
  let wild = 0;
  const parts = segs.map((s) => {
    if (s.kind === "literal") return s.text;
    if (s.kind === "wild") {
      const name = `wildcard${++wild}`;
      params.push({ name, field: undefined, segments: [s.text] });
      return `{${name}}`;
    }
    params.push({ name: s.field, field: s.field, segments: s.sub });
    return `{${s.field}}`;
  });
  return { path: `/${parts.join("/")}${verb}`, params };
}

/** expandedRoute spells out variables' literal segments: `/v1/{name=shelves/*}` is `/v1/shelves/{name_1}`. */
function expandedRoute(segs: Segment[], verb: string): Route {
  const params: RouteParam[] = [];
  let wild = 0;
  const parts: string[] = [];
  for (const s of segs) {
    if (s.kind === "literal") parts.push(s.text);
    else if (s.kind === "wild") {
      const name = `wildcard${++wild}`;
      params.push({ name, field: undefined, segments: [s.text] });
      parts.push(`{${name}}`);
    } else {
      let i = 0;
      for (const sub of s.sub) {
        if (sub !== "*" && sub !== "**") {
          parts.push(sub);
          continue;
        }
        const name = `${s.field}_${++i}`;
        params.push({ name, field: s.field, segments: [sub], of: { field: s.field, template: s.sub.join("/") } });
        parts.push(`{${name}}`);
      }
    }
  }
  return { path: `/${parts.join("/")}${verb}`, params };
}

/** patternOf is the regular expression of what segments match, anchored. */
function patternOf(segments: readonly string[]): string {
  let re = "";
  segments.forEach((s, i) => {
    const sep = i === 0 ? "" : "/";
    if (s === "*") re += `${sep}[^/]+`;
    else if (s === "**") re += i === 0 ? ".*" : "(?:/.*)?";
    else re += sep + s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  });
  return `^${re}$`;
}

// ---------------------------------------------------------------------------
// Operations

function operation(b: Binding, route: Route, operationId: string, index: number, builder: SchemaBuilder): Json {
  const method = b.method;
  const input = method.input;
  const comment = commentOf(method);
  const op: Json = {
    operationId,
    summary: comment ? firstSentence(comment) : method.name,
    description: [comment, `gRPC: \`/${method.parent.typeName}/${method.name}\`${index > 0 ? ` (additional binding ${index})` : ""}.`]
      .filter(Boolean)
      .join("\n\n"),
    tags: [method.parent.name],
  };
  if (method.deprecated) op.deprecated = true;

  const bound = route.params.flatMap((p) => (p.field ? [p.field] : []));
  const parameters: Json[] = route.params.map((p) => pathParameter(p, input, builder));
  if (b.body !== "*") parameters.push(...queryParameters(input, bound, b.body, builder));
  if (parameters.length > 0) op.parameters = parameters;

  if (b.body !== "") {
    const schemaAndRequired = requestBodySchema(input, b.body, bound, builder);
    if (schemaAndRequired) {
      op.requestBody = {
        required: schemaAndRequired.required,
        content: { "application/json": { schema: schemaAndRequired.schema } },
      };
    }
  }

  // The transcoder's own success code: the contract's for the primary binding, 200 for additional ones.
  const success = b.successCode;
  const out = responseSchema(method.output, b.responseBody, builder);
  let content: Json;
  if (method.methodKind === "server_streaming") {
    const line = {
      type: "object",
      description:
        "One JSON object per line: `{\"result\": …}` for each message of the stream. An error after the first message arrives as a last `{\"error\": …}` line (`google.rpc.Status`).",
      properties: { result: out, error: { $ref: schemaRef(STATUS_SCHEMA) } },
    };
    content = {
      "application/x-ndjson": { schema: line },
      "text/event-stream": {
        schema: {
          type: "string",
          description:
            "Server-Sent Events, for `Accept: text/event-stream`: one event per message of the stream, its `data` the message JSON (as `result` above). An error after the first message is a last `event: error` whose `data` is a `google.rpc.Status`.",
        },
      },
    };
  } else {
    content = { "application/json": { schema: out } };
  }
  const what = `${b.responseBody ? `the \`${b.responseBody}\` field of ` : ""}\`${method.output.typeName}\``;
  const description = method.methodKind === "server_streaming" ? `A stream of ${what}.` : `${what[0].toUpperCase()}${what.slice(1)}.`;
  op.responses = {
    [String(success)]: { description, content },
    default: { $ref: `#/components/responses/${ERROR_RESPONSE}` },
  };
  if (method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming") {
    op.description = `${op.description as string}\n\nThis RPC streams requests: the gateway answers 501 UNIMPLEMENTED over REST.`;
  }
  return op;
}

function pathParameter(p: RouteParam, input: DescMessage, builder: SchemaBuilder): Json {
  const field = p.field ? resolveFieldPath(input, p.field) : undefined;
  const multi = p.segments.length > 1 || p.segments.includes("**");
  let schema: Json;
  if (field?.fieldKind === "scalar" && field.scalar !== ScalarType.STRING && !multi) {
    // A number or bool in one segment: its own JSON form says what it takes.
    schema = builder.scalar(field.scalar);
  } else {
    schema = { type: "string", pattern: patternOf(p.segments) };
    if (field?.fieldKind === "scalar" && p.of === undefined) {
      // The field's own validation rules hold too; a second pattern goes in allOf.
      const { pattern, ...rest } = builder.withRules({}, field);
      Object.assign(schema, rest);
      if (typeof pattern === "string" && pattern !== schema.pattern) schema.allOf = [{ pattern }];
    }
  }
  const lines: string[] = [];
  const comment = field ? commentOf(field) : undefined;
  if (comment) lines.push(comment);
  if (p.of) {
    lines.push(`One segment of the \`${p.of.field}\` field, which matches \`${p.of.template}\`: the field gets the whole path.`);
  } else if (p.field) {
    if (p.name !== p.field) lines.push(`Fills the \`${p.field}\` field.`);
    if (multi) lines.push(`Slashes are part of the value: it matches \`${p.segments.join("/")}\`.`);
    if (p.segments.includes("**")) lines.push("`**` matches any number of segments, slashes included.");
  } else {
    lines.push(`Matches \`${p.segments[0]}\`; no field takes it.`);
  }
  const param: Json = { name: p.name, in: "path", required: true, schema };
  if (lines.length > 0) param.description = lines.join("\n\n");
  return param;
}

/** queryParameters are the fields no path variable or body fills: scalars, enums, lists of them, and one level into messages. */
function queryParameters(input: DescMessage, bound: readonly string[], body: string, builder: SchemaBuilder): Json[] {
  const out: Json[] = [];
  for (const f of input.fields) {
    if (f.name === body || bound.includes(f.name)) continue;
    const own = queryParameter(f, f.jsonName, builder);
    if (own) {
      out.push(own);
      continue;
    }
    if (f.fieldKind !== "message" || isWellKnown(f.message)) continue;
    for (const g of f.message.fields) {
      if (bound.includes(`${f.name}.${g.name}`)) continue;
      const nested = queryParameter(g, `${f.jsonName}.${g.jsonName}`, builder);
      if (nested) out.push(nested);
    }
  }
  return out;
}

/** queryParameter is a parameter for a field with a URL form, or undefined (maps, messages, lists of messages). */
function queryParameter(f: DescField, name: string, builder: SchemaBuilder): Json | undefined {
  let schema: Json;
  switch (f.fieldKind) {
    case "scalar":
    case "enum":
      schema = builder.field(f);
      break;
    case "message":
      if (!hasUrlForm(f.message)) return undefined;
      schema = builder.field(f);
      break;
    case "list":
      if (f.listKind === "message" && !hasUrlForm(f.message)) return undefined;
      schema = builder.field(f);
      break;
    default:
      return undefined;
  }
  // Property-only keywords make no sense on a parameter.
  delete schema.readOnly;
  const param: Json = { name, in: "query", schema };
  const comment = commentOf(f);
  if (comment) param.description = comment;
  if (f.fieldKind === "list") {
    param.style = "form";
    param.explode = true;
  }
  if (isRequired(f)) param.required = true;
  if (f.deprecated) param.deprecated = true;
  return param;
}

/** hasUrlForm tells whether a message type takes its value from one query string (the transcoder passes it through as a JSON string). */
function hasUrlForm(m: DescMessage): boolean {
  return STRING_FORM_WKT.has(m.typeName) || WRAPPERS.has(m.typeName);
}

const STRING_FORM_WKT = new Set(["google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"]);

function requestBodySchema(input: DescMessage, body: string, bound: readonly string[], builder: SchemaBuilder): { schema: Json; required: boolean } | undefined {
  const paths = bound.map((p) => p.split("."));
  if (body === "*") {
    const required = input.fields.some((f) => isRequired(f) && !bound.includes(f.name));
    return { schema: builder.messageWithout(input, paths), required };
  }
  const f = input.fields.find((x) => x.name === body);
  if (!f) return undefined;
  const sub = paths.filter((p) => p[0] === body && p.length > 1).map((p) => p.slice(1));
  const schema = f.fieldKind === "message" && sub.length > 0 ? builder.messageWithout(f.message, sub) : builder.field(f);
  return { schema, required: isRequired(f) };
}

function responseSchema(output: DescMessage, responseBody: string, builder: SchemaBuilder): Json {
  if (responseBody === "") return builder.messageRef(output);
  const f = output.fields.find((x) => x.name === responseBody);
  return f ? builder.field(f) : builder.messageRef(output);
}

function resolveFieldPath(message: DescMessage, path: string): DescField | undefined {
  let m: DescMessage | undefined = message;
  let f: DescField | undefined;
  for (const name of path.split(".")) {
    f = m?.fields.find((x) => x.name === name || x.jsonName === name);
    if (!f) return undefined;
    m = f.fieldKind === "message" ? f.message : undefined;
  }
  return f;
}

// ---------------------------------------------------------------------------
// Schemas

const WRAPPERS = new Map<string, ScalarType>([
  ["google.protobuf.DoubleValue", ScalarType.DOUBLE],
  ["google.protobuf.FloatValue", ScalarType.FLOAT],
  ["google.protobuf.Int64Value", ScalarType.INT64],
  ["google.protobuf.UInt64Value", ScalarType.UINT64],
  ["google.protobuf.Int32Value", ScalarType.INT32],
  ["google.protobuf.UInt32Value", ScalarType.UINT32],
  ["google.protobuf.BoolValue", ScalarType.BOOL],
  ["google.protobuf.StringValue", ScalarType.STRING],
  ["google.protobuf.BytesValue", ScalarType.BYTES],
]);

function isWellKnown(m: DescMessage): boolean {
  return m.typeName.startsWith("google.protobuf.");
}

function schemaRef(name: string): string {
  // Full names hold only [A-Za-z0-9_.], which component keys and JSON pointers take as they are.
  return `#/components/schemas/${name}`;
}

/**
 * SchemaBuilder writes JSON Schemas (the dialect of OpenAPI 3.1) of message
 * and enum types in the proto3 JSON mapping, each named type once in
 * `components/schemas` under its full name.
 */
class SchemaBuilder {
  private readonly schemas = new Map<string, Json>();

  constructor() {
    // The error answer of every operation.
    this.schemas.set(STATUS_SCHEMA, {
      type: "object",
      title: "Status",
      description: "The error answer: a gRPC status in JSON, with typed details.",
      properties: {
        code: { type: "integer", format: "int32", description: "The gRPC status code (`google.rpc.Code`)." },
        message: { type: "string" },
        details: {
          type: "array",
          items: {
            type: "object",
            properties: { "@type": { type: "string", description: "The type URL of the detail, for example `type.googleapis.com/google.rpc.BadRequest`." } },
            required: ["@type"],
            additionalProperties: true,
          },
        },
      },
      required: ["code", "message"],
    });
  }
  components(): Json {
    const out: Json = {};
    for (const name of [...this.schemas.keys()].sort()) out[name] = this.schemas.get(name);
    return out;
  }

  /** messageRef is the schema of a message-typed value: a `$ref`, or the inline JSON form of a well-known type. */
  messageRef(m: DescMessage): Json {
    const wkt = this.wellKnown(m);
    if (wkt) return wkt;
    if (!this.schemas.has(m.typeName)) {
      this.schemas.set(m.typeName, {}); // placeholder: recursive types refer back to it
      this.schemas.set(m.typeName, this.message(m, []));
    }
    return { $ref: schemaRef(m.typeName) };
  }

  /** messageWithout is the message's schema without some (nested) fields: those a path variable fills. */
  messageWithout(m: DescMessage, without: readonly string[][]): Json {
    if (without.length === 0 || this.wellKnown(m)) return this.messageRef(m);
    const s = this.message(m, without);
    const names = without.map((p) => `\`${p.join(".")}\``).join(", ");
    s.description = [s.description, `\`${m.typeName}\` without ${names}: the path gives ${without.length > 1 ? "them" : "it"}.`].filter(Boolean).join("\n\n");
    return s;
  }

  private message(m: DescMessage, without: readonly string[][]): Json {
    const properties: Json = {};
    const required: string[] = [];
    for (const f of m.fields) {
      const mine = without.filter((p) => p[0] === f.name);
      if (mine.some((p) => p.length === 1)) continue;
      const nested = mine.map((p) => p.slice(1));
      let s: Json;
      if (nested.length > 0 && f.fieldKind === "message") s = this.messageWithout(f.message, nested);
      else s = this.field(f);
      const lines: string[] = [];
      const comment = commentOf(f);
      if (comment) lines.push(comment);
      if (f.oneof) {
        const others = f.oneof.fields.map((x) => `\`${x.jsonName}\``).join(", ");
        lines.push(`Part of oneof \`${f.oneof.name}\`: at most one of ${others} is set.`);
      }
      if (typeof s.description === "string") lines.push(s.description);
      if (lines.length > 0) s.description = lines.join("\n\n");
      if (f.deprecated) s.deprecated = true;
      properties[f.jsonName] = s;
      if (isRequired(f)) required.push(f.jsonName);
    }
    const schema: Json = { type: "object", title: m.name };
    const lines: string[] = [];
    const comment = commentOf(m);
    if (comment) lines.push(comment);
    for (const o of m.oneofs) {
      lines.push(`Oneof \`${o.name}\`: at most one of ${o.fields.map((x) => `\`${x.jsonName}\``).join(", ")}.`);
    }
    if (lines.length > 0) schema.description = lines.join("\n\n");
    if (m.deprecated) schema.deprecated = true;
    schema.properties = properties;
    if (required.length > 0) schema.required = required;
    return schema;
  }

  /** field is the schema of a field's JSON value, validation rules and field behaviour included. */
  field(f: DescField): Json {
    let s: Json;
    switch (f.fieldKind) {
      case "scalar":
        s = this.scalar(f.scalar);
        break;
      case "enum":
        s = this.enumRef(f.enum);
        break;
      case "message":
        s = this.messageRef(f.message);
        break;
      case "list":
        s = {
          type: "array",
          items: f.listKind === "scalar" ? this.scalar(f.scalar) : f.listKind === "enum" ? this.enumRef(f.enum) : this.messageRef(f.message),
        };
        break;
      case "map": {
        const value = f.mapKind === "scalar" ? this.scalar(f.scalar) : f.mapKind === "enum" ? this.enumRef(f.enum) : this.messageRef(f.message);
        s = { type: "object", additionalProperties: value };
        const keys = mapKeySchema(f.mapKey);
        if (keys) s.propertyNames = keys;
        break;
      }
    }
    const behaviors = hasOption(f, field_behavior) ? getOption(f, field_behavior) : [];
    if (behaviors.includes(FieldBehavior.OUTPUT_ONLY)) s.readOnly = true;
    if (behaviors.includes(FieldBehavior.INPUT_ONLY)) s.writeOnly = true;
    return this.withRules(s, f);
  }

  /** withRules adds the `buf.validate` rules that JSON Schema states the same way. */
  withRules(s: Json, f: DescField): Json {
    if (!hasOption(f, fieldRulesExt)) return s;
    const rules = getOption(f, fieldRulesExt);
    if (rules.ignore === Ignore.ALWAYS) return s;
    if (f.fieldKind === "list" && rules.type.case === "repeated") {
      const r = rules.type.value;
      if (isFieldSet(r, RepeatedRulesSchema.field.minItems)) s.minItems = Number(r.minItems);
      if (isFieldSet(r, RepeatedRulesSchema.field.maxItems)) s.maxItems = Number(r.maxItems);
      if (r.unique) s.uniqueItems = true;
      if (r.items) s.items = applyScalarRules({ ...(s.items as Json) }, r.items);
    } else if (f.fieldKind === "map" && rules.type.case === "map") {
      const r = rules.type.value;
      if (isFieldSet(r, MapRulesSchema.field.minPairs)) s.minProperties = Number(r.minPairs);
      if (isFieldSet(r, MapRulesSchema.field.maxPairs)) s.maxProperties = Number(r.maxPairs);
      if (r.keys) s.propertyNames = applyScalarRules({ ...((s.propertyNames as Json | undefined) ?? { type: "string" }) }, r.keys);
      if (r.values) s.additionalProperties = applyScalarRules({ ...(s.additionalProperties as Json) }, r.values);
    } else if (f.fieldKind === "scalar") {
      applyScalarRules(s, rules);
    }
    return s;
  }

  /** scalar is a scalar's JSON form: 64-bit integers are strings, bytes base64. */
  scalar(t: ScalarType): Json {
    switch (t) {
      case ScalarType.DOUBLE:
        return { type: "number", format: "double" };
      case ScalarType.FLOAT:
        return { type: "number", format: "float" };
      case ScalarType.INT32:
      case ScalarType.SINT32:
      case ScalarType.SFIXED32:
        return { type: "integer", format: "int32" };
      case ScalarType.UINT32:
      case ScalarType.FIXED32:
        return { type: "integer", format: "uint32", minimum: 0, maximum: 4294967295 };
      case ScalarType.INT64:
      case ScalarType.SINT64:
      case ScalarType.SFIXED64:
        return { type: "string", format: "int64", pattern: "^-?[0-9]+$" };
      case ScalarType.UINT64:
      case ScalarType.FIXED64:
        return { type: "string", format: "uint64", pattern: "^[0-9]+$" };
      case ScalarType.BOOL:
        return { type: "boolean" };
      case ScalarType.STRING:
        return { type: "string" };
      case ScalarType.BYTES:
        return { type: "string", contentEncoding: "base64" };
    }
  }

  /** enumRef is a `$ref` to a string enum of the value names (NullValue is JSON null). */
  enumRef(e: DescEnum): Json {
    if (e.typeName === "google.protobuf.NullValue") return { type: "null" };
    if (!this.schemas.has(e.typeName)) {
      const s: Json = { type: "string", title: e.name, enum: e.values.map((v) => v.name) };
      const lines: string[] = [];
      const comment = commentOf(e);
      if (comment) lines.push(comment);
      const described = e.values.filter((v) => commentOf(v));
      if (described.length > 0) lines.push(described.map((v) => `- \`${v.name}\`: ${commentOf(v)?.replace(/\s*\n\s*/g, " ")}`).join("\n"));
      if (lines.length > 0) s.description = lines.join("\n\n");
      if (e.deprecated) s.deprecated = true;
      this.schemas.set(e.typeName, s);
    }
    return { $ref: schemaRef(e.typeName) };
  }

  /** wellKnown is the inline JSON form of a google.protobuf type with a special JSON mapping. */
  private wellKnown(m: DescMessage): Json | undefined {
    const wrapped = WRAPPERS.get(m.typeName);
    if (wrapped !== undefined) return this.scalar(wrapped);
    switch (m.typeName) {
      case "google.protobuf.Timestamp":
        return { type: "string", format: "date-time" };
      case "google.protobuf.Duration":
        return { type: "string", pattern: "^-?\\d+(\\.\\d+)?s$" };
      case "google.protobuf.FieldMask":
        return { type: "string", description: "Field paths in lowerCamelCase, separated by commas." };
      case "google.protobuf.Struct":
        return { type: "object", additionalProperties: true };
      case "google.protobuf.Value":
        return {};
      case "google.protobuf.ListValue":
        return { type: "array", items: {} };
      case "google.protobuf.Empty":
        return { type: "object" };
      case "google.protobuf.Any":
        return { type: "object", properties: { "@type": { type: "string" } }, required: ["@type"], additionalProperties: true };
      default:
        return undefined;
    }
  }


}

function mapKeySchema(t: ScalarType): Json | undefined {
  switch (t) {
    case ScalarType.STRING:
      return undefined;
    case ScalarType.BOOL:
      return { enum: ["true", "false"] };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { pattern: "^[0-9]+$" };
    default:
      return { pattern: "^-?[0-9]+$" };
  }
}

/** applyScalarRules maps the string and 32-bit number rules with a JSON Schema twin; others are left to the server. */
function applyScalarRules(s: Json, rules: FieldRules): Json {
  const t = rules.type;
  switch (t.case) {
    case "string": {
      const r = t.value;
      if (isFieldSet(r, StringRulesSchema.field.len)) {
        s.minLength = Number(r.len);
        s.maxLength = Number(r.len);
      }
      if (isFieldSet(r, StringRulesSchema.field.minLen)) s.minLength = Number(r.minLen);
      if (isFieldSet(r, StringRulesSchema.field.maxLen)) s.maxLength = Number(r.maxLen);
      if (isFieldSet(r, StringRulesSchema.field.pattern)) s.pattern = r.pattern;
      if (isFieldSet(r, StringRulesSchema.field.const)) s.const = r.const;
      if (r.in.length > 0) s.enum = [...r.in];
      switch (r.wellKnown.case) {
        case "email":
        case "hostname":
        case "ipv4":
        case "ipv6":
        case "uri":
        case "uuid":
          if (r.wellKnown.value) s.format = r.wellKnown.case;
          break;
      }
      break;
    }
    case "int32":
    case "sint32":
    case "sfixed32":
    case "uint32":
    case "fixed32":
    case "float":
    case "double": {
      const r = t.value;
      if (r.greaterThan.case === "gte") s.minimum = r.greaterThan.value;
      if (r.greaterThan.case === "gt") s.exclusiveMinimum = r.greaterThan.value;
      if (r.lessThan.case === "lte") s.maximum = r.lessThan.value;
      if (r.lessThan.case === "lt") s.exclusiveMaximum = r.lessThan.value;
      const constant = numericConstField(t.case);
      if (constant && isFieldSet(r, constant)) s.const = r.const;
      if (r.in.length > 0) s.enum = [...r.in];
      break;
    }
  }
  return s;
}

/** numericConstField is the `const` field of a numeric rules message (they all have one, with presence). */
function numericConstField(kind: string): DescField | undefined {
  const f = FieldRulesSchema.fields.find((x) => x.localName === kind);
  return f?.fieldKind === "message" ? f.message.fields.find((x) => x.name === "const") : undefined;
}

function isRequired(f: DescField): boolean {
  if (hasOption(f, field_behavior) && getOption(f, field_behavior).includes(FieldBehavior.REQUIRED)) return true;
  return hasOption(f, fieldRulesExt) && getOption(f, fieldRulesExt).required;
}

// ---------------------------------------------------------------------------
// Comments (only descriptors that kept their source info have any)

type Commented = DescService | DescMethod | DescMessage | DescField | DescEnum | DescEnumValue;

function commentOf(d: Commented): string | undefined {
  const file = fileOf(d);
  const locations = file.proto.sourceCodeInfo?.location;
  if (!locations || locations.length === 0) return undefined;
  const path = sourcePath(d);
  if (!path) return undefined;
  const loc = locations.find((l) => l.path.length === path.length && l.path.every((x, i) => x === path[i]));
  const text = loc?.leadingComments;
  if (!text) return undefined;
  const cleaned = text
    .split("\n")
    .map((l) => l.replace(/^ /, "").trimEnd())
    .join("\n")
    .trim();
  return cleaned || undefined;
}

function fileOf(d: Commented): DescFile {
  switch (d.kind) {
    case "service":
    case "message":
    case "enum":
      return d.file;
    case "rpc":
    case "field":
      return d.parent.file;
    case "enum_value":
      return d.parent.file;
  }
}

/** sourcePath is the descriptor's path in its FileDescriptorProto, as SourceCodeInfo numbers it. */
function sourcePath(d: Commented): number[] | undefined {
  const at = <T extends { name: string }>(list: readonly T[], name: string): number => list.findIndex((x) => x.name === name);
  switch (d.kind) {
    case "service":
      return [6, at(d.file.proto.service, d.name)];
    case "rpc": {
      const s = sourcePath(d.parent);
      return s && [...s, 2, at(d.parent.proto.method, d.name)];
    }
    case "message": {
      if (!d.parent) return [4, at(d.file.proto.messageType, d.name)];
      const p = sourcePath(d.parent);
      return p && [...p, 3, at(d.parent.proto.nestedType, d.name)];
    }
    case "enum": {
      if (!d.parent) return [5, at(d.file.proto.enumType, d.name)];
      const p = sourcePath(d.parent);
      return p && [...p, 4, at(d.parent.proto.enumType, d.name)];
    }
    case "field": {
      const p = sourcePath(d.parent);
      return p && [...p, 2, d.parent.proto.field.findIndex((x) => x.number === d.number)];
    }
    case "enum_value": {
      const p = sourcePath(d.parent);
      return p && [...p, 2, d.parent.proto.value.findIndex((x) => x.number === d.number)];
    }
  }
}

function firstSentence(comment: string): string {
  const paragraph = comment.split(/\n\s*\n/)[0].replace(/\s*\n\s*/g, " ");
  const m = /^(.*?[.!?])(\s|$)/.exec(paragraph);
  return m ? m[1] : paragraph;
}

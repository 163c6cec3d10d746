import { fromJson, type DescField, type DescMessage, type JsonObject, type JsonValue, type MessageShape, ScalarType } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Binding } from "./bindings.js";

/** HttpInput is what a REST request carries, parsed. */
export interface HttpInput {
  /** vars are the path variables: field path -> value. */
  readonly vars: ReadonlyMap<string, string>;
  /** query parameters; a repeated key has an array. */
  readonly query: Readonly<Record<string, string | string[] | undefined>>;
  /** body is the parsed JSON body, if any. */
  readonly body: JsonValue | undefined;
}

/**
 * requestMessage builds the request message of a binding, per
 * google/api/http.proto: the body (all of it, or one field), then path
 * variables, then query parameters for every other field. It goes through the
 * canonical proto3 JSON mapping (strict: unknown fields, wrong types and bad
 * enum names are INVALID_ARGUMENT naming the field).
 */
export function requestMessage(b: Binding, input: HttpInput): MessageShape<DescMessage> {
  const message = b.method.input;
  const json: JsonObject = {};
  if (b.body === "*") {
    if (input.body !== undefined && (typeof input.body !== "object" || input.body === null || Array.isArray(input.body))) {
      throw new ConnectError("the request body must be a JSON object", Code.InvalidArgument);
    }
    Object.assign(json, input.body ?? {});
  } else if (b.bodyField && input.body !== undefined) {
    json[b.bodyField.jsonName] = input.body;
  }
  for (const [fieldPath, value] of input.vars) setPath(json, message, fieldPath.split("."), [value], fieldPath);
  if (b.body !== "*") {
    for (const [key, value] of Object.entries(input.query)) {
      if (value === undefined) continue;
      if (input.vars.has(protoPath(message, key))) {
        throw new ConnectError(`query parameter "${key}" sets a field that comes from the path`, Code.InvalidArgument);
      }
      const head = key.split(".")[0];
      if (b.bodyField && (head === b.bodyField.name || head === b.bodyField.jsonName)) {
        throw new ConnectError(`query parameter "${key}" sets a field that comes from the body`, Code.InvalidArgument);
      }
      setPath(json, message, key.split("."), Array.isArray(value) ? value : [value], key);
    }
  } else {
    const first = Object.keys(input.query).find((k) => input.query[k] !== undefined);
    if (first !== undefined) {
      throw new ConnectError(`query parameter "${first}" is not allowed: this route takes every field from the body`, Code.InvalidArgument);
    }
  }
  try {
    return fromJson(message, json, { ignoreUnknownFields: false });
  } catch (e) {
    const field = badField(message, json, "");
    throw new ConnectError(`invalid request${field ? ` field "${field}"` : ""}: ${(e as Error).message}`, Code.InvalidArgument);
  }
}

const fieldIndex = new WeakMap<DescMessage, Map<string, DescField>>();

/** fieldByName finds a field by its proto name or its JSON name, from a per-message index built once. */
function fieldByName(message: DescMessage, name: string): DescField | undefined {
  let index = fieldIndex.get(message);
  if (!index) {
    index = new Map();
    for (const f of message.fields) {
      index.set(f.name, f);
      index.set(f.jsonName, f);
    }
    fieldIndex.set(message, index);
  }
  return index.get(name);
}

/** protoPath spells a query key (JSON or proto names, dotted) with proto names, as path variables are keyed. */
function protoPath(message: DescMessage, key: string): string {
  const out: string[] = [];
  let m: DescMessage | undefined = message;
  for (const part of key.split(".")) {
    const f: DescField | undefined = m ? fieldByName(m, part) : undefined;
    out.push(f?.name ?? part);
    m = f?.fieldKind === "message" ? f.message : undefined;
  }
  return out.join(".");
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
      const field = fieldByName(message, key);
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
  const field = fieldByName(message, head);
  if (!field) throw new ConnectError(`${source}: no field "${head}" in ${message.typeName}`, Code.InvalidArgument);
  if (rest.length > 0) {
    if (field.fieldKind !== "message" || field.message.typeName.startsWith("google.protobuf.")) {
      throw new ConnectError(`${source}: "${head}" has no fields`, Code.InvalidArgument);
    }
    // The body may have set the field already (`PATCH /api/moves/{move.name}` with a body for `move`): it must be an object to take the path's value.
    const given = json[field.jsonName];
    if (given !== undefined && given !== null && (typeof given !== "object" || Array.isArray(given))) {
      throw new ConnectError(`${source}: "${field.name}" must be a JSON object`, Code.InvalidArgument);
    }
    const child = (json[field.jsonName] = (given ?? {}) as JsonObject);
    setPath(child, field.message, rest, values, source);
    return;
  }
  const conv = values.map((v) => urlValueJson(field, v, source));
  if (field.fieldKind === "list") {
    const prev = (json[field.jsonName] as JsonValue[] | undefined) ?? [];
    json[field.jsonName] = [...prev, ...conv];
  } else {
    if (conv.length > 1) throw new ConnectError(`${source}: "${head}" takes one value, got ${conv.length}`, Code.InvalidArgument);
    json[field.jsonName] = conv[0];
  }
}

/** wrappers whose JSON form is a bool; every other wrapper and well-known type takes its string form. */
const boolTypes = new Set(["google.protobuf.BoolValue"]);

/** urlValueJson converts one path or query value to the JSON the field's type takes. */
function urlValueJson(field: DescField, v: string, source: string): JsonValue {
  switch (field.fieldKind) {
    case "map":
      throw new ConnectError(`${source}: map fields cannot be set from the URL`, Code.InvalidArgument);
    case "enum":
      return enumJson(v);
    case "scalar":
      return scalarJson(field.scalar, v, source);
    case "message":
      if (boolTypes.has(field.message.typeName)) return boolJson(v, source);
      if (!field.message.typeName.startsWith("google.protobuf.")) {
        throw new ConnectError(`${source}: "${field.name}" is a message; set its fields (${field.name}.<field>=…)`, Code.InvalidArgument);
      }
      // Timestamp, Duration, FieldMask and the other wrappers have string JSON forms.
      return v;
    case "list":
      if (field.listKind === "enum") return enumJson(v);
      if (field.listKind === "scalar") return scalarJson(field.scalar, v, source);
      if (field.listKind === "message" && field.message.typeName.startsWith("google.protobuf.")) {
        return boolTypes.has(field.message.typeName) ? boolJson(v, source) : v;
      }
      throw new ConnectError(`${source}: repeated messages cannot be set from the URL`, Code.InvalidArgument);
  }
}

function enumJson(v: string): JsonValue {
  return /^-?\d+$/.test(v) ? Number(v) : v;
}

function boolJson(v: string, source: string): boolean {
  if (v === "true" || v === "false") return v === "true";
  throw new ConnectError(`${source}: "${v}" is not a bool (true or false)`, Code.InvalidArgument);
}

function scalarJson(t: ScalarType, v: string, source: string): JsonValue {
  // Numbers stay strings: proto3 JSON accepts strings for every number type,
  // and the decoder checks their range.
  return t === ScalarType.BOOL ? boolJson(v, source) : v;
}

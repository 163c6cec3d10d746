import { ScalarType, type DescField, type DescMessage, type JsonObject, type JsonValue } from "@bufbuild/protobuf";

/**
 * RecordFilter keeps the records whose fields hold the given values, by
 * proto field path (`campaign`, `origin.run`): a singular string field must
 * equal the value, a repeated string field must contain it (`cohorts` of a
 * campaign). Every condition must hold.
 */
export type RecordFilter = Readonly<Record<string, string>>;

/** FilterTerm is one condition of a RecordFilter, resolved against the record's descriptor. */
export interface FilterTerm {
  /** path is the fields from the record down to the string field. */
  readonly path: readonly DescField[];
  /** value is what the field must equal or, when repeated, contain. */
  readonly value: string;
  /** repeated tells whether the last field is a list of strings. */
  readonly repeated: boolean;
}

/**
 * filterTerms resolves a filter against a record's descriptor. Each path
 * must go through singular message fields and end at a string field, single
 * or repeated; anything else is a programming error and throws.
 */
export function filterTerms(schema: DescMessage, where: RecordFilter): FilterTerm[] {
  return Object.entries(where).map(([key, value]) => {
    const path: DescField[] = [];
    let message: DescMessage | undefined = schema;
    for (const name of key.split(".")) {
      const f: DescField | undefined = message?.fields.find((x) => x.name === name);
      if (!f) throw new Error(`${schema.typeName} has no field "${key}"`);
      path.push(f);
      message = f.fieldKind === "message" ? f.message : undefined;
    }
    const last = path[path.length - 1];
    const isString = (last.fieldKind === "scalar" || (last.fieldKind === "list" && last.listKind === "scalar")) && last.scalar === ScalarType.STRING;
    if (!isString || path.slice(0, -1).some((f) => f.fieldKind !== "message")) {
      throw new Error(`${schema.typeName}.${key} is not a string field that records can be filtered by`);
    }
    return { path, value, repeated: last.fieldKind === "list" };
  });
}

/** matchesTerms tells whether a record (a protobuf-es message) meets every term. */
export function matchesTerms(record: unknown, terms: readonly FilterTerm[]): boolean {
  return terms.every((t) => {
    let v: unknown = record;
    for (const f of t.path) v = (v as Record<string, unknown> | undefined)?.[f.localName];
    return t.repeated ? Array.isArray(v) && v.includes(t.value) : v === t.value;
  });
}

/**
 * containment is the JSON a record's protobuf JSON form must contain (jsonb
 * `@>`) to meet every term: `{"origin": {"run": "runs/1"}, "cohorts": ["cohorts/2"]}`.
 */
export function containment(terms: readonly FilterTerm[]): JsonObject {
  const out: JsonObject = {};
  for (const t of terms) {
    let at = out;
    t.path.slice(0, -1).forEach((f) => {
      at = (at[f.jsonName] ??= {}) as JsonObject;
    });
    const last = t.path[t.path.length - 1].jsonName;
    at[last] = t.repeated ? [...((at[last] as JsonValue[] | undefined) ?? []), t.value] : t.value;
  }
  return out;
}

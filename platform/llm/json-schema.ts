/**
 * JsonSchemaType is the single JSON type of a schema node in the agents'
 * subset of JSON Schema (no arrays of types, no null).
 */
export type JsonSchemaType = "string" | "number" | "integer" | "boolean" | "array" | "object";

/**
 * JsonSchema is one node of the subset of JSON Schema that agents' inputs
 * and outputs are written in: the keywords OpenAI's strict structured outputs
 * accept, without references, combinators, formats or patterns. A node
 * without `type` accepts any value; only schemas derived from a catalog entry
 * that has no schema of its own have such nodes. (A type rather than an
 * interface, so a schema is also a plain `Record<string, unknown>`.)
 */
export type JsonSchema = {
  /** type is the node's one JSON type. */
  readonly type?: JsonSchemaType;
  /** description tells the model (and the reader) what the value is. */
  readonly description?: string;
  /** properties are an object's fields, in order. */
  readonly properties?: Readonly<Record<string, JsonSchema>>;
  /** required names the properties an object must have. */
  readonly required?: readonly string[];
  /** additionalProperties says whether an object may have other fields. */
  readonly additionalProperties?: boolean;
  /** items is the schema of every element of an array. */
  readonly items?: JsonSchema;
  /** enum lists the strings a string may be. */
  readonly enum?: readonly string[];
  /** minimum is the least a number may be. */
  readonly minimum?: number;
  /** maximum is the most a number may be. */
  readonly maximum?: number;
  /** minItems is the least number of elements of an array. */
  readonly minItems?: number;
  /** maxItems is the most elements an array may have. */
  readonly maxItems?: number;
  /** minLength is the least number of characters of a string. */
  readonly minLength?: number;
  /** maxLength is the most characters a string may have. */
  readonly maxLength?: number;
};

/**
 * SchemaRole says which rules a schema follows: an `output` schema is what
 * strict structured outputs need (every object closed and every property
 * required); an `input` schema's top level stays open, because one run's
 * parameters reach several agents.
 */
export type SchemaRole = "input" | "output";

const types = new Set<string>(["string", "number", "integer", "boolean", "array", "object"]);
const keywords = new Set([
  "type",
  "description",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "enum",
  "minimum",
  "maximum",
  "minItems",
  "maxItems",
  "minLength",
  "maxLength",
]);
/** onlyFor says which type each type-specific keyword belongs to. */
const onlyFor: Record<string, readonly JsonSchemaType[]> = {
  properties: ["object"],
  required: ["object"],
  additionalProperties: ["object"],
  items: ["array"],
  minItems: ["array"],
  maxItems: ["array"],
  enum: ["string"],
  minLength: ["string"],
  maxLength: ["string"],
  minimum: ["number", "integer"],
  maximum: ["number", "integer"],
};

/**
 * schemaProblems lists where a schema leaves the agents' subset of JSON
 * Schema, each as `<JSON pointer>: <problem>` (the pointer is into the
 * schema, `/` for its root); an empty list means it is in the subset. The
 * root must be an object; every object has `properties`, every array
 * `items`, every property a `description`. In an `output` schema every
 * object lists all its properties in `required` and has
 * `"additionalProperties": false`; an `input` schema's root has
 * `"additionalProperties": true`.
 */
export function schemaProblems(schema: unknown, role: SchemaRole): string[] {
  const problems: string[] = [];
  const node = (s: unknown, path: string, isProperty: boolean): void => {
    const at = path || "/";
    if (s === null || typeof s !== "object" || Array.isArray(s)) {
      problems.push(`${at}: must be a schema object`);
      return;
    }
    const o = s as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!keywords.has(k)) problems.push(`${at}: keyword "${k}" is not allowed`);
    const type = o.type;
    if (typeof type !== "string" || !types.has(type)) {
      problems.push(`${at}: "type" must be one of ${[...types].join(", ")} (a single type)`);
      return;
    }
    for (const [k, allowed] of Object.entries(onlyFor)) {
      if (k in o && !allowed.includes(type as JsonSchemaType)) problems.push(`${at}: "${k}" does not apply to type ${type}`);
    }
    if ("description" in o && (typeof o.description !== "string" || o.description.trim() === "")) {
      problems.push(`${at}: "description" must be a non-empty string`);
    } else if (isProperty && !("description" in o)) {
      problems.push(`${at}: a property needs a "description"`);
    }
    for (const k of ["minimum", "maximum"]) {
      if (k in o && (typeof o[k] !== "number" || !Number.isFinite(o[k]))) problems.push(`${at}: "${k}" must be a number`);
    }
    for (const k of ["minItems", "maxItems", "minLength", "maxLength"]) {
      if (k in o && (typeof o[k] !== "number" || !Number.isInteger(o[k]) || (o[k] as number) < 0)) problems.push(`${at}: "${k}" must be a whole number ≥ 0`);
    }
    for (const [lo, hi] of [["minimum", "maximum"], ["minItems", "maxItems"], ["minLength", "maxLength"]]) {
      if (typeof o[lo] === "number" && typeof o[hi] === "number" && (o[lo] as number) > (o[hi] as number)) problems.push(`${at}: "${lo}" is above "${hi}"`);
    }
    if (type === "integer" && typeof o.minimum === "number" && typeof o.maximum === "number" && Math.ceil(o.minimum) > o.maximum) {
      problems.push(`${at}: no integer lies between "minimum" and "maximum"`);
    }
    if ("enum" in o) {
      const e = o.enum;
      if (!Array.isArray(e) || e.length === 0 || e.some((v) => typeof v !== "string")) problems.push(`${at}: "enum" must be a non-empty array of strings`);
      else if (new Set(e).size !== e.length) problems.push(`${at}: "enum" lists a value twice`);
    }
    if (type === "array") {
      if (!("items" in o)) problems.push(`${at}: an array needs "items"`);
      else node(o.items, `${path}/items`, false);
    }
    if (type === "object") {
      const props = o.properties;
      if (props === null || typeof props !== "object" || Array.isArray(props)) {
        problems.push(`${at}: an object needs "properties"`);
        return;
      }
      const names = Object.keys(props);
      for (const name of names) node((props as Record<string, unknown>)[name], `${path}/properties/${pointerSegment(name)}`, true);
      const required = o.required ?? [];
      if (!Array.isArray(required) || required.some((r) => typeof r !== "string")) {
        problems.push(`${at}: "required" must be an array of strings`);
      } else {
        for (const r of required as string[]) if (!names.includes(r)) problems.push(`${at}: "required" names "${r}", which is not in "properties"`);
        if (new Set(required).size !== required.length) problems.push(`${at}: "required" names a property twice`);
        if (role === "output") {
          const missing = names.filter((n) => !required.includes(n));
          if (missing.length) problems.push(`${at}: "required" must list every property (missing ${missing.map((m) => `"${m}"`).join(", ")})`);
        }
      }
      if ("additionalProperties" in o && typeof o.additionalProperties !== "boolean") {
        problems.push(`${at}: "additionalProperties" must be true or false`);
      } else if (role === "output" && o.additionalProperties !== false) {
        problems.push(`${at}: an output object needs "additionalProperties": false`);
      } else if (role === "input" && path === "" && o.additionalProperties !== true) {
        problems.push(`${at}: an input schema needs "additionalProperties": true at its root`);
      }
    }
  };
  node(schema, "", false);
  if (problems.length === 0 && (schema as JsonSchema).type !== "object") problems.push(`/: the root must have "type": "object"`);
  return problems;
}

/** pointerSegment writes a property name as a JSON pointer segment. */
function pointerSegment(name: string): string {
  return name.replaceAll("~", "~0").replaceAll("/", "~1");
}

const strictness = new WeakMap<object, boolean>();

/**
 * isStrictSchema tells whether a schema is in the output subset, which is
 * what OpenAI's strict structured outputs accept; remembered per schema
 * object, since a catalog's schemas live as long as the process.
 */
export function isStrictSchema(schema: Readonly<Record<string, unknown>>): boolean {
  let strict = strictness.get(schema);
  if (strict === undefined) {
    strict = schemaProblems(schema, "output").length === 0;
    strictness.set(schema, strict);
  }
  return strict;
}

/**
 * keysSchema is the permissive schema of an object that has the given keys,
 * each of any value: what a request or a catalog entry without a schema of
 * its own stands for.
 */
export function keysSchema(keys: readonly string[], role: SchemaRole): JsonSchema {
  return {
    type: "object",
    properties: Object.fromEntries(keys.map((k) => [k, { description: k.replaceAll("_", " ") }])),
    required: role === "output" ? [...keys] : [],
    additionalProperties: true,
  };
}

/**
 * FillText writes the text of one string in a filled value: `label` names
 * what it is (the property, `tags 3` for the third element of `tags`) and
 * `index` counts the strings written so far, from 0, in document order.
 */
export type FillText = (label: string, index: number) => string;

/**
 * fillSchema makes a deterministic value that conforms to a schema, for
 * stand-in models (the offline provider, test servers): strings from `text`,
 * cut to `maxLength` and padded to `minLength`; an enum's first member;
 * booleans true; numbers at their `maximum`, else their `minimum`, else 0
 * (so a rating of 1-10 is 10: a stand-in approves rather than triggering
 * repairs); arrays of max(minItems, 1) elements, at most maxItems; objects
 * with every property, in order. A node without a type is a string, as a
 * key-only schema asks nothing more.
 */
export function fillSchema(schema: JsonSchema, text: FillText, label = ""): unknown {
  let index = 0;
  const fill = (s: JsonSchema, label: string): unknown => {
    switch (s.type) {
      case "object":
        return Object.fromEntries(Object.entries(s.properties ?? {}).map(([k, p]) => [k, fill(p, k.replaceAll("_", " "))]));
      case "array": {
        const n = Math.min(Math.max(s.minItems ?? 0, 1), s.maxItems ?? Infinity);
        return Array.from({ length: n }, (_, i) => fill(s.items ?? {}, `${label} ${i + 1}`.trim()));
      }
      case "boolean":
        return true;
      case "number":
      case "integer": {
        const int = s.type === "integer";
        if (s.maximum !== undefined) return int ? Math.floor(s.maximum) : s.maximum;
        if (s.minimum !== undefined) return int ? Math.ceil(s.minimum) : s.minimum;
        return 0;
      }
      default: {
        if (s.enum?.length) return s.enum[0];
        let t = text(label, index++);
        if (s.maxLength !== undefined && t.length > s.maxLength) t = t.slice(0, s.maxLength).trimEnd().padEnd(Math.min(s.maxLength, s.minLength ?? 0), ".");
        if (s.minLength !== undefined && t.length < s.minLength) t = t.padEnd(s.minLength, ".");
        return t;
      }
    }
  };
  return fill(schema, label);
}

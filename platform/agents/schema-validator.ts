import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import type { JsonSchema } from "../llm/json-schema.js";

/**
 * ajv validates agents' inputs and outputs. Strict mode refuses unknown
 * keywords and contradictions, so a schema that compiles here is valid JSON
 * Schema as well as in the agents' subset.
 */
const ajv = new Ajv({ allErrors: true, strict: true });

const compiled = new WeakMap<object, ValidateFunction>();

/**
 * compileSchema compiles a schema once and remembers the validator for as
 * long as the schema object lives: the catalog compiles every agent's
 * schemas when it loads, and the runtime finds them here. It throws when
 * ajv refuses the schema.
 */
export function compileSchema(schema: JsonSchema): ValidateFunction {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  return validate;
}

/** maxProblems bounds the problems reported at once: enough to fix an answer, short enough to read. */
export const maxProblems = 10;

/**
 * ProblemStyle says how a problem names the place in the value: `pointer`
 * writes a JSON pointer (`/segments/0/size`), what a model repairing its
 * answer reads best; `parameters` writes a field path (`parameters.team[0]`),
 * what a caller of RunAgent recognises.
 */
export type ProblemStyle = "pointer" | "parameters";

/**
 * validationProblems validates a value against a schema and returns what is
 * wrong, one line per problem naming where (`/segments/0/size: must be
 * integer`), at most maxProblems and a count of the rest; empty when the
 * value conforms. A key missing from the top level of an answer reads
 * `missing key "x"`.
 */
export function validationProblems(schema: JsonSchema, value: unknown, style: ProblemStyle): string[] {
  const validate = compileSchema(schema);
  if (validate(value)) return [];
  const lines = [...new Set((validate.errors ?? []).map((e) => describe(e, style)))];
  if (lines.length <= maxProblems) return lines;
  return [...lines.slice(0, maxProblems), `… and ${lines.length - maxProblems} more problems`];
}

/** describe writes one ajv error as `<where>: <what>`. */
function describe(e: ErrorObject, style: ProblemStyle): string {
  const segments = e.instancePath === "" ? [] : e.instancePath.slice(1).split("/").map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
  const where = (segs: readonly string[]): string =>
    style === "pointer"
      ? segs.length
        ? `/${segs.map((s) => s.replaceAll("~", "~0").replaceAll("/", "~1")).join("/")}`
        : "/"
      : segs.reduce((p, s) => (/^\d+$/.test(s) ? `${p}[${s}]` : `${p}.${s}`), "parameters");
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case "required": {
      const missing = String(params.missingProperty);
      if (style === "pointer" && segments.length === 0) return `missing key "${missing}"`;
      return style === "pointer" ? `${where(segments)}: missing property "${missing}"` : `${where([...segments, missing])}: is required`;
    }
    case "additionalProperties":
      return `${where(segments)}: has the property "${String(params.additionalProperty)}", which is not allowed`;
    case "enum":
      return `${where(segments)}: must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`;
    default:
      return `${where(segments)}: ${e.message ?? e.keyword}`;
  }
}

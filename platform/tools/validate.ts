import type { z } from "zod";

/**
 * ToolInputError is thrown when a numeric tool's input fails validation. Its
 * message names the tool and every offending field by path, for example
 * `attribution: journeys[2].touchpoints[0].timestamp: not a valid date`, so an
 * agent (or a developer) can fix the call without guessing.
 */
export class ToolInputError extends Error {
  /** tool is the tool or function that rejected the input. */
  readonly tool: string;
  /** issues are the individual problems, each starting with a field path. */
  readonly issues: readonly string[];

  constructor(tool: string, issues: readonly string[]) {
    super(`${tool}: invalid input: ${issues.join("; ")}`);
    this.name = "ToolInputError";
    this.tool = tool;
    this.issues = issues;
  }
}

/**
 * formatPath renders a zod issue path as `a.b[0].c`; the empty path is shown as
 * `(input)`.
 */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out === "" ? "(input)" : out;
}

/**
 * parseToolInput validates `input` against `schema` and returns the parsed
 * value (with defaults applied), or throws a {@link ToolInputError} whose
 * message lists every issue with its field path.
 */
export function parseToolInput<S extends z.ZodType>(schema: S, input: unknown, tool: string): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) {
    throw new ToolInputError(
      tool,
      result.error.issues.map((issue) => `${formatPath(issue.path)}: ${issue.message}`),
    );
  }
  return result.data;
}

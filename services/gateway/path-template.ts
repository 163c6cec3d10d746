/**
 * A compiled `google.api.http` path template, as specified in
 * google/api/http.proto:
 *
 *   Template = "/" Segments [ Verb ] ;
 *   Segments = Segment { "/" Segment } ;
 *   Segment  = "*" | "**" | LITERAL | Variable ;
 *   Variable = "{" FieldPath [ "=" Segments ] "}" ;
 *   Verb     = ":" LITERAL ;
 */
export interface PathTemplate {
  /** source is the template text. */
  readonly source: string;
  /** verb is the custom verb without its colon, or undefined. */
  readonly verb: string | undefined;
  /** match returns the variables (field path -> value) when the path matches, else undefined. */
  match(path: string): Map<string, string> | undefined;
}

type Seg =
  | { kind: "literal"; value: string }
  | { kind: "star" }
  | { kind: "starstar" }
  | { kind: "var-start"; field: string; multi: boolean }
  | { kind: "var-end" };

/** compilePathTemplate parses a template; a malformed one throws with its text. */
export function compilePathTemplate(source: string): PathTemplate {
  if (!source.startsWith("/")) throw new Error(`path template "${source}" must start with "/"`);
  let body = source.slice(1);
  let verb: string | undefined;
  // The verb is a ":" after the last "/" and outside any variable.
  const lastSlash = body.lastIndexOf("/");
  const lastBrace = body.lastIndexOf("}");
  const colon = body.indexOf(":", Math.max(lastSlash, lastBrace));
  if (colon >= 0) {
    verb = body.slice(colon + 1);
    body = body.slice(0, colon);
    if (!/^[^/{}:*=]+$/.test(verb)) throw new Error(`path template "${source}": bad verb ":${verb}"`);
  }
  const segs: Seg[] = [];
  const parts = splitTop(body, source);
  for (const part of parts) {
    if (part.startsWith("{")) {
      if (!part.endsWith("}")) throw new Error(`path template "${source}": unclosed variable "${part}"`);
      const inner = part.slice(1, -1);
      const eq = inner.indexOf("=");
      const field = eq < 0 ? inner : inner.slice(0, eq);
      if (!/^[a-zA-Z_][a-zA-Z0-9_]*(\.[a-zA-Z_][a-zA-Z0-9_]*)*$/.test(field)) {
        throw new Error(`path template "${source}": bad field path "${field}"`);
      }
      const sub = eq < 0 ? ["*"] : inner.slice(eq + 1).split("/");
      segs.push({ kind: "var-start", field, multi: sub.length > 1 || sub.includes("**") });
      for (const s of sub) segs.push(simple(s, source));
      segs.push({ kind: "var-end" });
    } else {
      segs.push(simple(part, source));
    }
  }
  // http.proto: "**" must be the last part of the path (before the verb).
  const starstar = segs.findIndex((x) => x.kind === "starstar");
  if (starstar >= 0 && segs.slice(starstar + 1).some((x) => x.kind !== "var-end")) {
    throw new Error(`path template "${source}": "**" must be the last segment`);
  }
  return {
    source,
    verb,
    match(path) {
      let p = path;
      if (verb !== undefined) {
        if (!p.endsWith(`:${verb}`)) return undefined;
        p = p.slice(0, -verb.length - 1);
      }
      if (!p.startsWith("/")) return undefined;
      const raw = p.slice(1).split("/");
      const vars = new Map<string, string>();
      return walk(segs, 0, raw, 0, vars, []) ? vars : undefined;
    },
  };
}

function simple(s: string, source: string): Seg {
  if (s === "*") return { kind: "star" };
  if (s === "**") return { kind: "starstar" };
  if (s === "" || /[{}=]/.test(s)) throw new Error(`path template "${source}": bad segment "${s}"`);
  // Literals may be percent-encoded in the template; compare decoded forms.
  return { kind: "literal", value: safeDecode(s, false) };
}

/** splitTop splits on "/" outside braces. */
function splitTop(body: string, source: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of body) {
    if (ch === "{") depth++;
    if (ch === "}") depth--;
    if (depth < 0 || depth > 1) throw new Error(`path template "${source}": unbalanced braces`);
    if (ch === "/" && depth === 0) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  if (depth !== 0) throw new Error(`path template "${source}": unbalanced braces`);
  out.push(cur);
  return out;
}

interface Open {
  field: string;
  multi: boolean;
  start: number;
}

function walk(segs: Seg[], si: number, raw: string[], ri: number, vars: Map<string, string>, open: Open[]): boolean {
  if (si === segs.length) return ri === raw.length;
  const s = segs[si];
  switch (s.kind) {
    case "literal":
      return ri < raw.length && safeDecode(raw[ri], false) === s.value && walk(segs, si + 1, raw, ri + 1, vars, open);
    case "star":
      return ri < raw.length && raw[ri] !== "" && walk(segs, si + 1, raw, ri + 1, vars, open);
    case "starstar":
      // Greedy with backtracking: "**" matches zero or more segments.
      for (let n = raw.length - ri; n >= 0; n--) {
        if (walk(segs, si + 1, raw, ri + n, vars, open)) return true;
      }
      return false;
    case "var-start":
      return walk(segs, si + 1, raw, ri, vars, [...open, { field: s.field, multi: s.multi, start: ri }]);
    case "var-end": {
      const o = open[open.length - 1];
      const parts = raw.slice(o.start, ri);
      // Single-segment variables decode everything; multi-segment ones keep
      // an encoded "/" (%2F) encoded, as http.proto specifies.
      const value = parts.map((x) => safeDecode(x, o.multi)).join("/");
      if (value === undefined) return false;
      vars.set(o.field, value);
      if (walk(segs, si + 1, raw, ri, vars, open.slice(0, -1))) return true;
      vars.delete(o.field);
      return false;
    }
  }
}

function safeDecode(s: string, keepSlash: boolean): string {
  try {
    // Split keeping the separators so "%2f" and "%2F" stay exactly as sent.
    return keepSlash ? s.split(/(%2F)/i).map((part, i) => (i % 2 ? part : decodeURIComponent(part))).join("") : decodeURIComponent(s);
  } catch {
    return s;
  }
}

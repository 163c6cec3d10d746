/**
 * Summaries of V8 `.cpuprofile` files (`node --cpu-prof`) for the
 * benchmarks' reports: self and inclusive samples by function and file,
 * grouped as ours, a library, node internals or V8, and each busy sample
 * charged to whose code was on the stack. bench/gateway.bench.ts profiles the
 * gateway with it, bench/load.bench.ts the processes of the mesh.
 *
 * Our modules run through tsx, which minifies whitespace, so a profile's
 * positions point into tsx's output; with the source maps a process wrote as
 * it exited (bench/source-maps.ts) they are mapped back to our lines.
 */
import { readFileSync, readdirSync, statSync } from "node:fs";
import { SourceMap, type SourceMapPayload } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fmtPct, mdCode } from "./report.js";

/** The parts of a V8 `.cpuprofile` the summary reads. */
interface CpuProfile {
  readonly nodes: ReadonlyArray<{
    readonly id: number;
    readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
    readonly hitCount?: number;
    readonly children?: readonly number[];
  }>;
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

/** FunctionCost is the self and inclusive samples of one function (name + file + line) in a profile. */
export interface FunctionCost {
  readonly key: string;
  readonly name: string;
  readonly where: string;
  readonly group: string;
  self: number;
  inclusive: number;
}

/** ProfileSummary is the hot-path summary of one profile. */
export interface ProfileSummary {
  readonly file: string;
  readonly windowOnly: boolean;
  readonly totalSamples: number;
  readonly idleSamples: number;
  readonly busySamples: number;
  readonly functions: FunctionCost[];
  readonly groups: Map<string, number>;
  /** owners attributes each busy sample to whose code is on the stack (see ownerOf). */
  readonly owners: Map<string, number>;
}

/** SummaryOptions say which samples count and how our positions are found. */
export interface SummaryOptions {
  /** window, on the profiled process's monotonic clock (µs, `process.hrtime`), keeps only the samples inside it. */
  readonly window?: readonly [number, number];
  /** sourceMapsFile is the JSON a process wrote with `dumpSourceMaps` (bench/source-maps.ts). */
  readonly sourceMapsFile?: string;
}

/** Libraries a sample is charged to, in this order, when none of our code is on the stack. */
const libraryOwners = [
  "library: connect",
  "library: grpc-js",
  "library: fastify",
  "library: protobuf-es",
  "library: MikroORM",
  "library: PGlite",
  "library: OpenTelemetry",
];

/** Our groups a sample is charged to, in this order: the service's own code, then what it shares. */
const ourOwners = ["ours: platform", "ours: mesh"];

/**
 * ownerOf charges a sample to the code that caused it: our code when any of
 * it is on the stack (a service's own first, then platform/, then mesh/; so
 * what a library does because we called it counts as ours), else the first
 * library of libraryOwners on the stack, else GC, (program) or node/V8 alone
 * (event loop, I/O callbacks).
 */
function ownerOf(leaf: FunctionCost, groupsOnStack: ReadonlyMap<string, number>): string {
  if (leaf.group.startsWith("V8: garbage") || leaf.group.startsWith("V8: (program)")) return leaf.group;
  const service = [...groupsOnStack.keys()].find((g) => g.startsWith("ours: services/"));
  const owner = service ?? [...ourOwners, ...libraryOwners].find((g) => groupsOnStack.has(g));
  if (owner) return `${owner} on the stack`;
  const other = [...groupsOnStack.keys()].find((g) => g.startsWith("library:") || g.startsWith("tsx") || g.startsWith("WASM"));
  return other ? `${other} on the stack` : "node / V8 only (event loop, I/O callbacks)";
}

const fastifyFamily = new Set([
  "fastify",
  "find-my-way",
  "avvio",
  "light-my-request",
  "fast-json-stringify",
  "secure-json-parse",
  "fast-querystring",
  "fast-decode-uri-component",
  "toad-cache",
  "rfdc",
  "abstract-logging",
  "process-warning",
  "fastify-plugin",
  "content-type",
  "ret",
  "safe-regex2",
  "json-schema-ref-resolver",
  "fast-uri",
  "ajv",
  "@fastify/error",
  "@fastify/fast-json-stringify-compiler",
  "@fastify/ajv-compiler",
  "@fastify/merge-json-schemas",
  "@fastify/forwarded",
  "@fastify/proxy-addr",
  "proxy-addr",
  "forwarded",
  "semver",
]);

/** whereOf shortens a callFrame url: our files relative to the repository, packages from their name, node: as is. */
function whereOf(url: string, root: string): string {
  if (url === "") return "";
  const nm = url.lastIndexOf("/node_modules/");
  if (nm >= 0) return url.slice(nm + "/node_modules/".length);
  if (url.startsWith(root)) return url.slice(root.length);
  return url;
}

/** groupOf puts a function in ours / a library / node internals / V8. */
function groupOf(name: string, url: string, where: string): string {
  if (name === "__name" && !url.includes("/node_modules/") && url.startsWith("file:")) return "tsx: keepNames helper (`__name`) in our files";
  if (url === "") {
    if (name === "(idle)") return "idle";
    if (name === "(garbage collector)") return "V8: garbage collector";
    if (name === "(program)") return "V8: (program) — native code outside JS";
    if (name === "(root)") return "root";
    return "V8: native builtins";
  }
  // The only WebAssembly in the mesh is PGlite's PostgreSQL.
  if (url.startsWith("wasm://")) return "WASM: PGlite's PostgreSQL";
  if (url.startsWith("node:")) return "node internals";
  if (url.includes("/node_modules/")) {
    const parts = where.split("/");
    const pkg = parts[0].startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0];
    if (pkg.startsWith("@grpc/")) return "library: grpc-js";
    if (pkg.startsWith("@bufbuild/")) return "library: protobuf-es";
    if (pkg.startsWith("@connectrpc/")) return "library: connect";
    if (pkg.startsWith("@mikro-orm/")) return "library: MikroORM";
    if (pkg.startsWith("@electric-sql/")) return "library: PGlite";
    if (pkg.startsWith("@opentelemetry/")) return "library: OpenTelemetry";
    if (fastifyFamily.has(pkg) || pkg.startsWith("@fastify/")) return "library: fastify";
    return `library: other (${pkg})`;
  }
  const services = /^services\/([^/]+)\//.exec(where);
  if (services) return `ours: services/${services[1]}`;
  if (where.startsWith("mesh/")) return "ours: mesh";
  if (where.startsWith("platform/")) return "ours: platform";
  if (where.startsWith("gen/")) return "ours: gen (generated descriptors)";
  if (where.startsWith("bench/")) return "bench harness";
  return "other";
}

/**
 * summariseProfile aggregates the samples of a `.cpuprofile` by function
 * (name + file + line): self samples (the function was on top of the stack)
 * and inclusive samples (it was anywhere on the stack, counted once per
 * sample). With a `window` (the process's monotonic clock, µs) only the
 * samples inside it count, so start-up and shutdown stay out.
 */
export function summariseProfile(file: string, options: SummaryOptions = {}): ProfileSummary {
  const { window, sourceMapsFile } = options;
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const root = new URL("../", import.meta.url).href;
  const maps = new Map<string, SourceMap>();
  if (sourceMapsFile) {
    try {
      const payloads = JSON.parse(readFileSync(sourceMapsFile, "utf8")) as Record<string, SourceMapPayload>;
      for (const [url, payload] of Object.entries(payloads)) maps.set(url, new SourceMap(payload));
    } catch {
      // Without the maps, our functions show tsx's positions.
    }
  }
  const sourceLines = new Map<string, string[]>();
  const lineOf = (url: string, line: number): string => {
    let lines = sourceLines.get(url);
    if (!lines) {
      try {
        lines = readFileSync(fileURLToPath(url), "utf8").split("\n");
      } catch {
        lines = [];
      }
      sourceLines.set(url, lines);
    }
    return (lines[line] ?? "").trim();
  };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));

  // Self samples per node: from the sample timeline when the window lines up, else hitCount.
  const selfOf = new Map<number, number>();
  let windowOnly = false;
  if (window && profile.samples && profile.timeDeltas && window[0] >= profile.startTime && window[1] <= profile.endTime) {
    windowOnly = true;
    let t = profile.startTime;
    for (let i = 0; i < profile.samples.length; i++) {
      t += profile.timeDeltas[i];
      if (t < window[0] || t > window[1]) continue;
      selfOf.set(profile.samples[i], (selfOf.get(profile.samples[i]) ?? 0) + 1);
    }
  } else {
    for (const n of profile.nodes) if (n.hitCount) selfOf.set(n.id, n.hitCount);
  }

  const costs = new Map<string, FunctionCost>();
  const groups = new Map<string, number>();
  let total = 0;
  let idle = 0;
  const keyOf = (n: CpuProfile["nodes"][number]): FunctionCost => {
    const { functionName, url } = n.callFrame;
    let { lineNumber } = n.callFrame;
    const columnNumber = (n.callFrame as { columnNumber?: number }).columnNumber ?? 0;
    const where = whereOf(url, root);
    let name = functionName || "(anonymous)";
    // Our modules run through tsx (whitespace-minified): map back to the .ts line.
    const map = maps.get(url);
    if (map && functionName !== "__name") {
      const entry = map.findEntry(lineNumber, columnNumber) as { originalLine?: number };
      if (entry.originalLine !== undefined) {
        lineNumber = entry.originalLine;
        if (!functionName) name = `(anonymous) ${lineOf(url, lineNumber).slice(0, 60)}`;
      }
    }
    const key = `${name}\u0000${where}\u0000${lineNumber}`;
    let c = costs.get(key);
    if (!c) {
      c = { key, name, where: where ? `${where}:${lineNumber + 1}` : "(native)", group: groupOf(functionName, url, where), self: 0, inclusive: 0 };
      costs.set(key, c);
    }
    return c;
  };

  // Walk the call tree from the root, keeping which functions (and groups) are on the stack.
  const onStack = new Map<string, number>();
  const groupsOnStack = new Map<string, number>();
  const owners = new Map<string, number>();
  const bump = (m: Map<string, number>, k: string, by: number): void => {
    const v = (m.get(k) ?? 0) + by;
    if (v === 0) m.delete(k);
    else m.set(k, v);
  };
  const visit = (id: number): void => {
    const n = byId.get(id)!;
    const c = keyOf(n);
    bump(onStack, c.key, 1);
    bump(groupsOnStack, c.group, 1);
    const self = selfOf.get(id) ?? 0;
    if (self > 0) {
      total += self;
      c.self += self;
      bump(groups, c.group, self);
      if (c.group === "idle") idle += self;
      else {
        for (const k of onStack.keys()) costs.get(k)!.inclusive += self;
        bump(owners, ownerOf(c, groupsOnStack), self);
      }
    }
    for (const child of n.children ?? []) visit(child);
    bump(onStack, c.key, -1);
    bump(groupsOnStack, c.group, -1);
  };
  visit(profile.nodes[0].id);

  const functions = [...costs.values()].filter((c) => c.group !== "idle" && c.group !== "root");
  return { file, windowOnly, totalSamples: total, idleSamples: idle, busySamples: total - idle, functions, groups, owners };
}

/** newestMainThreadProfile finds the profile of a process's main thread (thread id 0) in `dir`. */
export function newestMainThreadProfile(dir: string, pid: number): string | undefined {
  const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile") && f.includes(`.${pid}.`));
  const main = files.filter((f) => f.includes(`.${pid}.0.`));
  const pick = (main.length ? main : files).map((f) => join(dir, f));
  return pick.sort((a, b) => statSync(b).size - statSync(a).size)[0];
}

/**
 * profileTables renders a summary as Markdown: self time by group, samples by
 * whose code is on the stack, the top functions by self time, and our
 * functions by inclusive time. Shares are of the busy samples.
 */
export function profileTables(profile: ProfileSummary, top = 15): string[] {
  const busy = profile.busySamples;
  const out: string[] = [];
  out.push("Self time by group:", "");
  out.push("| Group | self share |");
  out.push("|---|---:|");
  for (const [group, n] of [...profile.groups.entries()].filter(([k]) => k !== "idle" && k !== "root").sort((a, b) => b[1] - a[1])) {
    out.push(`| ${group} | ${fmtPct(n, busy)} |`);
  }
  out.push(
    "",
    "Samples by whose code is on the stack (a sample counts for our code when any of it is on the stack — the service's own first, then platform/, then mesh/ — so what a library or node does because we called it counts as ours; otherwise for the first of connect, grpc-js, fastify, protobuf-es, MikroORM, PGlite, OpenTelemetry on the stack):",
    "",
  );
  out.push("| On the stack | share |");
  out.push("|---|---:|");
  for (const [owner, n] of [...profile.owners.entries()].sort((a, b) => b[1] - a[1])) out.push(`| ${owner} | ${fmtPct(n, busy)} |`);
  out.push("", `Top ${top} functions by self time:`, "");
  out.push("| # | Function | File | Group | self share | inclusive share |");
  out.push("|---:|---|---|---|---:|---:|");
  [...profile.functions]
    .sort((a, b) => b.self - a.self)
    .slice(0, top)
    .forEach((c, i) => out.push(`| ${i + 1} | ${mdCode(c.name)} | ${mdCode(c.where)} | ${c.group} | ${fmtPct(c.self, busy)} | ${fmtPct(c.inclusive, busy)} |`));
  out.push(
    "",
    `Our functions by inclusive time (self plus what they call, while they are on the stack), top ${top}. An async function's inclusive time covers what runs before its first \`await\`; what runs after an \`await\` is a continuation under \`runMicrotasks\`.`,
    "",
  );
  out.push("| # | Function | File | self share | inclusive share |");
  out.push("|---:|---|---|---:|---:|");
  [...profile.functions]
    .filter((c) => c.group.startsWith("ours") || c.group.startsWith("tsx"))
    .sort((a, b) => b.inclusive - a.inclusive)
    .slice(0, top)
    .forEach((c, i) => out.push(`| ${i + 1} | ${mdCode(c.name)} | ${mdCode(c.where)} | ${fmtPct(c.self, busy)} | ${fmtPct(c.inclusive, busy)} |`));
  return out;
}

/**
 * Every number of docs/performance.md and docs/reliability.md with one
 * command: the benchmarks one after the other (never two at once: each
 * measures CPU on a 2-core machine), then the fault scenarios, each report
 * into a folder of its own.
 *
 *   npm run bench:all -- [--out DIR] [--database-url URL] [--only load,load-postgres,transport,gateway,routing,reliability]
 *       [--soak-seconds 180] [--quick]
 *
 * --out            where the reports go (default bench-results/<UTC date and time>): load.md, load-postgres.md,
 *                  transport.md, gateway.md, routing.md, reliability/<scenario>.json and reliability.log, profiles/.
 * --database-url   a PostgreSQL server for the second load run (the runs persisted there instead of the embedded
 *                  PGlite); default $BENCH_DATABASE_URL; without either, that run is left out and said so.
 * --quick          short windows and one repeat each: to see that everything runs, not to publish.
 *
 * The exit code is 1 when any part failed; the summary at the end says which.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, openSync, closeSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

/** Part is one command of the set: its name (for --only) and what it runs. */
interface Part {
  readonly name: string;
  readonly what: string;
  readonly argv?: readonly string[];
  /** report is the file its stdout goes to, under --out. */
  readonly report: string;
  readonly env?: Readonly<Record<string, string>>;
  /** skipped says why the part does not run here, when it does not. */
  readonly skipped?: string;
}

const { values } = parseArgs({
  options: {
    out: { type: "string" },
    "database-url": { type: "string", default: process.env.BENCH_DATABASE_URL ?? "" },
    only: { type: "string" },
    "soak-seconds": { type: "string", default: "180" },
    quick: { type: "boolean", default: false },
  },
});

const stamp = new Date().toISOString().replace(/:\d\d\.\d+Z$/, "Z").replace(":", "");
const out = resolve(values.out ?? join("bench-results", stamp));
const quick = values.quick;
const tsx = (script: string, ...args: string[]): string[] => ["node", "--import", "tsx", script, ...args];
const loadWindow = quick ? ["--seconds", "1", "--repeats", "1", "--warmup", "0.5", "--rates", "none"] : ["--seconds", "5", "--repeats", "3"];
const databaseUrl = values["database-url"];

const parts: Part[] = [
  {
    name: "load",
    what: "the mesh under load, embedded defaults (PGlite), with CPU profiles",
    argv: tsx("bench/load.bench.ts", ...loadWindow, ...(quick ? [] : ["--profile-dir", join(out, "profiles")])),
    report: "load.md",
  },
  {
    name: "load-postgres",
    what: "the runs again, persisted in a PostgreSQL server",
    argv: tsx("bench/load.bench.ts", ...loadWindow, "--cases", "run-v1,run-v2,run-hybrid,agent-v1,agent-v2", "--env", `DATABASE_URL=${databaseUrl}`),
    report: "load-postgres.md",
    skipped: databaseUrl ? undefined : "no --database-url (or BENCH_DATABASE_URL) given",
  },
  {
    name: "transport",
    what: "grpc-js against Connect-ES, server and client",
    argv: tsx("bench/transport.bench.ts", ...(quick ? ["--seconds", "1", "--repeats", "1"] : [])),
    report: "transport.md",
  },
  {
    name: "gateway",
    what: "REST through the gateway against gRPC straight",
    argv: tsx("bench/gateway.bench.ts", ...(quick ? ["--seconds", "1", "--repeats", "1"] : [])),
    report: "gateway.md",
  },
  {
    name: "routing",
    what: "routing decision time in process",
    argv: tsx("bench/routing.bench.ts", ...(quick ? ["--repeats", "3", "--warmup", "1"] : [])),
    report: "routing.md",
  },
  {
    name: "reliability",
    what: "the fault scenarios (agent killed, PostgreSQL and Redis down, SIGTERM, slow model, soak)",
    argv: ["npx", "vitest", "run", "test/reliability"],
    report: "reliability.log",
    env: { RELIABILITY_REPORT_DIR: join(out, "reliability"), SOAK_SECONDS: values["soak-seconds"] },
  },
];

const only = values.only?.split(",");
const unknown = only?.filter((n) => !parts.some((p) => p.name === n)) ?? [];
if (unknown.length > 0) {
  console.error(`--only: no part named ${unknown.join(", ")}; the parts are ${parts.map((p) => p.name).join(", ")}`);
  process.exit(2);
}
mkdirSync(out, { recursive: true });
console.error(`bench:all: reports go to ${out}`);

const results: { name: string; outcome: string }[] = [];
for (const part of parts.filter((p) => !only || only.includes(p.name))) {
  if (part.skipped) {
    results.push({ name: part.name, outcome: `skipped: ${part.skipped}` });
    console.error(`bench:all: ${part.name} skipped: ${part.skipped}`);
    continue;
  }
  const started = performance.now();
  console.error(`bench:all: ${part.name} — ${part.what}…`);
  const report = openSync(join(out, part.report), "w");
  // Progress on our stderr as it happens; the report (stdout) into its file.
  // Without npm's script name, each report names the command that made it, not `npm run bench:all`.
  const env: NodeJS.ProcessEnv = { ...process.env, ...part.env, npm_lifecycle_event: undefined };
  const run = spawnSync(part.argv![0], part.argv!.slice(1), { stdio: ["ignore", report, "inherit"], env });
  closeSync(report);
  const seconds = Math.round((performance.now() - started) / 1000);
  const ok = run.status === 0;
  results.push({ name: part.name, outcome: `${ok ? "ok" : `FAILED (exit ${run.status ?? run.signal ?? run.error?.message})`} in ${seconds} s → ${join(out, part.report)}` });
}

console.error("bench:all: summary");
for (const r of results) console.error(`  ${r.name}: ${r.outcome}`);
process.exit(results.some((r) => r.outcome.startsWith("FAILED")) ? 1 : 0);

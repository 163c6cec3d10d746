/**
 * The routing benchmark (docs/performance.md, "Routing"): how long a routing
 * decision takes in process, for every labelled request (eval/*.jsonl)
 * repeated, after a warm-up, with the semantic router (the default) and the
 * old keyword router in the same run, interleaved pass by pass.
 *
 *   npm run bench:routing -- [--repeats 50] [--warmup 5] [--learned 500] [--quiet-cores 0.3] [--quiet-wait 120]
 *
 * The machine is shared: before measuring it waits (up to --quiet-wait
 * seconds) for a second in which other work used less than --quiet-cores
 * cores, and the report says how many cores other work used while it measured.
 *
 * Cases: each router's `route()` (what the orchestrator calls); the semantic
 * router for an organization with `--learned` examples learned from feedback
 * (the catalogs' example requests stand in for them); and ExplainRoute through
 * the real orchestrator service on an in-memory Connect transport (routing,
 * the planning and check steps, the cost, and the (de)serialisation of the
 * call). Also the one-off time to build a router for a catalog (it is rebuilt
 * when the catalogs change). The Markdown report goes to stdout.
 */
import { parseArgs } from "node:util";
import { readdirSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { RouteMode, Target } from "../gen/raptorflow/v3/orchestrator_pb.js";
import { createKeywordRouter, type Router } from "../services/orchestrator/router.js";
import { createLearnedExamples } from "../services/orchestrator/routing/learned-examples.js";
import { catalogAgents, inProcessOrchestrator, readLabelled } from "../services/orchestrator/routing/route-eval.js";
import { createSemanticRouter } from "../services/orchestrator/routing/semantic-router.js";
import { percentile } from "./closed-loop.js";
import { busyMs, fmtCores, fmtMs, machineLine } from "./report.js";

const { values } = parseArgs({
  options: {
    repeats: { type: "string", default: "50" },
    warmup: { type: "string", default: "5" },
    learned: { type: "string", default: "500" },
    "quiet-cores": { type: "string", default: "0.3" },
    "quiet-wait": { type: "string", default: "120" },
  },
});
const repeats = Number(values.repeats);
const warmup = Number(values.warmup);
const learnedCount = Number(values.learned);

const files = readdirSync("eval").filter((f) => f.endsWith(".jsonl")).sort();
const inputs = files.flatMap((f) => readLabelled(`eval/${f}`).map((r) => r.input));
const agents = catalogAgents();

const buildMs: Record<string, number> = {};
const timed = <T>(name: string, f: () => T): T => {
  const t = process.hrtime.bigint();
  const out = f();
  buildMs[name] = Number(process.hrtime.bigint() - t) / 1e6;
  return out;
};
const semantic = timed("semantic-v1", () => createSemanticRouter(agents));
const keyword = timed("keyword-v0", () => createKeywordRouter(agents));
const learned = createLearnedExamples();
const stand = agents.flatMap((a) => a.examples);
for (let i = 0; i < learnedCount; i++) learned.add({ organization: "bench", input: `${stand[i % stand.length]} (${Math.floor(i / stand.length)})`, target: [Target.V1, Target.V2, Target.HYBRID][i % 3] });
const withLearned = createSemanticRouter(agents, { learned });
const explainer = inProcessOrchestrator();

interface Case {
  readonly name: string;
  readonly run: (input: string) => unknown;
  readonly samples: number[];
}
const routeOf = (r: Router, organization?: string) => (input: string) => r.route({ input, mode: RouteMode.UNSPECIFIED, agents: [], organization });
const sync: Case[] = [
  { name: "semantic-v1 `route()`", run: routeOf(semantic), samples: [] },
  { name: `semantic-v1 \`route()\`, organization with ${learnedCount} learned examples`, run: routeOf(withLearned, "bench"), samples: [] },
  { name: "keyword-v0 `route()` (the old router)", run: routeOf(keyword), samples: [] },
];
const explain: Case = { name: "ExplainRoute, in-memory transport (semantic-v1)", run: (input) => explainer.explainRoute({ input }), samples: [] };

async function pass(measure: boolean): Promise<void> {
  for (const c of sync) {
    for (const input of inputs) {
      const t = process.hrtime.bigint();
      c.run(input);
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      if (measure) c.samples.push(ms);
    }
  }
  for (const input of inputs) {
    const t = process.hrtime.bigint();
    await explain.run(input);
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (measure) explain.samples.push(ms);
  }
}

/** otherCores is how many cores work other than this process used over a window. */
function otherCores(busy0: number, cpu0: NodeJS.CpuUsage, t0: number): number {
  const cpu = process.cpuUsage(cpu0);
  const wallMs = performance.now() - t0;
  return Math.max(0, (busyMs() - busy0 - (cpu.user + cpu.system) / 1000) / wallMs);
}

/** waitQuiet waits for a second in which other work used fewer than `cores` cores, or gives up after `seconds`. */
async function waitQuiet(cores: number, seconds: number): Promise<number> {
  const until = Date.now() + seconds * 1000;
  for (;;) {
    const [b, c, t] = [busyMs(), process.cpuUsage(), performance.now()];
    await sleep(1000);
    const other = otherCores(b, c, t);
    if (other < cores || Date.now() > until) return other;
  }
}

process.stderr.write(`${inputs.length} inputs from ${files.join(", ")}; warm-up ${warmup} passes, ${repeats} measured passes\n`);
for (let i = 0; i < warmup; i++) await pass(false);
const before = await waitQuiet(Number(values["quiet-cores"]), Number(values["quiet-wait"]));
const [busy0, cpu0, t0] = [busyMs(), process.cpuUsage(), performance.now()];
for (let i = 0; i < repeats; i++) {
  await pass(true);
  if ((i + 1) % 10 === 0) process.stderr.write(`  ${i + 1}/${repeats}\n`);
}
const during = otherCores(busy0, cpu0, t0);

const lines = [
  `- Date: ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`,
  `- Machine: ${machineLine()}`,
  `- Runtime: Node.js ${process.version}`,
  `- Inputs: the ${inputs.length} labelled requests of ${files.map((f) => `eval/${f}`).join(" and ")}, ${repeats} measured passes after ${warmup} warm-up passes`,
  `- Other work on the machine: ${fmtCores(before)} cores in the second before measuring, ${fmtCores(during)} cores on average while measuring`,
  "",
  "| Case | decisions | p50 ms | p99 ms | mean ms | max ms |",
  "|---|---:|---:|---:|---:|---:|",
  ...[...sync, explain].map((c) => {
    const s = [...c.samples].sort((a, b) => a - b);
    const mean = s.reduce((a, b) => a + b, 0) / s.length;
    return `| ${c.name} | ${s.length} | ${fmtMs(percentile(s, 50))} | ${fmtMs(percentile(s, 99))} | ${fmtMs(mean)} | ${fmtMs(s[s.length - 1])} |`;
  }),
  "",
  `Building a router for the catalogs (${agents.length} agents; once, and again when the catalogs change): semantic-v1 ${fmtMs(buildMs["semantic-v1"])} ms, keyword-v0 ${fmtMs(buildMs["keyword-v0"])} ms.`,
];
console.log(lines.join("\n"));

/**
 * The transport benchmark behind the speed decision (docs/performance.md):
 * small unary `raptorflow.agent.v1.AgentService/GetAgent` calls, one handler
 * written once as a Connect `ServiceImpl`, served and called by the stacks
 * below, each server in its own process.
 *
 *   npx tsx bench/transport.bench.ts [--seconds N] [--concurrency C] [--warmup W] [--repeats R] [--cases 1,1b,…]
 *
 * `--cases 1,2` runs only some cases (ids as in the table). Progress goes to stderr; the Markdown report goes to stdout.
 */
import * as os from "node:os";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { runClosedLoop, type ClosedLoopResult } from "./closed-loop.js";
import { spawnServerProcess, type CpuSample } from "./server-process.js";
import { createBenchClient, type ClientKind } from "./transport-clients.js";
import type { ServerKind } from "./transport-server.js";
import { busyMs, fmtCores, fmtInt, fmtMs, fmtRatio, machineLine, median, versionOf } from "./report.js";

interface BenchCase {
  readonly id: string;
  readonly server: ServerKind;
  readonly client: ClientKind;
}

const cases: readonly BenchCase[] = [
  { id: "1", server: "mesh", client: "grpc-js" },
  { id: "1b", server: "grpc-js-bare", client: "grpc-js" },
  { id: "2", server: "connect", client: "grpc-js" },
  { id: "2b", server: "connect-bare", client: "grpc-js" },
  { id: "3", server: "mesh", client: "connect-grpc" },
  { id: "4", server: "mesh", client: "mesh-transport" },
];

const serverLabels: Record<ServerKind, string> = {
  mesh: "grpc-js, our adapter via `createMeshServer` (validation on)",
  "grpc-js-bare": "grpc-js, `grpcServiceAdapter` on a bare `grpc.Server` (no validation)",
  connect: "Connect-ES `connectNodeAdapter` on `http2.createServer` (validation on)",
  "connect-bare": "Connect-ES `connectNodeAdapter` on `http2.createServer` (no validation)",
};

const clientLabels: Record<ClientKind, string> = {
  "grpc-js": "plain grpc-js `makeUnaryRequest`",
  "connect-grpc": "Connect `createGrpcTransport` (connect-node) + `createClient`",
  "mesh-transport": "our `createGrpcTransport` (mesh) + `createClient`",
};

/** One run's derived metrics. */
interface RunMetrics {
  readonly callsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly serverCores: number;
  readonly clientCores: number;
  readonly machineCores: number;
  readonly errors: number;
}


async function runOnce(c: BenchCase, opts: { concurrency: number; warmupMs: number; durationMs: number }): Promise<RunMetrics> {
  const server = await spawnServerProcess(c.server);
  const client = createBenchClient(c.client, `127.0.0.1:${server.port}`);
  try {
    await client.call(); // connect and fail fast on a broken case
    let cpuStart: Promise<CpuSample> | undefined;
    let cpuEnd: Promise<CpuSample> | undefined;
    let busy0 = 0;
    let busy1 = 0;
    const r: ClosedLoopResult = await runClosedLoop(() => client.call(), {
      ...opts,
      onWindowStart: () => {
        busy0 = busyMs();
        cpuStart = server.cpu();
      },
      onWindowEnd: () => {
        busy1 = busyMs();
        cpuEnd = server.cpu();
      },
    });
    const [a, b] = await Promise.all([cpuStart!, cpuEnd!]);
    if (r.errors > 0) process.stderr.write(`  case ${c.id}: ${r.errors} errors, first: ${String(r.firstError)}\n`);
    return {
      callsPerSec: r.calls / r.seconds,
      p50Ms: r.p50Ms,
      p99Ms: r.p99Ms,
      serverCores: (b.cpuMicros - a.cpuMicros) / 1e6 / ((b.wallMs - a.wallMs) / 1000),
      clientCores: r.clientCpuSeconds / r.seconds,
      machineCores: (busy1 - busy0) / 1000 / r.seconds,
      errors: r.errors,
    };
  } finally {
    client.close();
    await server.stop();
  }
}



async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: "string", default: "5" },
      concurrency: { type: "string", default: "50" },
      warmup: { type: "string", default: "1" },
      repeats: { type: "string", default: "3" },
      cases: { type: "string" },
    },
  });
  const durationMs = Number(values.seconds) * 1000;
  const warmupMs = Number(values.warmup) * 1000;
  const concurrency = Number(values.concurrency);
  const repeats = Number(values.repeats);
  if (![durationMs, warmupMs, concurrency, repeats].every((n) => Number.isFinite(n) && n >= 0) || concurrency < 1 || repeats < 1) {
    throw new Error("--seconds, --warmup, --concurrency and --repeats must be positive numbers");
  }

  const selected = values.cases ? cases.filter((c) => values.cases!.split(",").includes(c.id)) : cases;
  if (selected.length === 0) throw new Error(`--cases takes a comma-separated list of ${cases.map((c) => c.id).join(", ")}`);

  // Runs are interleaved (round after round over every case) so that a slow
  // spell of the machine does not land on a single case.
  const runs = new Map<string, RunMetrics[]>(selected.map((c) => [c.id, []]));
  for (let round = 1; round <= repeats; round++) {
    for (const c of selected) {
      process.stderr.write(`round ${round}/${repeats}, case ${c.id} (${c.server} <- ${c.client})… `);
      const m = await runOnce(c, { concurrency, warmupMs, durationMs });
      runs.get(c.id)!.push(m);
      process.stderr.write(`${fmtInt(m.callsPerSec)} calls/s\n`);
    }
  }

  const med = new Map(
    selected.map((c) => {
      const rs = runs.get(c.id)!;
      const pick = (f: (m: RunMetrics) => number): number => median(rs.map(f));
      const callsPerSec = pick((m) => m.callsPerSec);
      const serverCores = pick((m) => m.serverCores);
      const clientCores = pick((m) => m.clientCores);
      return [
        c.id,
        {
          callsPerSec,
          p50Ms: pick((m) => m.p50Ms),
          p99Ms: pick((m) => m.p99Ms),
          serverCores,
          clientCores,
          machineCores: pick((m) => m.machineCores),
          perServerCore: pick((m) => m.callsPerSec / m.serverCores),
          perClientCore: pick((m) => m.callsPerSec / m.clientCores),
          errors: rs.reduce((n, m) => n + m.errors, 0),
        },
      ] as const;
    }),
  );
  const m = (id: string) => med.get(id)!;

  const out: string[] = [];
  out.push("## Transport benchmark", "");
  out.push(`- Date: ${new Date().toISOString()}`);
  out.push(`- Machine: ${machineLine()}`);
  out.push(`- Runtime: Node.js ${process.version}; @grpc/grpc-js ${versionOf("@grpc/grpc-js")}, @connectrpc/connect-node ${versionOf("@connectrpc/connect-node")}, @bufbuild/protobuf ${versionOf("@bufbuild/protobuf")}`);
  out.push(`- Load: ${concurrency} calls in flight from one client process, ${warmupMs / 1000} s warm-up + ${durationMs / 1000} s measured, ${repeats} runs per case (interleaved); each column is the median over the runs`);
  out.push("- Call: `raptorflow.agent.v1.AgentService/GetAgent`, one small Agent answered by the same Connect `ServiceImpl`; server in its own process on 127.0.0.1, cleartext HTTP/2");
  out.push("");
  out.push("| Case | Server | Client | calls/s | p50 ms | p99 ms | server CPU (cores) | calls/s per server core | client CPU (cores) | calls/s per client core | machine CPU (cores) | errors |");
  out.push("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const c of selected) {
    const r = m(c.id);
    out.push(
      `| ${c.id} | ${serverLabels[c.server]} | ${clientLabels[c.client]} | ${fmtInt(r.callsPerSec)} | ${fmtMs(r.p50Ms)} | ${fmtMs(r.p99Ms)} | ${fmtCores(r.serverCores)} | ${fmtInt(r.perServerCore)} | ${fmtCores(r.clientCores)} | ${fmtInt(r.perClientCore)} | ${fmtCores(r.machineCores)} | ${r.errors} |`,
    );
  }
  out.push("");
  out.push("Runs (calls/s): " + selected.map((c) => `${c.id}: ${runs.get(c.id)!.map((r) => fmtInt(r.callsPerSec)).join(" / ")}`).join("; "));
  out.push("");
  out.push("### Ratios", "");
  out.push("| Comparison | calls/s | per core of the side compared |");
  out.push("|---|---:|---:|");
  const ratio = (label: string, a: string, b: string, side: "server" | "client"): void => {
    if (!med.has(a) || !med.has(b)) return;
    const per = side === "server" ? m(a).perServerCore / m(b).perServerCore : m(a).perClientCore / m(b).perClientCore;
    out.push(`| ${label} | ${fmtRatio(m(a).callsPerSec / m(b).callsPerSec)} | ${fmtRatio(per)} |`);
  };
  ratio("server: grpc-js mesh (1) / Connect (2), both validating, same grpc-js client", "1", "2", "server");
  ratio("server: grpc-js bare (1b) / Connect bare (2b), no validation, same grpc-js client", "1b", "2b", "server");
  ratio("client: plain grpc-js (1) / Connect gRPC transport (3), same mesh server", "1", "3", "client");
  ratio("client: mesh transport (4) / Connect gRPC transport (3), same mesh server", "4", "3", "client");
  ratio("validation: mesh server without (1b) / with (1) validation", "1b", "1", "server");
  process.stdout.write(out.join("\n") + "\n");
}

await main();

/**
 * The routing evaluation: routes every request of a labelled JSON Lines file
 * through ExplainRoute and prints accuracy, per-class precision and recall,
 * and the confusion matrix.
 *
 *   npm run eval:routing -- <file.jsonl> [--part all|tune|held-out] [--addr host:port]
 *       [--router semantic|keyword] [--misses]
 *
 * In process by default: the real orchestrator service over an in-memory
 * transport, with the catalogs from services/*-agents. With --addr it calls a
 * running orchestrator (or anything serving raptorflow.v3.OrchestratorService)
 * over gRPC. --part picks the tuning or the held-out part of the file (split by
 * a hash of each input; see services/orchestrator/routing/route-eval.ts).
 * --router keyword evaluates the old keyword router in process, for comparison.
 */
import { parseArgs } from "node:util";
import { createClient } from "@connectrpc/connect";
import { OrchestratorService } from "../gen/raptorflow/v3/orchestrator_pb.js";
import { createGrpcTransport } from "../mesh/grpc-transport.js";
import { createKeywordRouter } from "../services/orchestrator/router.js";
import { evaluate, formatEvaluation, inProcessOrchestrator, readLabelled, selectPart, type Part } from "../services/orchestrator/routing/route-eval.js";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    part: { type: "string", default: "all" },
    addr: { type: "string" },
    router: { type: "string", default: "semantic" },
    misses: { type: "boolean", default: false },
  },
});
const file = positionals[0];
const part = values.part as Part;
if (!file || !["all", "tune", "held-out"].includes(part) || !["semantic", "keyword"].includes(values.router!)) {
  console.error("usage: npm run eval:routing -- <file.jsonl> [--part all|tune|held-out] [--addr host:port] [--router semantic|keyword] [--misses]");
  process.exit(2);
}
if (values.addr && values.router !== "semantic") {
  console.error("--router chooses the in-process router; a running orchestrator uses its own");
  process.exit(2);
}

const rows = selectPart(readLabelled(file), part);
const transport = values.addr ? createGrpcTransport({ address: values.addr }) : undefined;
const client = transport
  ? createClient(OrchestratorService, transport)
  : inProcessOrchestrator(values.router === "keyword" ? { router: createKeywordRouter } : {});
try {
  const e = await evaluate(rows, (input) => client.explainRoute({ input }, { timeoutMs: 10_000 }));
  const where = values.addr ? `ExplainRoute at ${values.addr}` : "ExplainRoute in process";
  console.log(formatEvaluation(e, `${file} (${part}, ${rows.length} requests) via ${where}`, values.misses));
} finally {
  transport?.close();
}

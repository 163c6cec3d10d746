import * as grpc from "@grpc/grpc-js";
import { Code } from "@connectrpc/connect";
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { CreateRunRequestSchema, OrchestratorService, Run_State, type Run } from "../../gen/raptorflow/v3/orchestrator_pb.js";

/**
 * Outcome is how one request of a load ended: its class (`200 SUCCEEDED`,
 * `503 UNAVAILABLE`, `OK SUCCEEDED`, `UNAVAILABLE`, `network ECONNREFUSED`,
 * or `hang` — no answer before the request's hang bound), the run it
 * names when the answer carries one, and the error message when it failed.
 */
export interface Outcome {
  /** kind is the class the counts group by. */
  readonly kind: string;
  /** run is the run's name when the answer carried a run. */
  readonly run?: string;
  /** message is the error's message when the request failed. */
  readonly message?: string;
}

/** LoadRequest is one request a worker sends: its number, its request id (the run's `request_id`) and the phase it was sent in. */
export interface LoadRequest {
  /** index counts the requests of the load from 0. */
  readonly index: number;
  /** requestId is unique per request and is sent as the run's `request_id`, so every run in the database is traced to its request. */
  readonly requestId: string;
  /** phase is the label of the load when the request was sent (`before`, `down`, `after` …). */
  readonly phase: string;
}

/** LoadRecord is a request and how it ended. */
export interface LoadRecord extends LoadRequest {
  /** outcome of the request. */
  readonly outcome: Outcome;
  /** elapsedMs from send to answer (or to the hang bound). */
  readonly elapsedMs: number;
  /** sentAt and answeredAt are `performance.now()` readings, to order requests against faults. */
  readonly sentAt: number;
  /** answeredAt is when the answer (or the hang bound) came. */
  readonly answeredAt: number;
}

/** Sender sends one request; it must honour `signal`, which aborts at the hang bound. */
export type Sender = (req: LoadRequest, signal: AbortSignal) => Promise<Outcome>;

/** LoadOptions configure a closed-loop load. */
export interface LoadOptions {
  /** name prefixes the request ids (letters, digits, `-`, `_`). */
  readonly name: string;
  /** concurrency is the number of workers; each sends its next request when the last one ended. */
  readonly concurrency: number;
  /** send sends one request. */
  readonly send: Sender;
  /**
   * hangAfterMs bounds a request: one not answered by then is a hang (lost).
   * Give it the request's deadline plus generous slack: it separates "slow"
   * from "never answers", not fast from slow.
   */
  readonly hangAfterMs: number;
  /** pauseMs is each worker's pause between two requests (default 0). */
  readonly pauseMs?: number;
  /** phase is the first phase's label (default `steady`). */
  readonly phase?: string;
}

/** PhaseCounts are the counts of one phase of a load. */
export interface PhaseCounts {
  /** sent requests. */
  sent: number;
  /** answered counts the requests by outcome class (hangs included, as `hang`). */
  answered: Record<string, number>;
}

/** LoadReport is what a load did: every request by class, overall and by phase. */
export interface LoadReport extends PhaseCounts {
  /** hung is the number of requests with no answer before their bound. */
  readonly hung: number;
  /** byPhase splits the counts by the phase each request was sent in. */
  readonly byPhase: Record<string, PhaseCounts>;
  /** runs are the run names the answers carried. */
  readonly runs: readonly string[];
}

/** Load is a running closed-loop load. */
export interface Load {
  /** records are the requests that ended so far, in the order they ended. */
  readonly records: readonly LoadRecord[];
  /** inFlight are the requests sent and not yet ended, with when each was sent (performance.now()). */
  inFlight(): readonly { requestId: string; sentAt: number }[];
  /** phase labels the requests sent from now on. */
  phase(name: string): void;
  /** until resolves when `predicate` holds for the records so far (checked after each answer), or rejects after `timeoutMs`. */
  until(predicate: (records: readonly LoadRecord[]) => boolean, timeoutMs: number, what: string): Promise<void>;
  /** stop sends no more requests, waits for those in flight (each is bounded by hangAfterMs) and reports. */
  stop(): Promise<LoadReport>;
}

/**
 * startLoad runs a closed-loop load: `concurrency` workers, each sending a
 * request, waiting for its end and sending the next, until stopped. Every
 * request is recorded — a request cannot vanish from the counts: it is
 * answered, fails, or is counted as a hang at its bound.
 */
export function startLoad(options: LoadOptions): Load {
  const records: LoadRecord[] = [];
  const outstanding = new Map<string, number>();
  let phase = options.phase ?? "steady";
  let next = 0;
  let stopping = false;
  const waiters = new Set<() => void>();
  const notify = (): void => waiters.forEach((w) => w());

  const one = async (): Promise<void> => {
    const req: LoadRequest = { index: next, requestId: `${options.name}-${next}`, phase };
    next++;
    const sentAt = performance.now();
    outstanding.set(req.requestId, sentAt);
    const signal = AbortSignal.timeout(options.hangAfterMs);
    let outcome: Outcome;
    try {
      // A sender that ignored its signal would still be cut off here, a second after the bound.
      let guard: NodeJS.Timeout | undefined;
      const backstop = new Promise<Outcome>((resolve) => (guard = setTimeout(() => resolve({ kind: "hang", message: "the sender ignored its signal" }), options.hangAfterMs + 1_000)));
      outcome = await Promise.race([options.send(req, signal), backstop]).finally(() => clearTimeout(guard));
    } catch (e) {
      outcome = signal.aborted ? { kind: "hang" } : { kind: `thrown ${(e as Error).name}`, message: (e as Error).message };
    }
    const answeredAt = performance.now();
    outstanding.delete(req.requestId);
    records.push({ ...req, outcome, sentAt, answeredAt, elapsedMs: answeredAt - sentAt });
    notify();
  };

  const workers = Array.from({ length: options.concurrency }, async () => {
    while (!stopping) {
      await one();
      if (options.pauseMs) await new Promise((r) => setTimeout(r, options.pauseMs));
    }
  });

  return {
    records,
    inFlight: () => [...outstanding].map(([requestId, sentAt]) => ({ requestId, sentAt })),
    phase(name) {
      phase = name;
    },
    until(predicate, timeoutMs, what) {
      if (predicate(records)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (!predicate(records)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`load: ${what} did not happen within ${timeoutMs} ms (${records.length} requests ended)`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
    async stop() {
      stopping = true;
      await Promise.all(workers);
      return reportOf(records);
    },
  };
}

/** reportOf counts records by class, overall and by phase. */
export function reportOf(records: readonly LoadRecord[]): LoadReport {
  const byPhase: Record<string, PhaseCounts> = {};
  const answered: Record<string, number> = {};
  for (const r of records) {
    const p = (byPhase[r.phase] ??= { sent: 0, answered: {} });
    p.sent++;
    p.answered[r.outcome.kind] = (p.answered[r.outcome.kind] ?? 0) + 1;
    answered[r.outcome.kind] = (answered[r.outcome.kind] ?? 0) + 1;
  }
  return {
    sent: records.length,
    answered,
    hung: answered.hang ?? 0,
    byPhase,
    runs: records.flatMap((r) => (r.outcome.run ? [r.outcome.run] : [])),
  };
}

/** codeName is a gRPC code's name as the wire protocol spells it (`UNAVAILABLE`). */
export function codeName(code: number): string {
  return grpc.status[code] ?? `CODE_${code}`;
}

/** stateName is a run state without its prefix (`SUCCEEDED` from `STATE_SUCCEEDED` or Run_State.SUCCEEDED). */
export function stateName(state: string | Run_State): string {
  return typeof state === "string" ? state.replace(/^STATE_/, "") : (Run_State[state] ?? String(state));
}

/** connectCodeInText finds the first Connect code name followed by a colon in a run's error. */
const connectCodeInText = new RegExp(`\\b(${Object.values(Code).filter((v) => typeof v === "string").join("|")}):`);

/**
 * runKind classifies a run that came back: its state, and for a run that did
 * not succeed the code its error starts with (`FAILED UNAVAILABLE`), so a
 * clean failure is told apart from an internal error.
 */
function runKind(state: string, error: string | undefined): string {
  // The orchestrator writes Connect's code name (`Unavailable: …`, first or after a count of failed steps); the counts use the wire's (`UNAVAILABLE`).
  const code = connectCodeInText.exec(error ?? "")?.[1]?.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
  return state === "SUCCEEDED" || !code ? state : `${state} ${code}`;
}

/** networkFailure classifies a fetch that got no HTTP answer: the refused or reset connection's code. */
function networkFailure(e: unknown, signal: AbortSignal): Outcome {
  if (signal.aborted) return { kind: "hang" };
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  return { kind: `network ${cause?.code ?? (e as Error).name}`, message: cause?.message ?? (e as Error).message };
}

/** RestRunOptions configure restRunSender. */
export interface RestRunOptions {
  /** body is the CreateRun request's JSON (without `requestId`, which the load fills in). */
  readonly body: (req: LoadRequest) => Record<string, unknown>;
  /** deadlineMs is sent as `Grpc-Timeout`, the deadline the gateway gives the whole run; the gateway's default when undefined. */
  readonly deadlineMs?: number;
}

/**
 * restRunSender sends `POST /v3/runs` to the gateway as a REST client does
 * and classifies the answer: `200 <run state>` for a run, `<HTTP status>
 * <gRPC code>` for a google.rpc.Status error, `network <code>` when no HTTP
 * answer came.
 */
export function restRunSender(gatewayUrl: string, options: RestRunOptions): Sender {
  return async (req, signal) => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (options.deadlineMs !== undefined) headers["grpc-timeout"] = `${options.deadlineMs}m`;
    let res: Response;
    let text: string;
    try {
      res = await fetch(`${gatewayUrl}/v3/runs`, { method: "POST", headers, body: JSON.stringify({ ...options.body(req), requestId: req.requestId }), signal });
      text = await res.text();
    } catch (e) {
      return networkFailure(e, signal);
    }
    let json: { state?: string; name?: string; code?: number; message?: string; error?: string } = {};
    try {
      json = JSON.parse(text);
    } catch {
      return { kind: `${res.status} not JSON`, message: text.slice(0, 200) };
    }
    if (res.ok) return { kind: `${res.status} ${runKind(stateName(json.state ?? "UNSPECIFIED"), json.error)}`, run: json.name, message: json.error || undefined };
    return { kind: `${res.status} ${json.code === undefined ? "?" : codeName(json.code)}`, message: json.message };
  };
}

/** GrpcRunOptions configure grpcRunSender. */
export interface GrpcRunOptions {
  /** request is the CreateRun request (without `requestId`, which the load fills in). */
  readonly request: (req: LoadRequest) => MessageInitShape<typeof CreateRunRequestSchema>;
  /** deadlineMs is the call's deadline; the hang bound when undefined. */
  readonly deadlineMs?: number;
}

/** GrpcRunSender is a Sender of CreateRun calls over one grpc-js channel, closed with close(). */
export interface GrpcRunSender {
  /** send is the Sender. */
  readonly send: Sender;
  /** close closes the channel. */
  close(): void;
}

/**
 * grpcRunSender calls `raptorflow.v3.OrchestratorService/CreateRun` with
 * plain grpc-js over one channel (as a long-lived internal client would) and
 * classifies the answer: `OK <run state>`, or the gRPC code's name.
 */
export function grpcRunSender(address: string, options: GrpcRunOptions): GrpcRunSender {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const method = OrchestratorService.method.createRun;
  const send: Sender = (req, signal) =>
    new Promise<Outcome>((resolve) => {
      const deadline = Date.now() + (options.deadlineMs ?? 600_000);
      const call = client.makeUnaryRequest<unknown, Run>(
        `/${method.parent.typeName}/${method.name}`,
        (m) => Buffer.from(toBinary(method.input, m as never)),
        (b) => fromBinary(method.output, b),
        create(method.input, { ...options.request(req), requestId: req.requestId }),
        new grpc.Metadata(),
        { deadline },
        (err, run) => {
          signal.removeEventListener("abort", hang);
          if (err) resolve({ kind: codeName(err.code), message: err.details });
          else resolve({ kind: `OK ${runKind(stateName(run!.state), run!.error)}`, run: run!.name, message: run!.error || undefined });
        },
      );
      const hang = (): void => {
        resolve({ kind: "hang" });
        call.cancel();
      };
      signal.addEventListener("abort", hang, { once: true });
    });
  return { send, close: () => client.close() };
}

/** endedIn is a predicate for Load.until: at least `n` requests sent in `phase` have ended. */
export function endedIn(phase: string, n: number): (records: readonly LoadRecord[]) => boolean {
  return (records) => records.filter((r) => r.phase === phase).length >= n;
}

/** inARow is a predicate for Load.until: the last `n` requests sent in `phase` all ended as `kind`. */
export function inARow(phase: string, n: number, kind: string): (records: readonly LoadRecord[]) => boolean {
  return (records) => {
    const tail = records.filter((r) => r.phase === phase).slice(-n);
    return tail.length === n && tail.every((r) => r.outcome.kind === kind);
  };
}

/** reached resolves whether a Load.until condition was met (false at its timeout), for scenarios that report a miss instead of stopping at it. */
export function reached(until: Promise<void>): Promise<boolean> {
  return until.then(
    () => true,
    () => false,
  );
}

import { durationFromMs, MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor, type StreamResponse, type UnaryRequest, type UnaryResponse } from "@connectrpc/connect";
import type { Attributes } from "@opentelemetry/api";
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  CircuitState,
  ExponentialBackoff,
  SamplingBreaker,
  TaskCancelledError,
  bulkhead,
  circuitBreaker,
  handleWhen,
  retry,
  wrap,
  type IDisposable,
} from "cockatiel";
import { ErrorInfoSchema, RetryInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { logger } from "./logger.js";
import { instruments } from "./telemetry.js";
import { resiliencePolicyOf, type CallPolicy, type RetryBudgetPolicy, type ServiceName } from "./topology.js";

/**
 * retryableCodes are the codes a safe call is retried on: the upstream could
 * not take the call (UNAVAILABLE: down, draining, unreachable) or had no room
 * for it (RESOURCE_EXHAUSTED). Nothing else is retried: DEADLINE_EXCEEDED has
 * no time left, and every other code is the answer.
 */
export const retryableCodes: ReadonlySet<Code> = new Set([Code.Unavailable, Code.ResourceExhausted]);

/**
 * upstreamFailureCodes are the answers that count against an upstream's
 * circuit: it is down or unreachable, too slow for its own default deadline
 * (a caller's shorter deadline passing does not count), or out of room. A caller's mistake (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED,
 * FAILED_PRECONDITION, ALREADY_EXISTS …), a caller's cancellation and a bug
 * in one handler (INTERNAL, UNKNOWN) never open it: they say nothing about
 * whether the upstream can serve its other calls. Nor does a refusal a
 * deeper hop made and the upstream passed on (isPassedOnRefusal).
 */
export const upstreamFailureCodes: ReadonlySet<Code> = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.ResourceExhausted]);

/** errorDomain is the `domain` of the ErrorInfo of the refusals here: reason `CIRCUIT_OPEN` or `BULKHEAD_FULL`, metadata `upstream`. */
export const errorDomain = "raptorflow.ai";

/**
 * isPassedOnRefusal tells an error that a deeper hop's resilience made (its
 * circuit to its own upstream open, its bulkhead full) and the upstream
 * passed on: the upstream itself answered, so it does not count against its
 * circuit, and a circuit that is open further down is not retried.
 */
export function isPassedOnRefusal(e: ConnectError, reasons: readonly string[] = ["CIRCUIT_OPEN", "BULKHEAD_FULL"]): boolean {
  return e.findDetails(ErrorInfoSchema).some((i) => i.domain === errorDomain && reasons.includes(i.reason));
}

/** idempotencyKeyHeader is the metadata that makes any call safe to repeat: the upstream answers a repeated key with the first answer. */
export const idempotencyKeyHeader = "idempotency-key";

/** CircuitStateName is a circuit's state as operators read it. */
export type CircuitStateName = "closed" | "open" | "half-open";

/** ResilienceSnapshot is an upstream's resilience state at one moment, as the status page and metrics show it. */
export interface ResilienceSnapshot {
  /** upstream is the service called. */
  readonly upstream: ServiceName;
  /** address is where it is called, when known. */
  readonly address?: string;
  /** circuit is the breaker's state: `open` refuses calls, `half-open` lets one probe through. */
  readonly circuit: CircuitStateName;
  /** recentFailures counts the calls that failed against the upstream within the breaker's window. */
  readonly recentFailures: number;
  /** probeInMs is how long an open circuit still refuses calls before it lets a probe through; 0 when it is not open. */
  readonly probeInMs: number;
  /** inFlight counts the calls the bulkhead lets run now. */
  readonly inFlight: number;
  /** queued counts the calls waiting for a bulkhead slot. */
  readonly queued: number;
}

/**
 * Resilience is one calling process's protection for one upstream: its
 * bulkhead, circuit breaker and retry budget, and the interceptor that
 * applies them to every call of a transport.
 */
export interface Resilience {
  /** upstream is the service it protects. */
  readonly upstream: ServiceName;
  /** interceptor applies the policy to every call of the transports that carry it. */
  readonly interceptor: Interceptor;
  /** circuit is the breaker's state now. */
  readonly circuit: CircuitStateName;
  /** snapshot is the state now, for status pages and tests. */
  snapshot(): ResilienceSnapshot;
  /** onCircuitChange calls `listener` at every change of the circuit's state until disposed. */
  onCircuitChange(listener: (state: CircuitStateName) => void): IDisposable;
}

/** ResilienceOptions configure createResilience. */
export interface ResilienceOptions {
  /** address is where the upstream is called (`host:port`): it labels snapshots and metrics. */
  readonly address?: string;
}

/** RetryBudget bounds an upstream's retries to a share of its recent calls. */
export interface RetryBudget {
  /** recordCall counts one call (not a retry) to the upstream: each earns `ratio` of a retry. */
  recordCall(): void;
  /** tryRetry takes one retry from the budget, or says no when the window has none left. */
  tryRetry(): boolean;
}

/**
 * createRetryBudget makes a retry budget: over the last `windowMs`, at most
 * `minRetries + ratio × calls` retries. Under a burst of failures the calls
 * keep coming but the retries stop at the budget, so retries add at most
 * `ratio` to the load of an upstream that is already failing.
 */
export function createRetryBudget(policy: RetryBudgetPolicy, now: () => number = Date.now): RetryBudget {
  const calls = createWindowCounter(policy.windowMs, now);
  const retries = createWindowCounter(policy.windowMs, now);
  return {
    recordCall: () => calls.add(),
    tryRetry() {
      if (retries.total() + 1 > policy.minRetries + policy.ratio * calls.total()) return false;
      retries.add();
      return true;
    },
  };
}

/**
 * isSafeToRetry says whether a call may be sent again: its method is
 * declared free of side effects or idempotent in the contract (`option
 * idempotency_level`), or the call carries an `idempotency-key` the upstream
 * deduplicates by.
 */
export function isSafeToRetry(req: Pick<UnaryRequest, "method" | "header">): boolean {
  const level = req.method.idempotency;
  if (level === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS || level === MethodOptions_IdempotencyLevel.IDEMPOTENT) return true;
  return !!req.header.get(idempotencyKeyHeader);
}

/**
 * createResilience builds the resilience of one upstream from its call
 * policy (mesh/topology.ts) with cockatiel's policies:
 *
 * - a circuit breaker (`SamplingBreaker`) that opens when more than
 *   `breaker.failureRate` of at least `breaker.minimumCalls` calls in
 *   `breaker.windowMs` fail with an upstreamFailureCodes code; while open it
 *   refuses every call at once with UNAVAILABLE (`<upstream>: circuit open
 *   after N failures in the last Xs; retrying in Ys`, a RetryInfo and a
 *   `retry-after` in the metadata); after `breaker.halfOpenAfterMs` one probe
 *   call goes through (the others are still refused, not held) and its
 *   success closes the circuit;
 * - a bulkhead of `bulkhead.maxConcurrent` calls in flight and
 *   `bulkhead.maxQueued` waiting; a call past both is refused with
 *   RESOURCE_EXHAUSTED naming the upstream and the limits;
 * - retries of unary calls that are safe to repeat (isSafeToRetry) on
 *   retryableCodes, up to `retry.maxAttempts` attempts with exponential
 *   backoff and decorrelated jitter, each one taken from the retry budget
 *   (one the budget refuses is not made: the caller gets the error it had),
 *   never after the call's deadline or cancellation. Every attempt goes
 *   through the breaker and the bulkhead; a refusal by either is not retried,
 *   nor an open circuit further down that the upstream passed on.
 *
 * Streams get the breaker and the bulkhead while they open (a server stream
 * until its first message or its end; a bidi stream until its headers) and
 * are never retried. No call outlives its deadline, queued or backing off:
 * the caller gets the deadline's error when it passes.
 */
export function createResilience(upstream: ServiceName, policy: CallPolicy, options: ResilienceOptions = {}): Resilience {
  const { breaker: breakerPolicy, bulkhead: bulkheadPolicy, retryBudget } = resiliencePolicyOf(policy);
  const log = logger("resilience").child({ upstream });
  const labels: Attributes = { "peer.service": upstream, ...(options.address ? { "server.address": options.address } : {}) };

  const breaker = circuitBreaker(
    handleWhen((e) => e instanceof ConnectError && upstreamFailureCodes.has(e.code) && !isPassedOnRefusal(e) && !callersOwnDeadline.has(e)),
    {
      halfOpenAfter: breakerPolicy.halfOpenAfterMs,
      breaker: new SamplingBreaker({
        threshold: breakerPolicy.failureRate,
        duration: breakerPolicy.windowMs,
        // cockatiel counts its minimum as a rate over the window.
        minimumRps: Math.max(1, breakerPolicy.minimumCalls) / (breakerPolicy.windowMs / 1000),
      }),
    },
  );
  const limiter = bulkhead(bulkheadPolicy.maxConcurrent, bulkheadPolicy.maxQueued);
  // The breaker is outside the bulkhead: an open circuit refuses a call before it takes a slot or waits for one.
  const guard = wrap(breaker, limiter);
  const budget = createRetryBudget(retryBudget);
  const backoff = new ExponentialBackoff({
    initialDelay: policy.retry.initialBackoffMs,
    maxDelay: policy.retry.maxBackoffMs,
    exponent: policy.retry.backoffMultiplier,
  });
  const maxAttempts = Math.max(1, policy.retry.maxAttempts);

  /** callersOwnDeadline are DEADLINE_EXCEEDED errors of calls whose deadline was the caller's, shorter than the upstream's default. */
  const callersOwnDeadline = new WeakSet<ConnectError>();
  // What the breaker counted, for the messages: cockatiel keeps its own window opaque.
  const failures = createWindowCounter(breakerPolicy.windowMs);
  breaker.onFailure(({ handled }) => handled && failures.add());
  let openedAt = 0;
  let failuresWhenOpened = 0;
  breaker.onBreak(() => {
    openedAt = Date.now();
    failuresWhenOpened = failures.total();
    log.warn({ failures: failuresWhenOpened, window_ms: breakerPolicy.windowMs, probe_in_ms: breakerPolicy.halfOpenAfterMs }, "circuit opened");
  });
  breaker.onHalfOpen(() => log.info("circuit half-open: probing"));
  breaker.onReset(() => log.info("circuit closed"));
  limiter.onReject(() => resilienceInstruments().rejected.add(1, { ...labels, "raptorflow.rejection": "bulkhead_full" }));

  const probeInMs = (): number => (breaker.state === CircuitState.Open ? Math.max(0, openedAt + breakerPolicy.halfOpenAfterMs - Date.now()) : 0);

  function circuitOpen(): ConnectError {
    const wait = probeInMs();
    const next = breaker.state === CircuitState.HalfOpen ? "a probe call is testing it now" : `retrying in ${seconds(wait)}`;
    const n = failuresWhenOpened;
    resilienceInstruments().rejected.add(1, { ...labels, "raptorflow.rejection": "circuit_open" });
    return new ConnectError(
      `${upstream}: circuit open after ${n} failure${n === 1 ? "" : "s"} in the last ${seconds(breakerPolicy.windowMs)}; ${next}`,
      Code.Unavailable,
      { "retry-after": String(Math.ceil(wait / 1000)) },
      [
        { desc: ErrorInfoSchema, value: { reason: "CIRCUIT_OPEN", domain: errorDomain, metadata: { upstream } } },
        { desc: RetryInfoSchema, value: { retryDelay: durationFromMs(wait) } },
      ],
    );
  }

  function bulkheadFull(): ConnectError {
    const { maxConcurrent, maxQueued } = bulkheadPolicy;
    return new ConnectError(
      `${upstream}: too many calls at once (bulkhead of ${maxConcurrent} in flight and ${maxQueued} queued is full)`,
      Code.ResourceExhausted,
      undefined,
      [{ desc: ErrorInfoSchema, value: { reason: "BULKHEAD_FULL", domain: errorDomain, metadata: { upstream, max_concurrent: String(maxConcurrent), max_queued: String(maxQueued) } } }],
    );
  }

  /** guarded runs one attempt through the breaker and the bulkhead; their refusals come out as cockatiel's errors. */
  function guarded<T>(attempt: () => Promise<T>, signal: AbortSignal): Promise<T> {
    // cockatiel holds every other call while a half-open probe is out, as long as the probe takes (an agent call: tens of
    // seconds); refuse them at once instead, as an open circuit does.
    if (breaker.state === CircuitState.HalfOpen) return Promise.reject(new BrokenCircuitError());
    return guard.execute(async () => {
      const started = performance.now();
      try {
        return await attempt();
      } catch (e) {
        // An attempt cut off by the deadline failed with DEADLINE_EXCEEDED (counted), one the caller cancelled with CANCELLED (not).
        const err = signal.aborted ? abortError(signal) : e;
        // A deadline that passed before the upstream's own default one is the caller's, shorter: it says nothing about the
        // upstream, and counting it would let one impatient client open the circuit for every caller.
        if (err instanceof ConnectError && err.code === Code.DeadlineExceeded && performance.now() - started < policy.timeoutMs * 0.9) callersOwnDeadline.add(err);
        throw err;
      }
    }, signal);
  }

  /** retried runs a safe unary call's attempts: the breaker and bulkhead around each, the budget and the deadline between them. */
  function retried<T>(attempt: () => Promise<T>, signal: AbortSignal): Promise<T> {
    let attempts = 0;
    const again = (e: unknown): boolean => {
      if (!(e instanceof ConnectError) || !retryableCodes.has(e.code) || signal.aborted || attempts >= maxAttempts) return false;
      if (isPassedOnRefusal(e, ["CIRCUIT_OPEN"])) return false;
      const allowed = budget.tryRetry();
      resilienceInstruments().retries.add(1, { ...labels, "raptorflow.retry.outcome": allowed ? "retried" : "budget_exhausted" });
      return allowed;
    };
    return retry(handleWhen(again), { maxAttempts: maxAttempts - 1, backoff }).execute(() => {
      attempts++;
      return guarded(attempt, signal);
    }, signal);
  }

  const refusal = (e: unknown, signal: AbortSignal): unknown => {
    if (e instanceof BrokenCircuitError) return circuitOpen();
    if (e instanceof BulkheadRejectedError) return bulkheadFull();
    if (e instanceof TaskCancelledError) return abortError(signal);
    return e;
  };

  const interceptor: Interceptor = (next) => (req) => {
    const { signal } = req;
    let work: Promise<UnaryResponse | StreamResponse>;
    if (req.stream) {
      // A server stream is open once it answers: a failure before its first message counts as a failed call would.
      const open = req.method.methodKind === "server_streaming" ? () => next(req).then(firstAnswer) : () => next(req);
      work = guarded(open, signal);
    } else {
      // A call earns retry budget once it reaches the upstream, not when an open circuit refuses it.
      let counted = false;
      const send = (r: typeof req) => {
        if (!counted) budget.recordCall();
        counted = true;
        return next(r);
      };
      // Each attempt gets its own headers: interceptors inside this one (credentials) set theirs again.
      work = maxAttempts > 1 && isSafeToRetry(req) ? retried(() => send({ ...req, header: new Headers(req.header) }), signal) : guarded(() => send(req), signal);
    }
    return untilAborted(
      signal,
      work.catch((e: unknown) => {
        throw refusal(e, signal);
      }),
    );
  };

  const circuit = (): CircuitStateName => circuitStateName(breaker.state);
  return {
    upstream,
    interceptor,
    get circuit() {
      return circuit();
    },
    snapshot: () => ({
      upstream,
      ...(options.address ? { address: options.address } : {}),
      circuit: circuit(),
      recentFailures: failures.total(),
      probeInMs: probeInMs(),
      inFlight: bulkheadPolicy.maxConcurrent - limiter.executionSlots,
      queued: bulkheadPolicy.maxQueued - limiter.queueSlots,
    }),
    onCircuitChange: (listener) => breaker.onStateChange((s) => listener(circuitStateName(s))),
  };
}

/**
 * createResilienceInterceptor is the interceptor of a new createResilience:
 * its own breaker, bulkhead and budget. Transports to the mesh share one per
 * upstream through upstreamResilience instead.
 */
export function createResilienceInterceptor(upstream: ServiceName, policy: CallPolicy, options: ResilienceOptions = {}): Interceptor {
  return createResilience(upstream, policy, options).interceptor;
}

const shared = new Map<string, Resilience>();

/**
 * upstreamResilience is this process's one resilience for an upstream at an
 * address: every transport to it shares the breaker, the bulkhead and the
 * budget, so that what one client sees protects the others. Its state is in
 * resilienceState() and the `raptorflow.upstream.circuit.state` metric.
 */
export function upstreamResilience(upstream: ServiceName, address: string, policy: CallPolicy): Resilience {
  const key = `${upstream} ${address}`;
  let r = shared.get(key);
  if (!r) {
    r = createResilience(upstream, policy, { address });
    shared.set(key, r);
  }
  // The circuit gauge reads the shared ones: make sure the meter provider in force has it.
  resilienceInstruments();
  return r;
}

/** resilienceState is the state of every upstream this process calls (its upstreamResilience ones). */
export function resilienceState(): ResilienceSnapshot[] {
  return [...shared.values()].map((r) => r.snapshot());
}

const circuitStates: readonly CircuitStateName[] = ["closed", "open", "half-open"];

const resilienceInstruments = () =>
  instruments("resilience", (meter) => {
    const state = meter.createObservableGauge("raptorflow.upstream.circuit.state", {
      unit: "1",
      description: "1 for the state each upstream's circuit is in (closed, open, half-open), 0 for the others, per calling process.",
    });
    state.addCallback((r) => {
      for (const s of shared.values()) {
        const snap = s.snapshot();
        const at: Attributes = { "peer.service": snap.upstream, ...(snap.address ? { "server.address": snap.address } : {}) };
        for (const c of circuitStates) r.observe(c === snap.circuit ? 1 : 0, { ...at, "raptorflow.circuit.state": c });
      }
    });
    return {
      rejected: meter.createCounter("raptorflow.upstream.rejected", {
        unit: "{call}",
        description: "Calls to an upstream refused by the caller itself, by reason: circuit_open, bulkhead_full.",
      }),
      retries: meter.createCounter("raptorflow.upstream.retries", {
        unit: "{retry}",
        description: "Retries of safe calls to an upstream, by outcome: retried, or budget_exhausted (not made).",
      }),
    };
  });

function circuitStateName(state: CircuitState): CircuitStateName {
  switch (state) {
    // Isolated is cockatiel's open-by-hand (`isolate()`), which nothing here does: it refuses calls as open does.
    case CircuitState.Open:
    case CircuitState.Isolated:
      return "open";
    case CircuitState.HalfOpen:
      return "half-open";
    default:
      return "closed";
  }
}

/**
 * firstAnswer waits for a server stream's first message (or its end) and
 * gives the stream back whole: grpc-js reports a stream that fails at once
 * (an upstream that is down, a trailers-only error) only as it is read.
 */
async function firstAnswer(res: UnaryResponse | StreamResponse): Promise<UnaryResponse | StreamResponse> {
  if (!res.stream) return res;
  const it = res.message[Symbol.asyncIterator]();
  const first = await it.next();
  async function* whole() {
    if (first.done) return;
    yield first.value;
    yield* { [Symbol.asyncIterator]: () => it };
  }
  return { ...res, message: whole() };
}

/** abortError is why a call's signal aborted: DEADLINE_EXCEEDED when its deadline passed, CANCELLED when its caller gave up. */
function abortError(signal: AbortSignal): ConnectError {
  return ConnectError.from(signal.reason, Code.Canceled);
}

/**
 * untilAborted settles with `work`, or with the abort's error as soon as the
 * signal aborts: cockatiel waits out a backoff and a bulkhead queue whatever
 * the signal says, and the caller must not wait with it.
 */
function untilAborted<T>(signal: AbortSignal, work: Promise<T>): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {});
    return Promise.reject(abortError(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortError(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

/** seconds writes a duration for people: `10s`, `4.2s`, `0.2s`. */
function seconds(ms: number): string {
  return `${Math.ceil(ms / 100) / 10}s`;
}

/** WindowCounter counts events over a sliding window, in ten buckets. */
interface WindowCounter {
  add(n?: number): void;
  total(): number;
}

function createWindowCounter(windowMs: number, now: () => number = Date.now): WindowCounter {
  const buckets = 10;
  const width = Math.max(1, windowMs / buckets);
  const counts = new Float64Array(buckets);
  const stamps = new Float64Array(buckets).fill(-Infinity);
  return {
    add(n = 1) {
      const b = Math.floor(now() / width);
      const i = b % buckets;
      if (stamps[i] !== b) {
        stamps[i] = b;
        counts[i] = 0;
      }
      counts[i] += n;
    },
    total() {
      const b = Math.floor(now() / width);
      let t = 0;
      for (let i = 0; i < buckets; i++) if (stamps[i] > b - buckets) t += counts[i];
      return t;
    },
  };
}

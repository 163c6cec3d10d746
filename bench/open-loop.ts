/**
 * A fixed-rate (open-loop) load run: requests go out on a schedule, one every
 * 1/rate seconds, whether or not earlier ones have answered — the way users
 * arrive — and each latency is measured from the time the request was due,
 * not from when it went out, so a stalled server or a late load generator
 * shows in the latency instead of lowering the rate (no coordinated
 * omission). autocannon's own rate limit (`overallRate`) cannot do this: it
 * gives each connection a quota per second, which it spends in a burst at the
 * start of each second.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { WindowHooks } from "./autocannon-load.js";
import { windowOf, type LoadWindow } from "./closed-loop.js";

/** OpenLoopOptions configure one fixed-rate run. */
export interface OpenLoopOptions extends WindowHooks {
  /** ratePerSec is the schedule: requests per second, evenly spaced. */
  readonly ratePerSec: number;
  /** warmupMs runs the schedule before anything is recorded. */
  readonly warmupMs: number;
  /** durationMs is the measured window: the requests due inside it are the ones measured. */
  readonly durationMs: number;
  /**
   * maxInFlight bounds the requests waiting for an answer. A request that
   * falls due while that many are out is not sent, and counts as a failure
   * (`not sent: N in flight`): the server is not keeping up with the rate.
   */
  readonly maxInFlight: number;
  /** drainMs is how long the run waits, after the window, for the measured requests still out (default 15 s); later ones count as failures. */
  readonly drainMs?: number;
  /** classify names a failure for the report (default: its message). */
  readonly classify?: (e: unknown) => string;
}

/** OpenLoopWindow is what a fixed-rate run measured: the requests due inside the window. */
export interface OpenLoopWindow extends LoadWindow {
  /** due is the number of requests the schedule had inside the window. */
  readonly due: number;
  /** notSent is how many of them were not sent because maxInFlight were out. */
  readonly notSent: number;
  /** maxLagMs is how late (behind schedule) the generator itself sent a request at worst. */
  readonly maxLagMs: number;
}

/**
 * runOpenLoop calls `call` on a fixed schedule for a warm-up and a measured
 * window, then waits for the measured requests to answer. The latencies are
 * those of the requests due inside the window that succeeded, from the time
 * each was due.
 */
export async function runOpenLoop(call: () => Promise<unknown>, opts: OpenLoopOptions): Promise<OpenLoopWindow> {
  const classify = opts.classify ?? ((e: unknown) => (e instanceof Error ? e.message : String(e)));
  const intervalMs = 1000 / opts.ratePerSec;
  const start = performance.now();
  const windowFrom = start + opts.warmupMs;
  const windowTo = windowFrom + opts.durationMs;
  let latencies = new Float64Array(1 << 14);
  let ok = 0;
  let failed = 0;
  let due = 0;
  let notSent = 0;
  let maxLagMs = 0;
  let inFlight = 0;
  let measuredOut = 0;
  const failures: Record<string, number> = {};
  let firstFailure: string | undefined;
  let drained: (() => void) | undefined;
  const fail = (kind: string, detail = kind): void => {
    failed++;
    failures[kind] = (failures[kind] ?? 0) + 1;
    firstFailure ??= detail;
  };
  const record = (ms: number): void => {
    if (ok === latencies.length) {
      const grown = new Float64Array(latencies.length * 2);
      grown.set(latencies);
      latencies = grown;
    }
    latencies[ok++] = ms;
  };

  const send = (dueAt: number, measured: boolean): void => {
    if (measured) due++;
    if (inFlight >= opts.maxInFlight) {
      if (measured) {
        notSent++;
        fail(`not sent: ${opts.maxInFlight} in flight`);
      }
      return;
    }
    maxLagMs = Math.max(maxLagMs, performance.now() - dueAt);
    inFlight++;
    if (measured) measuredOut++;
    call().then(
      () => {
        if (measured) record(performance.now() - dueAt);
      },
      (e: unknown) => {
        if (measured) fail(classify(e), String(e));
      },
    ).finally(() => {
      inFlight--;
      if (measured && --measuredOut === 0) drained?.();
    });
  };

  // The schedule: on every timer tick, send whatever has fallen due since the last one.
  let sent = 0;
  let windowOpen = false;
  let cpu0 = process.cpuUsage();
  let cpu = process.cpuUsage(cpu0);
  for (;;) {
    const now = performance.now();
    if (!windowOpen && now >= windowFrom) {
      windowOpen = true;
      opts.onWindowStart();
      cpu0 = process.cpuUsage();
    }
    if (now >= windowTo) break;
    const dueNow = Math.floor((now - start) / intervalMs);
    for (; sent <= dueNow; sent++) {
      const dueAt = start + sent * intervalMs;
      if (dueAt >= windowTo) break;
      send(dueAt, dueAt >= windowFrom);
    }
    await sleep(1);
  }
  cpu = process.cpuUsage(cpu0);
  opts.onWindowEnd();
  const seconds = opts.durationMs / 1000;
  if (measuredOut > 0) {
    const waited = new Promise<void>((resolve) => (drained = resolve));
    await Promise.race([waited, sleep(opts.drainMs ?? 15_000)]);
    const late = measuredOut;
    for (let i = 0; i < late; i++) fail("no answer before the drain ended", `${late} requests without an answer ${(opts.drainMs ?? 15_000) / 1000} s after the window`);
  }

  return {
    ...windowOf(latencies, { ok, failed, failures, firstFailure, seconds }, cpu),
    due,
    notSent,
    maxLagMs,
  };
}

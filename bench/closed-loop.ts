/** ClosedLoopOptions configures one closed-loop load run. */
export interface ClosedLoopOptions {
  /** concurrency is the fixed number of calls kept in flight. */
  readonly concurrency: number;
  /** warmupMs is run at full load before anything is recorded. */
  readonly warmupMs: number;
  /** durationMs is the measured window. */
  readonly durationMs: number;
  /** onWindowStart runs as the measured window opens (after the warm-up). */
  readonly onWindowStart?: () => void;
  /** onWindowEnd runs as the measured window closes, before in-flight calls drain. */
  readonly onWindowEnd?: () => void;
}

/** ClosedLoopResult is what one run measured inside its window. */
export interface ClosedLoopResult {
  /** calls is the number of calls that completed successfully inside the window. */
  readonly calls: number;
  /** errors is the number of calls that failed inside the window. */
  readonly errors: number;
  /** firstError is the first failure seen, for the report. */
  readonly firstError?: unknown;
  /** seconds is the length of the window as measured. */
  readonly seconds: number;
  /** p50Ms, p95Ms and p99Ms are latency percentiles of the successful calls. */
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  /** clientCpuSeconds is this process's user + system CPU time inside the window. */
  readonly clientCpuSeconds: number;
}

/**
 * percentile returns the nearest-rank `q` percentile (0 < q <= 100) of
 * ascending-sorted values, or NaN when there are none.
 */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((q / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/**
 * runClosedLoop keeps `concurrency` calls in flight — each worker issues its
 * next call as soon as its previous one completes — for a warm-up and then a
 * measured window. Only calls that complete inside the window count, and
 * their latency is the time from issue to completion.
 */
export async function runClosedLoop(call: () => Promise<unknown>, options: ClosedLoopOptions): Promise<ClosedLoopResult> {
  let recording = false;
  let stopped = false;
  let latencies = new Float64Array(1 << 16);
  let calls = 0;
  let errors = 0;
  let firstError: unknown;

  const record = (ms: number): void => {
    if (calls === latencies.length) {
      const grown = new Float64Array(latencies.length * 2);
      grown.set(latencies);
      latencies = grown;
    }
    latencies[calls++] = ms;
  };

  async function worker(): Promise<void> {
    while (!stopped) {
      const t0 = performance.now();
      try {
        await call();
        if (recording) record(performance.now() - t0);
      } catch (e) {
        if (recording) {
          errors++;
          firstError ??= e;
        }
      }
    }
  }

  const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
  const workers = Array.from({ length: options.concurrency }, () => worker());

  await sleep(options.warmupMs);
  options.onWindowStart?.();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  recording = true;
  await sleep(options.durationMs);
  recording = false;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  options.onWindowEnd?.();
  stopped = true;
  await Promise.all(workers);

  const sorted = latencies.subarray(0, calls).sort();
  return {
    calls,
    errors,
    firstError,
    seconds,
    p50Ms: percentile(sorted, 50),
    p95Ms: percentile(sorted, 95),
    p99Ms: percentile(sorted, 99),
    clientCpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

/** LoadWindow is what one load run measured inside its window. */
export interface LoadWindow {
  /** ok is the number of successful answers inside the window. */
  readonly ok: number;
  /** failed is the number of failures inside the window (non-2xx, transport errors, timeouts, wrong bodies). */
  readonly failed: number;
  /** failures counts the failures by kind, for example `HTTP 503` or `body check failed`. */
  readonly failures: Readonly<Record<string, number>>;
  /** firstFailure describes the first failure. */
  readonly firstFailure?: string;
  /** seconds is the length of the window as measured. */
  readonly seconds: number;
  /** p50Ms, p95Ms and p99Ms are latency percentiles of the successful answers. */
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  /** clientCpuSeconds is the load generator's user + system CPU time inside the window. */
  readonly clientCpuSeconds: number;
}

/** windowOf is a LoadWindow from the latencies of the `ok` successful answers and the failure counts of a window. */
export function windowOf(
  latencies: Float64Array,
  counts: Pick<LoadWindow, "ok" | "failed" | "failures" | "firstFailure" | "seconds">,
  cpu: NodeJS.CpuUsage,
): LoadWindow {
  const sorted = latencies.subarray(0, counts.ok).sort();
  return {
    ...counts,
    p50Ms: percentile(sorted, 50),
    p95Ms: percentile(sorted, 95),
    p99Ms: percentile(sorted, 99),
    clientCpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

/** windowOfClosedLoop is a LoadWindow from a closed-loop gRPC run, its errors counted under `errorKind`. */
export function windowOfClosedLoop(r: ClosedLoopResult, failures: Readonly<Record<string, number>>): LoadWindow {
  return {
    ok: r.calls,
    failed: r.errors,
    failures,
    firstFailure: r.firstError === undefined ? undefined : String(r.firstError),
    seconds: r.seconds,
    p50Ms: r.p50Ms,
    p95Ms: r.p95Ms,
    p99Ms: r.p99Ms,
    clientCpuSeconds: r.clientCpuSeconds,
  };
}

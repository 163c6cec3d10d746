/**
 * HTTP load with autocannon (programmatic API) for the benchmarks: a fixed
 * number of keep-alive connections, one request in flight on each, a warm-up
 * and then a measured window. Used by bench/gateway.bench.ts (from the
 * benchmark process) and bench/load-generator.ts (from a load-generator
 * process of its own).
 */
import autocannon from "autocannon";
import { setTimeout as sleep } from "node:timers/promises";
import { windowOf, type LoadWindow } from "./closed-loop.js";

/** LoadWindow is what one load run measured inside its window (bench/closed-loop.ts). */
export type { LoadWindow };

/** WindowHooks run as a load run's measured window opens and closes. */
export interface WindowHooks {
  readonly onWindowStart: () => void;
  readonly onWindowEnd: () => void;
}

/** HttpTarget is one HTTP request, sent again and again. */
export interface HttpTarget {
  readonly url: string;
  readonly method: "GET" | "POST";
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  /**
   * verifyBody, when given, checks each 2xx answer's body; one it refuses
   * counts as a failure (`body check failed`). It keeps autocannon reading
   * every body into a string, so only cases that need it should pass it.
   */
  readonly verifyBody?: (body: string) => boolean;
}

/** AutocannonOptions size one autocannon run. */
export interface AutocannonOptions extends WindowHooks {
  readonly connections: number;
  readonly warmupMs: number;
  readonly durationMs: number;
}

/**
 * runAutocannon loads one HTTP request with autocannon: `connections`
 * keep-alive connections with one request in flight each, for a warm-up and
 * then a measured window. As in `runClosedLoop`, only answers that complete
 * inside the window count, with their latency from autocannon's `response`
 * event (sub-millisecond, unlike its histogram).
 */
export async function runAutocannon(target: HttpTarget, opts: AutocannonOptions): Promise<LoadWindow> {
  let recording = false;
  let latencies = new Float64Array(1 << 16);
  let ok = 0;
  let failed = 0;
  const failures: Record<string, number> = {};
  let firstFailure: string | undefined;
  const fail = (kind: string, detail = kind): void => {
    if (!recording) return;
    failed++;
    failures[kind] = (failures[kind] ?? 0) + 1;
    firstFailure ??= detail;
  };

  let finished!: (r: autocannon.Result) => void;
  let crashed!: (e: unknown) => void;
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    finished = resolve;
    crashed = reject;
  });
  const instance = autocannon(
    {
      url: target.url,
      method: target.method,
      headers: { ...target.headers },
      body: target.body,
      connections: opts.connections,
      pipelining: 1,
      // Stopped by hand after the window; this is only a backstop.
      duration: (opts.warmupMs + opts.durationMs) / 1000 + 30,
      timeout: 10,
      ...(target.verifyBody ? { verifyBody: (body: string | Buffer | undefined) => target.verifyBody!(String(body ?? "")) } : {}),
    },
    (err, result) => (err ? crashed(err) : finished(result)),
  );
  let lastCounted = false;
  instance.on("response", (_client, statusCode, _bytes, responseTime) => {
    lastCounted = false;
    if (!recording) return;
    if (statusCode < 200 || statusCode > 299) return fail(`HTTP ${statusCode}`);
    lastCounted = true;
    if (ok === latencies.length) {
      const grown = new Float64Array(latencies.length * 2);
      grown.set(latencies);
      latencies = grown;
    }
    latencies[ok++] = responseTime;
  });
  // autocannon checks the body right after the `response` event of the same answer: a 2xx counted as ok is taken back out.
  (instance as unknown as NodeJS.EventEmitter).on("reqMismatch", (body: string) => {
    if (!lastCounted) return;
    lastCounted = false;
    ok--;
    fail("body check failed", `body check failed: ${body.slice(0, 200)}`);
  });
  instance.on("reqError", (e) => fail(e instanceof Error ? e.message : String(e), String(e)));

  await sleep(opts.warmupMs);
  opts.onWindowStart();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  recording = true;
  await sleep(opts.durationMs);
  recording = false;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  opts.onWindowEnd();
  instance.stop();
  await done;

  return windowOf(latencies, { ok, failed, failures, firstFailure, seconds }, cpu);
}

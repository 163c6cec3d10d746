/** ReadinessSample is one answer of a service's `/readyz`. */
export interface ReadinessSample {
  /** at is `performance.now()` when it answered. */
  readonly at: number;
  /** status is `serving`, `degraded`, `not_serving`, or `unreachable` when nothing answered. */
  readonly status: string;
}

/** ReadinessWatch polls a service's `/readyz` until stopped. */
export interface ReadinessWatch {
  /** samples so far, oldest first. */
  readonly samples: readonly ReadinessSample[];
  /** transitions are the samples where the status changed (the first one included). */
  transitions(): ReadinessSample[];
  /** seen resolves true once a sample answered at or after `since` says `status`, false when `timeoutMs` passes first. */
  seen(status: string, since: number, timeoutMs: number): Promise<boolean>;
  /** stop stops polling. */
  stop(): Promise<void>;
}

/**
 * watchReadiness polls `GET /readyz` on a service's operations port every
 * `everyMs` (one request at a time), recording what it says — the view a
 * load balancer or Kubernetes has of the service through a fault.
 */
export function watchReadiness(metricsPort: number, everyMs = 100): ReadinessWatch {
  const samples: ReadinessSample[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      let status = "unreachable";
      try {
        const res = await fetch(`http://127.0.0.1:${metricsPort}/readyz`, { signal: AbortSignal.timeout(2_000) });
        status = ((await res.json()) as { status?: string }).status ?? `HTTP ${res.status}`;
      } catch {
        // Nothing listens (the service is gone) or it did not answer in time.
      }
      samples.push({ at: performance.now(), status });
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    samples,
    transitions: () => samples.filter((s, i) => i === 0 || samples[i - 1].status !== s.status),
    async seen(status, since, timeoutMs) {
      const end = performance.now() + timeoutMs;
      while (performance.now() < end) {
        if (samples.some((s) => s.at >= since && s.status === status)) return true;
        await new Promise((r) => setTimeout(r, everyMs));
      }
      return false;
    },
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

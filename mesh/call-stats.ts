import { Code } from "@connectrpc/connect";

/** serverFaultCodes are the codes that mean the service failed, not the caller: what error rates and alerts count. */
export const serverFaultCodes: ReadonlySet<Code> = new Set([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.ResourceExhausted,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

/** codeName is a gRPC code's canonical name: `OK`, `INVALID_ARGUMENT`, `UNAVAILABLE` … */
export function codeName(code: Code | 0): string {
  if (code === 0) return "OK";
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** CallWindow is what a service answered over a recent window. */
export interface CallWindow {
  /** windowSeconds is the window, ending now. */
  readonly windowSeconds: number;
  /** calls answered in the window. */
  readonly calls: number;
  /** errors are the calls that failed with a server-fault code. */
  readonly errors: number;
}

/** CallStats counts finished calls per second over the last few minutes, for the status page (Prometheus has the full series). */
export interface CallStats {
  /** record counts one finished call and its code (0 for OK). */
  record(code: Code | 0): void;
  /** window sums the last `seconds` (at most the kept history). */
  window(seconds: number): CallWindow;
}

/** createCallStats keeps `historySeconds` one-second buckets of calls and errors. */
export function createCallStats(historySeconds = 300, now: () => number = Date.now): CallStats {
  const calls = new Float64Array(historySeconds);
  const errors = new Float64Array(historySeconds);
  const stamps = new Float64Array(historySeconds).fill(-1);
  const slot = (second: number): number => {
    const i = second % historySeconds;
    if (stamps[i] !== second) {
      stamps[i] = second;
      calls[i] = 0;
      errors[i] = 0;
    }
    return i;
  };
  return {
    record(code) {
      const i = slot(Math.floor(now() / 1000));
      calls[i]++;
      if (code !== 0 && serverFaultCodes.has(code)) errors[i]++;
    },
    window(seconds) {
      const w = Math.min(seconds, historySeconds);
      const current = Math.floor(now() / 1000);
      let c = 0;
      let e = 0;
      for (let s = current - w + 1; s <= current; s++) {
        const i = ((s % historySeconds) + historySeconds) % historySeconds;
        if (stamps[i] === s) {
          c += calls[i];
          e += errors[i];
        }
      }
      return { windowSeconds: w, calls: c, errors: e };
    },
  };
}

/** processCallStats are the calls this process served (one service per process). */
export const processCallStats: CallStats = createCallStats();

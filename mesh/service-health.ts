/** DependencyKind is what a service depends on: its database, a cache (Redis), or an upstream service. */
export type DependencyKind = "database" | "cache" | "upstream";

/** Dependency is something a service needs, and how to tell whether it answers. */
export interface Dependency {
  /** name is `database`, `redis`, or the upstream's name in the topology. */
  readonly name: string;
  /** kind is what it is. */
  readonly kind: DependencyKind;
  /** required says the service cannot serve without it (NOT_SERVING); otherwise it serves degraded. */
  readonly required: boolean;
  /** check resolves true when the dependency answers; a rejection or a hang past the timeout counts as down. */
  check(): Promise<boolean>;
}

/** DependencyState is a dependency with its last check. */
export interface DependencyState {
  /** name, kind and required are the dependency's. */
  readonly name: string;
  /** kind is what it is. */
  readonly kind: DependencyKind;
  /** required says whether its loss stops the service. */
  readonly required: boolean;
  /** healthy is the last check's answer (true until the first check answered). */
  readonly healthy: boolean;
  /** checkTime is when it was last checked; undefined before the first check answered. */
  readonly checkTime?: Date;
}

/**
 * ServingState is a service's health: SERVING, DEGRADED (serving, but an
 * optional dependency is down) or NOT_SERVING (starting, draining, or a
 * required dependency is down).
 */
export type ServingState = "SERVING" | "DEGRADED" | "NOT_SERVING";

/** ServiceHealth holds a service's serving state from its own wish to serve and its dependencies' checks. */
export interface ServiceHealth {
  /** setServing says whether the service means to serve (false before start and while draining). */
  setServing(serving: boolean): void;
  /** watch checks a dependency now and then every interval until the returned function is called. */
  watch(dependency: Dependency): () => void;
  /** state is the serving state now. */
  state(): ServingState;
  /** dependencies are the watched dependencies with their last checks. */
  dependencies(): DependencyState[];
  /** onChange calls `listener` after every change of the state or of a dependency's health. */
  onChange(listener: () => void): void;
  /** checkNow checks every dependency at once and resolves when all answered (tests, probes). */
  checkNow(): Promise<void>;
  /** close stops every check. */
  close(): void;
}

/** ServiceHealthOptions configure createServiceHealth. */
export interface ServiceHealthOptions {
  /** intervalMs is the time between two checks of a dependency (default HEALTH_CHECK_INTERVAL_MS or 5 s). */
  readonly intervalMs?: number;
  /** timeoutMs bounds one check (default 3 s, at most the interval). */
  readonly timeoutMs?: number;
}

interface Watched {
  readonly dependency: Dependency;
  healthy: boolean;
  checkTime?: Date;
  running?: Promise<void>;
  timer?: NodeJS.Timeout;
}

/**
 * createServiceHealth tracks a service's serving state: NOT_SERVING until
 * setServing(true) and while a required dependency is down, DEGRADED while
 * an optional one is, SERVING otherwise. Dependencies are checked in the
 * background, one check at a time each, bounded by a timeout.
 */
export function createServiceHealth(options: ServiceHealthOptions = {}): ServiceHealth {
  const intervalMs = options.intervalMs ?? Number(process.env.HEALTH_CHECK_INTERVAL_MS || 5_000);
  const timeoutMs = Math.min(options.timeoutMs ?? 3_000, intervalMs);
  const watched = new Set<Watched>();
  const listeners: (() => void)[] = [];
  let serving = false;
  const changed = (): void => listeners.forEach((l) => l());

  const check = (w: Watched): Promise<void> => {
    w.running ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
        timer.unref();
      });
      const ok = await Promise.race([w.dependency.check().catch(() => false), timeout]);
      clearTimeout(timer);
      w.checkTime = new Date();
      if (!watched.has(w)) return;
      if (ok !== w.healthy) {
        w.healthy = ok;
        changed();
      }
    })().finally(() => (w.running = undefined));
    return w.running;
  };

  return {
    setServing(on) {
      if (on === serving) return;
      serving = on;
      changed();
    },
    watch(dependency) {
      const w: Watched = { dependency, healthy: true };
      watched.add(w);
      void check(w);
      w.timer = setInterval(() => void check(w), intervalMs);
      w.timer.unref();
      changed();
      return () => {
        clearInterval(w.timer);
        if (watched.delete(w)) changed();
      };
    },
    state() {
      if (!serving) return "NOT_SERVING";
      let degraded = false;
      for (const w of watched) {
        if (w.healthy) continue;
        if (w.dependency.required) return "NOT_SERVING";
        degraded = true;
      }
      return degraded ? "DEGRADED" : "SERVING";
    },
    dependencies() {
      return [...watched].map((w) => ({ name: w.dependency.name, kind: w.dependency.kind, required: w.dependency.required, healthy: w.healthy, checkTime: w.checkTime }));
    },
    onChange(listener) {
      listeners.push(listener);
    },
    async checkNow() {
      await Promise.all([...watched].map(check));
    },
    close() {
      for (const w of watched) clearInterval(w.timer);
      watched.clear();
    },
  };
}

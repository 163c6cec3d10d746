import type { Database } from "./database.js";

/** Servable is what can report serving or not (a MeshServer). */
export interface Servable {
  /** setServing flips the health status. */
  setServing(serving: boolean): void;
}

/**
 * healthFollowsDatabase makes a server's health follow its database: while
 * the server is meant to serve, a database that stops answering turns it
 * NOT_SERVING (checked every `intervalMs`) and back when it answers again.
 * Use the returned setServing in place of the server's; call stop on close.
 */
export function healthFollowsDatabase(server: Servable, db: Database | undefined, intervalMs = 5_000): { setServing(on: boolean): void; stop(): void } {
  let wanted = false;
  const timer = db
    ? setInterval(() => {
        void db.ping().then((ok) => wanted && server.setServing(ok));
      }, intervalMs)
    : undefined;
  timer?.unref();
  return {
    setServing(on) {
      wanted = on;
      server.setServing(on);
    },
    stop() {
      clearInterval(timer);
      wanted = false;
    },
  };
}

/** DependencyHealth is where a dependency's status is reported (grpc-health-check's HealthImplementation). */
export interface DependencyHealth {
  /** setStatus sets the status of a health "service" name. */
  setStatus(service: string, status: "SERVING" | "NOT_SERVING" | "UNKNOWN"): void;
}

/**
 * reportDependency reports an optional dependency (Redis) as its own
 * health entry — for example `raptorflow.dependency.redis` — checked every
 * `intervalMs`, while the service itself stays SERVING: degraded, not down.
 * Returns a function that stops the checks.
 */
export function reportDependency(health: DependencyHealth, name: string, ping: () => Promise<boolean>, intervalMs = 5_000): () => void {
  const key = `raptorflow.dependency.${name}`;
  const check = () => void ping().then((ok) => health.setStatus(key, ok ? "SERVING" : "NOT_SERVING"), () => health.setStatus(key, "NOT_SERVING"));
  check();
  const timer = setInterval(check, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * withDatabase gives a server a database's life: its health follows the
 * database (healthFollowsDatabase) and closing it closes the database after
 * the server has drained. Without a database (DATA_STORE=memory) it is the
 * server itself.
 */
export function withDatabase<T extends Servable & { close(): Promise<void> }>(server: T, db: Database | undefined): T {
  if (!db) return server;
  const health = healthFollowsDatabase(server, db);
  return {
    ...server,
    setServing: health.setServing,
    async close() {
      health.stop();
      await server.close();
      await db.close();
    },
  };
}

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

import type { Dependency, ServiceHealth } from "../../mesh/service-health.js";
import type { Database } from "./database.js";

/**
 * databaseDependency is a service's database as a dependency: required —
 * a service whose database does not answer reports NOT_SERVING instead of
 * failing calls one by one, and SERVING again once it answers.
 */
export function databaseDependency(db: Database): Dependency {
  return { name: "database", kind: "database", required: true, check: () => db.ping() };
}

/**
 * withDatabase gives a server a database's life: its readiness (and so its
 * grpc.health.v1 status) follows the database, and closing it closes the
 * database after the server has drained. Without a database
 * (DATA_STORE=memory) it is the server itself.
 */
export function withDatabase<T extends { readonly readiness: ServiceHealth; close(): Promise<void> }>(server: T, db: Database | undefined): T {
  if (!db) return server;
  const unwatch = server.readiness.watch(databaseDependency(db));
  return {
    ...server,
    async close() {
      unwatch();
      await server.close();
      await db.close();
    },
  };
}

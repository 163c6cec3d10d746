import { mkdirSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import { vector } from "@electric-sql/pglite-pgvector";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

/** EmbeddedPostgres is PGlite served on the Postgres wire protocol on loopback. */
export interface EmbeddedPostgres {
  /** url is a `postgres://` URL the `pg` driver (and so MikroORM) connects to. */
  readonly url: string;
  /** stop closes the socket server and the database (flushing it to its folder). */
  stop(): Promise<void>;
}

/**
 * startEmbeddedPostgres opens (or creates) a PGlite database in `dataDir`,
 * with pgvector, and serves it over the Postgres wire protocol with
 * `@electric-sql/pglite-socket`, so the same MikroORM PostgreSQL driver and
 * the same migrations run as against a real server. The socket server takes
 * one connection at a time: callers use a pool of one.
 */
export async function startEmbeddedPostgres(dataDir: string): Promise<EmbeddedPostgres> {
  mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create(dataDir, { extensions: { vector } });
  const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 1 });
  await server.start();
  const conn = server.getServerConn();
  return {
    url: `postgres://postgres@${conn}/postgres`,
    async stop() {
      await server.stop();
      await db.close();
    },
  };
}

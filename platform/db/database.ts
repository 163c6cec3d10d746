import { join } from "node:path";
import type { EntitySchema, MigrationObject } from "@mikro-orm/core";
import { Migrator } from "@mikro-orm/migrations";
import { MikroORM, PostgreSqlDriver } from "@mikro-orm/postgresql";
import type { Pool } from "pg";
import { instrumentPool } from "./db-telemetry.js";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "./embedded-postgres.js";
import { isBackendUnreachable } from "../../mesh/grpc-errors.js";
import { logger } from "../../mesh/logger.js";

/** DatabaseOptions say which database a service uses and what it keeps there. */
export interface DatabaseOptions {
  /** service names the owner: its schema and, in embedded mode, its data folder. */
  readonly service: string;
  /** schema is the PostgreSQL schema the service owns (one per service, no cross-schema joins). */
  readonly schema: string;
  /** entities are the service's MikroORM entity schemas. */
  readonly entities: readonly EntitySchema[];
  /** migrations are the service's versioned migrations, oldest first. */
  readonly migrations: readonly MigrationObject[];
  /** env gives DATABASE_URL, RAPTORFLOW_DATA_DIR, DATABASE_POOL_MAX, DATABASE_STATEMENT_TIMEOUT_MS. */
  readonly env?: Record<string, string | undefined>;
}

/** Database is an open MikroORM with its migrator, and where it runs. */
export interface Database {
  /** orm is the MikroORM instance; fork its `em` per request. */
  readonly orm: MikroORM;
  /** mode is `postgres` (DATABASE_URL) or `embedded` (PGlite in a local folder). */
  readonly mode: "postgres" | "embedded";
  /** migrate applies pending migrations and returns their names. */
  migrate(): Promise<string[]>;
  /** rollback undoes migrations down to (not including) `to`, or all of them when `to` is 0. */
  rollback(to?: string | 0): Promise<string[]>;
  /** ping checks that the database answers. */
  ping(): Promise<boolean>;
  /** close closes the pool (and the embedded database). */
  close(): Promise<void>;
}

/**
 * openDatabase connects a service to its PostgreSQL schema: the server in
 * DATABASE_URL, or, without one, an embedded PostgreSQL (PGlite) in
 * `<RAPTORFLOW_DATA_DIR>/<service>/postgres` served on the wire protocol —
 * the same MikroORM driver and the same migrations either way. Embedded mode
 * is one connection (the socket server serves one at a time).
 */
export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  const env = options.env ?? process.env;
  let embedded: EmbeddedPostgres | undefined;
  let url = env.DATABASE_URL;
  if (!url) {
    const dataDir = join(env.RAPTORFLOW_DATA_DIR || ".data", options.service, "postgres");
    embedded = await startEmbeddedPostgres(dataDir);
    url = embedded.url;
  }
  const poolMax = embedded ? 1 : positive(env, "DATABASE_POOL_MAX", 10);
  const statementTimeoutMs = positive(env, "DATABASE_STATEMENT_TIMEOUT_MS", 10_000);
  let orm: MikroORM | undefined;
  // Every query is traced and the pool measured (db-telemetry.ts), from the pool MikroORM makes.
  let stopPoolTelemetry = (): void => {};
  const target = URL.parse(url);
  const onPoolCreated = (pool: Pool): void => {
    stopPoolTelemetry = instrumentPool(pool, {
      pool: options.service,
      schema: options.schema,
      database: decodeURIComponent(target?.pathname.slice(1) ?? "") || "postgres",
      host: target?.hostname || "localhost",
      port: Number(target?.port || 5432),
      max: poolMax,
    });
  };
  try {
    orm = await MikroORM.init({
      driver: PostgreSqlDriver,
      clientUrl: url,
      schema: options.schema,
      entities: [...options.entities],
      // A schema may hold only tables reached by SQL (a memories table).
      discovery: { warnWhenNoEntities: false },
      extensions: [Migrator],
      pool: { min: 0, max: poolMax },
      driverOptions: { statement_timeout: statementTimeoutMs, connectionTimeoutMillis: 5_000, onPoolCreated },
      migrations: {
        migrationsList: [...options.migrations],
        tableName: "migrations",
        schema: options.schema,
        snapshot: false,
        silent: true,
      },
      debug: false,
      allowGlobalContext: false,
    });
    // Fail here, with a clear message, rather than at the first request.
    await orm.em.getConnection().execute("select 1");
  } catch (e) {
    stopPoolTelemetry();
    await orm?.close(true).catch(() => undefined);
    await embedded?.stop();
    throw new Error(`${options.service}: cannot open the database (${redact(url)}): ${redact((e as Error).message)}`);
  }
  const ready = orm;
  return {
    orm: ready,
    mode: embedded ? "embedded" : "postgres",
    async migrate() {
      await ready.em.getConnection().execute(`create schema if not exists "${options.schema}"`);
      const done = await ready.migrator.up();
      return done.map((m) => m.name);
    },
    async rollback(to = 0) {
      const done = await ready.migrator.down({ to });
      return done.map((m) => m.name);
    },
    async ping() {
      try {
        await ready.em.getConnection().execute("select 1");
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      stopPoolTelemetry();
      // Ending the pool waits for every checked-out connection. kysely before 0.29.9 never gave back one
      // PostgreSQL dropped inside a transaction (package.json pins the fix); any other such leak must not
      // hang shutdown either: after closeTimeoutMs the pool is left behind.
      let timer: NodeJS.Timeout | undefined;
      const gaveUp = await Promise.race([
        ready.close(true).then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), closeTimeoutMs))),
      ]);
      clearTimeout(timer);
      if (gaveUp) logger("database").warn({ schema: options.schema }, `the connection pool did not close within ${closeTimeoutMs} ms (a connection still checked out); leaving it`);
      await embedded?.stop();
    },
  };
}

/**
 * retryOnDroppedConnection wraps a store so that an operation failing because
 * the database connection broke under it (PostgreSQL restarted, failed over or
 * terminated the backend, so the pool still held a dead connection) runs once
 * more, shortly after, on a connection the pool opens afresh. A store's
 * operations are single statements or transactions the server rolled back
 * when the connection died, so running one again is safe. A database that is
 * really down fails the second try too, and the caller gets that error.
 */
export function retryOnDroppedConnection<T extends object>(store: T, delayMs = 100): T {
  const wrapped = { ...store } as Record<string, unknown>;
  for (const [key, op] of Object.entries(store)) {
    if (typeof op !== "function" || key === "close") continue;
    wrapped[key] = async (...args: unknown[]) => {
      try {
        return await op.apply(store, args);
      } catch (e) {
        if (!isBackendUnreachable(e)) throw e;
        await new Promise((r) => setTimeout(r, delayMs));
        return op.apply(store, args);
      }
    };
  }
  return wrapped as T;
}

/** closeTimeoutMs bounds how long closing the pool may take at shutdown. */
const closeTimeoutMs = 5_000;

function positive(env: Record<string, string | undefined>, key: string, fallback: number): number {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) === 0) throw new Error(`${key} must be a positive whole number, got "${raw}"`);
  return Number(raw);
}

/** redact hides a password in a database URL for messages and logs. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, "//$1:***@");
}

/**
 * dataStoreOf reads DATA_STORE: `postgres` (the default: DATABASE_URL or the
 * embedded PGlite) or `memory` (in-process, lost on restart: tests, demos).
 */
export function dataStoreOf(env: Record<string, string | undefined>): "postgres" | "memory" {
  const v = env.DATA_STORE;
  if (v === undefined || v === "" || v === "postgres") return "postgres";
  if (v === "memory") return "memory";
  throw new Error(`DATA_STORE must be "postgres" (the default) or "memory", got "${v}"`);
}

/**
 * openServiceDatabase opens a service's database unless DATA_STORE=memory
 * (then undefined: the service keeps its data in the process), and applies
 * pending migrations at start-up unless DATABASE_MIGRATE_ON_START=false.
 */
export async function openServiceDatabase(options: DatabaseOptions): Promise<Database | undefined> {
  const env = options.env ?? process.env;
  if (dataStoreOf(env) === "memory") return undefined;
  const db = await openDatabase(options);
  if (env.DATABASE_MIGRATE_ON_START !== "false") {
    try {
      await db.migrate();
    } catch (e) {
      await db.close();
      throw e;
    }
  }
  return db;
}

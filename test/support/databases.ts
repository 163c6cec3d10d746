import { randomBytes } from "node:crypto";
import pg from "pg";

/** postgresUrl is the PostgreSQL server the tests use: DATABASE_URL, or the local one on its standard port. */
export function postgresUrl(): string {
  return process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/test";
}

/**
 * postgresAvailable tells whether the test PostgreSQL answers. When it does
 * not, suites that need it are skipped with a loud message — unless
 * REQUIRE_TEST_SERVICES=1 (set by .ci/run), where a missing server fails the run.
 */
export async function postgresAvailable(suite: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: postgresUrl(), connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.query("select 1");
    return true;
  } catch (e) {
    const why = `PostgreSQL at ${postgresUrl()} does not answer (${(e as Error).message})`;
    if (process.env.REQUIRE_TEST_SERVICES === "1") throw new Error(`${suite}: ${why}`);
    console.warn(`\n*** SKIPPED ${suite}: ${why}. Set DATABASE_URL or start PostgreSQL to run it. ***\n`);
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** ScratchDatabase is a database made for one test suite on the test server, dropped afterwards. */
export interface ScratchDatabase {
  /** url connects to it. */
  readonly url: string;
  /** drop removes it. */
  drop(): Promise<void>;
}

/** createScratchDatabase makes a fresh database so suites never see each other's tables or migrations. */
export async function createScratchDatabase(): Promise<ScratchDatabase> {
  const name = `raptorflow_t_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: postgresUrl() });
  await admin.connect();
  await admin.query(`create database "${name}"`);
  await admin.end();
  const url = new URL(postgresUrl());
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: postgresUrl() });
      await c.connect();
      await c.query(`drop database if exists "${name}" with (force)`);
      await c.end();
    },
  };
}

/** redisUrl is the Redis the tests use: REDIS_URL, or the local one on its standard port. */
export function redisUrl(): string {
  return process.env.REDIS_URL || "redis://127.0.0.1:6379";
}

/** redisAvailable tells whether the test Redis answers; like postgresAvailable, it skips loudly or, under REQUIRE_TEST_SERVICES=1, fails. */
export async function redisAvailable(suite: string): Promise<boolean> {
  const { Redis } = await import("ioredis");
  const redis = new Redis(redisUrl(), { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: 2_000, retryStrategy: () => null });
  redis.on("error", () => undefined);
  try {
    await redis.connect();
    await redis.ping();
    return true;
  } catch (e) {
    const why = `Redis at ${redisUrl()} does not answer (${(e as Error).message})`;
    if (process.env.REQUIRE_TEST_SERVICES === "1") throw new Error(`${suite}: ${why}`);
    console.warn(`\n*** SKIPPED ${suite}: ${why}. Set REDIS_URL or start Redis to run it. ***\n`);
    return false;
  } finally {
    redis.disconnect();
  }
}

import { execFile, spawn, type ChildProcess } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * ThrowawayServer is a PostgreSQL or Redis of one test file's own, on a
 * free port in a temporary folder, that the test may stop and start again on
 * the same port (the machine's shared servers are never touched: other test
 * files use them in parallel).
 */
export interface ThrowawayServer {
  /** url connects to it (`postgres://…` or `redis://…`). */
  readonly url: string;
  /** port it listens on, the same after every start. */
  readonly port: number;
  /** stop takes it down the hard way (PostgreSQL: `pg_ctl stop -m immediate`; Redis: SIGKILL), as a crash would. */
  stop(): Promise<void>;
  /** start brings it back on the same port and resolves when it accepts connections. */
  start(): Promise<void>;
  /** destroy stops it and removes its folder. */
  destroy(): Promise<void>;
}

/** freePort asks the OS for a port nobody listens on. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

/** accepts resolves true when something accepts TCP connections on the port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** waitFor polls until `ok` holds, up to `timeoutMs`. */
async function waitFor(ok: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} within ${timeoutMs} ms`);
}

/**
 * running starts a throw-away server and hands it out; `killOnExit` takes it
 * down should the test process end without destroy() (a hook that timed out).
 */
async function running(server: Omit<ThrowawayServer, "destroy"> & { readonly dir: string; readonly killOnExit: () => void }): Promise<ThrowawayServer> {
  const { url, port, dir, start, stop, killOnExit } = server;
  process.once("exit", killOnExit);
  await start();
  return {
    url,
    port,
    stop,
    start,
    async destroy() {
      await stop();
      process.off("exit", killOnExit);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * missing reports a test dependency that is not on this machine: it throws
 * under REQUIRE_TEST_SERVICES=1 (CI, where it must run), else warns loudly
 * and returns undefined so the suite skips — as test/support/databases.ts does.
 */
function missing(suite: string, why: string): undefined {
  if (process.env.REQUIRE_TEST_SERVICES === "1") throw new Error(`${suite}: ${why}`);
  console.warn(`\n*** SKIPPED ${suite}: ${why}. ***\n`);
  return undefined;
}

/** postgresBinDir finds PostgreSQL's server binaries: POSTGRES_BIN_DIR, or the newest /usr/lib/postgresql/<version>/bin with initdb. */
function postgresBinDir(): string | undefined {
  if (process.env.POSTGRES_BIN_DIR) return process.env.POSTGRES_BIN_DIR;
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, "bin", "initdb"))).sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(root, versions[0], "bin") : undefined;
}

/** postgresUser is who runs initdb and postgres: `postgres` when this process is root (initdb refuses root), else this process's user. */
async function postgresUser(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const { stdout: uid } = await run("id", ["-u", "postgres"]);
  const { stdout: gid } = await run("id", ["-g", "postgres"]);
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * startThrowawayPostgres makes a fresh PostgreSQL cluster (initdb, trust
 * authentication, fsync off) in a temporary folder and starts it on a free
 * port of 127.0.0.1. It resolves undefined (and the suite skips) when the
 * binaries are not here, unless REQUIRE_TEST_SERVICES=1.
 */
export async function startThrowawayPostgres(suite: string): Promise<ThrowawayServer | undefined> {
  const bin = postgresBinDir();
  if (!bin) return missing(suite, "PostgreSQL server binaries not found (/usr/lib/postgresql/<version>/bin, or set POSTGRES_BIN_DIR)");
  const user = await postgresUser();
  const dir = mkdtempSync(join(tmpdir(), "raptorflow-pg-"));
  if (user) chownSync(dir, user.uid, user.gid);
  const data = join(dir, "data");
  const port = await freePort();
  const opts = { uid: user?.uid, gid: user?.gid, cwd: dir };
  await run(join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"], opts);
  const pgCtl = (...args: string[]) => run(join(bin, "pg_ctl"), ["-D", data, ...args], opts);
  const start = async (): Promise<void> => {
    const settings = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200`;
    await pgCtl("-o", settings, "-l", join(dir, "postgres.log"), "-w", "-t", "30", "start");
    await waitFor(() => accepts(port), 10_000, `throwaway PostgreSQL did not accept connections on ${port}`);
  };
  const stop = async (): Promise<void> => {
    await pgCtl("-m", "immediate", "-w", "stop").catch(() => undefined);
  };
  // A safety net: should the test process end without destroy() (a hook that timed out), the server goes too
  // (SIGQUIT is PostgreSQL's immediate shutdown; pg_ctl started it as a daemon, not as our child).
  const killOnExit = (): void => {
    try {
      process.kill(Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]), "SIGQUIT");
    } catch {
      // Not running.
    }
  };
  return running({ url: `postgres://postgres@127.0.0.1:${port}/postgres`, port, dir, start, stop, killOnExit });
}

/**
 * startThrowawayRedis starts `redis-server` with no persistence on a free
 * port of 127.0.0.1, in a temporary folder. It resolves undefined (and the
 * suite skips) when redis-server is not here, unless REQUIRE_TEST_SERVICES=1.
 */
export async function startThrowawayRedis(suite: string): Promise<ThrowawayServer | undefined> {
  const found = await run("redis-server", ["--version"]).then(
    () => true,
    () => false,
  );
  if (!found) return missing(suite, "redis-server not found on PATH");
  const dir = mkdtempSync(join(tmpdir(), "raptorflow-redis-"));
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], { stdio: "ignore" });
    await waitFor(() => accepts(port), 10_000, `throwaway Redis did not accept connections on ${port}`);
  };
  const stop = async (): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill("SIGKILL");
    await exited;
  };
  // A safety net, as for PostgreSQL: no Redis outlives the test process.
  const killOnExit = (): void => void child?.kill("SIGKILL");
  return running({ url: `redis://127.0.0.1:${port}`, port, dir, start, stop, killOnExit });
}

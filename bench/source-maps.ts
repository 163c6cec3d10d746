/**
 * The source maps of our TypeScript modules as tsx made them, written out so
 * that a `.cpuprofile` (whose positions point into tsx's whitespace-minified
 * output) can be mapped back to our lines (bench/cpu-profile.ts).
 *
 * Two ways to use it:
 *
 * - a benchmark child calls `dumpSourceMaps(file)` as it shuts down
 *   (bench/gateway-processes.ts);
 * - a process we do not control (a service of the mesh, started by
 *   `launchMesh`) loads this file with `--import` (in NODE_OPTIONS, next to
 *   `--cpu-prof`) and `RAPTORFLOW_BENCH_SOURCE_MAPS_DIR` set: it then writes
 *   `<dir>/source-maps.<pid>.json` when it exits (bench/load.bench.ts).
 *
 * It imports only node's own modules and uses only erasable TypeScript, so
 * node can load it before tsx is registered.
 */
import { readdirSync, writeFileSync } from "node:fs";
import { findSourceMap } from "node:module";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const repoRoot = fileURLToPath(new URL("../", import.meta.url));

/** sourceMapsDirEnv names the folder a process that loaded this file with `--import` writes its maps to as it exits. */
export const sourceMapsDirEnv = "RAPTORFLOW_BENCH_SOURCE_MAPS_DIR";

/**
 * dumpSourceMaps writes `{ [fileUrl]: sourceMapPayload }` for every
 * TypeScript module of the repository (outside node_modules) this process
 * loaded through tsx.
 */
export function dumpSourceMaps(file: string): void {
  const maps: Record<string, unknown> = {};
  for (const dir of ["services", "mesh", "gen", "bench", "test/support", "platform"]) {
    let entries: string[];
    try {
      entries = readdirSync(join(repoRoot, dir), { recursive: true, encoding: "utf8" });
    } catch {
      continue;
    }
    for (const entry of entries) {
      if (!entry.endsWith(".ts")) continue;
      const url = pathToFileURL(join(repoRoot, dir, entry)).href;
      const map = findSourceMap(url);
      if (map) maps[url] = map.payload;
    }
  }
  writeFileSync(file, JSON.stringify(maps));
}

/** sourceMapsFileOf is where a process with this pid wrote its maps in `dir`. */
export function sourceMapsFileOf(dir: string, pid: number): string {
  return join(dir, `source-maps.${pid}.json`);
}

const onExitDir = process.env[sourceMapsDirEnv];
if (onExitDir) {
  // 'exit' runs before --cpu-prof writes its profile, and synchronous work is all it allows.
  process.once("exit", () => {
    try {
      dumpSourceMaps(sourceMapsFileOf(onExitDir, process.pid));
    } catch {
      // A profile without maps still names our functions and files.
    }
  });
}

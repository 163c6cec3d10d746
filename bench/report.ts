import os from "node:os";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** versionOf reads an installed package's version for a report, or "?" when it cannot. */
export function versionOf(pkg: string): string {
  try {
    const url = new URL(`../node_modules/${pkg}/package.json`, import.meta.url);
    return (JSON.parse(readFileSync(url, "utf8")) as { version: string }).version;
  } catch {
    return "?";
  }
}

/** fmtInt formats a count with thousands separators. */
export const fmtInt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–");
/** fmtMs formats milliseconds with two decimals. */
export const fmtMs = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : "–");
/** fmtCores formats CPU cores with two decimals. */
export const fmtCores = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : "–");
/** fmtRatio formats a ratio as `1.23×`. */
export const fmtRatio = (n: number): string => (Number.isFinite(n) ? `${n.toFixed(2)}×` : "–");

/** machineLine describes the machine for a report: CPU, cores, platform, memory. */
export function machineLine(): string {
  const cpus = os.cpus();
  return `${cpus[0]?.model.trim() ?? "unknown CPU"}, ${cpus.length} cores (os.cpus()), ${os.platform()} ${os.arch()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB`;
}

/** busyMs sums every core's non-idle time so far, from os.cpus() (includes kernel and interrupt time). */
export function busyMs(): number {
  return os.cpus().reduce((n, c) => n + c.times.user + c.times.nice + c.times.sys + c.times.irq, 0);
}

/** fmtPct formats `part` as a percentage of `whole` with one decimal. */
export const fmtPct = (part: number, whole: number): string => (whole > 0 ? `${((100 * part) / whole).toFixed(1)} %` : "–");
/** mdCode wraps text in a Markdown code span (backticks inside become quotes). */
export const mdCode = (s: string): string => `\`${s.replaceAll("`", "'")}\``;

/** median is the middle of the values (the mean of the two middle ones for an even count), NaN for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * waitForQuiet waits (up to `maxWaitMs`) until the machine, over one second,
 * uses less than `threshold` cores besides our idle processes, so a run on a
 * shared machine does not start in the middle of someone else's build.
 * It resolves with how busy the last second was.
 */
export async function waitForQuiet(threshold: number, maxWaitMs: number, log: (s: string) => void = (s) => void process.stderr.write(s)): Promise<number> {
  const until = performance.now() + maxWaitMs;
  for (;;) {
    const b0 = busyMs();
    const t0 = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const busy = (busyMs() - b0) / (performance.now() - t0);
    if (busy < threshold || performance.now() >= until) return busy;
    log(`(machine busy: ${busy.toFixed(2)} cores, waiting) `);
  }
}

/**
 * codeState names the code measured: the commit, and the files under
 * `paths` that differ from it. Other work may change them during a run, so
 * benchmarks read it at the start and the end.
 */
export function codeState(paths: readonly string[] = ["services", "mesh", "gen", "bench", "test/support"]): string {
  const cwd = fileURLToPath(new URL("../", import.meta.url));
  try {
    const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--", ...paths], { cwd, encoding: "utf8" })
      .split("\n")
      .filter(Boolean)
      .map((l) => l.slice(3));
    return dirty.length ? `commit ${commit} with uncommitted changes in ${dirty.join(", ")}` : `commit ${commit}, no uncommitted changes on the measured path`;
  } catch {
    return "unknown (no git)";
  }
}

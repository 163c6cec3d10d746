import os from "node:os";
import { readFileSync } from "node:fs";

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

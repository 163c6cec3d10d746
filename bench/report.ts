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

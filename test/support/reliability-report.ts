import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";

/** reportDir is where the reliability scenarios write their counts: RELIABILITY_REPORT_DIR, or `<tmp>/raptorflow-reliability`. */
export function reportDir(): string {
  return process.env.RELIABILITY_REPORT_DIR || join(tmpdir(), "raptorflow-reliability");
}

/**
 * writeReport prints a scenario's counts (sent, answered by class, lost …)
 * and writes them as `<reportDir>/<scenario>.json`, stamped with the time and
 * the machine's CPU count, so docs/reliability.md quotes real runs.
 */
export function writeReport(scenario: string, counts: Record<string, unknown>): string {
  const dir = reportDir();
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${scenario}.json`);
  const body = { scenario, at: new Date().toISOString(), cpus: availableParallelism(), ...counts };
  writeFileSync(file, `${JSON.stringify(body, null, 2)}\n`);
  console.log(`\n[reliability] ${scenario}: ${JSON.stringify(counts)}\n[reliability] written to ${file}`);
  return file;
}

/**
 * progress prints where a scenario is, with the seconds since its file was
 * loaded: when a hook times out on CI, the last line says which step never
 * ended.
 */
export function progress(scenario: string, step: string): void {
  console.log(`[reliability] ${scenario} +${(performance.now() / 1000).toFixed(1)} s: ${step}`);
}

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** scratchOutdirs hands out cloud-assembly folders for tests and removes them all at the end. */
export function scratchOutdirs(): { next(): string; removeAll(): void } {
  const made: string[] = [];
  return {
    next() {
      const dir = mkdtempSync(join(tmpdir(), "raptorflow-cdk-"));
      made.push(dir);
      return dir;
    },
    removeAll() {
      for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Fails when `buf generate` would change gen/: gen/ is generated from proto/
// and committed, never edited by hand.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const tmp = mkdtempSync(path.join(tmpdir(), "raptorflow-gen-"));
try {
  execFileSync(path.join(root, "node_modules/.bin/buf"), ["generate", "-o", tmp], { cwd: root, stdio: "inherit" });
  const list = (dir) =>
    readdirSync(dir, { recursive: true })
      .map(String)
      .filter((f) => statSync(path.join(dir, f)).isFile())
      .sort();
  const want = list(path.join(tmp, "gen"));
  const have = list(path.join(root, "gen"));
  const problems = [];
  for (const f of new Set([...want, ...have])) {
    if (!want.includes(f)) problems.push(`gen/${f} is not generated from proto/ (delete it)`);
    else if (!have.includes(f)) problems.push(`gen/${f} is missing (run npm run generate)`);
    else if (!readFileSync(path.join(tmp, "gen", f)).equals(readFileSync(path.join(root, "gen", f)))) {
      problems.push(`gen/${f} differs from what buf generate makes (run npm run generate; never edit gen/)`);
    }
  }
  if (problems.length) {
    console.error(problems.join("\n"));
    process.exit(1);
  }
  console.log(`gen/: ${have.length} files match buf generate`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

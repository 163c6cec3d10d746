// `buf breaking` against an earlier commit (default: the parent of HEAD, or
// $BUF_BREAKING_AGAINST). The Buf Schema Registry is out of reach and
// proto-deps/ is built at install time, so the earlier tree is exported from
// git and given today's proto-deps/ (third-party files, not ours to break).
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const ref = process.env.BUF_BREAKING_AGAINST ?? "HEAD~1";
const git = (...args) => execFileSync("git", args, { cwd: root, encoding: "utf8" }).trim();

try {
  git("rev-parse", "--verify", "--quiet", `${ref}^{commit}`);
} catch {
  console.log(`buf breaking: skipped (${ref} does not exist: nothing to compare against)`);
  process.exit(0);
}
const tmp = mkdtempSync(path.join(tmpdir(), "raptorflow-breaking-"));
try {
  execFileSync("sh", ["-c", `git archive ${ref} | tar -x -C "${tmp}"`], { cwd: root, stdio: "inherit" });
  if (!existsSync(path.join(tmp, "proto")) || !existsSync(path.join(tmp, "buf.yaml"))) {
    console.log(`buf breaking: skipped (${ref} has no contracts yet)`);
    process.exit(0);
  }
  rmSync(path.join(tmp, "proto-deps"), { recursive: true, force: true });
  cpSync(path.join(root, "proto-deps"), path.join(tmp, "proto-deps"), { recursive: true });
  execFileSync(path.join(root, "node_modules/.bin/buf"), ["breaking", "--against", tmp], { cwd: root, stdio: "inherit" });
  console.log(`buf breaking: no breaking changes against ${ref} (${git("rev-parse", "--short", ref)})`);
} catch (e) {
  if (e.status) process.exit(e.status);
  throw e;
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { rdsCaBundlePath } from "../cdk/raptorflow-stack.js";

// No Docker engine and no hadolint here (CI runs hadolint): this lints the recipe's promises.
const root = fileURLToPath(new URL("..", import.meta.url));
const read = (f: string): string => readFileSync(join(root, f), "utf8");

interface Instruction {
  readonly op: string;
  readonly args: string;
}
interface Stage {
  readonly image: string;
  readonly name?: string;
  readonly instructions: Instruction[];
}

/** parseDockerfile joins continued lines, drops comments and splits the recipe into stages. */
function parseDockerfile(text: string): Stage[] {
  const lines = text
    .replace(/\\\r?\n/g, " ")
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, op, args] = /^(\S+)\s*(.*)$/.exec(line)!;
    if (op.toUpperCase() === "FROM") {
      const [image, as, name] = args.split(/\s+/);
      stages.push({ image, name: as?.toUpperCase() === "AS" ? name : undefined, instructions: [] });
    } else stages.at(-1)!.instructions.push({ op: op.toUpperCase(), args });
  }
  return stages;
}

const stages = parseDockerfile(read("Dockerfile"));
const runtime = stages.at(-1)!;
const ops = (stage: Stage, op: string): string[] => stage.instructions.filter((i) => i.op === op).map((i) => i.args);

describe("the Dockerfile", () => {
  it("is multi-stage: dependencies are installed in one stage and copied into the runtime", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const deps = stages.find((s) => ops(s, "RUN").some((r) => /npm ci .*--omit=dev/.test(r)));
    expect(deps?.name).toBeDefined();
    expect(ops(runtime, "COPY")).toContain(`--from=${deps!.name} /app/node_modules ./node_modules`);
    expect(ops(runtime, "RUN").some((r) => /npm (ci|install)/.test(r)), "no install in the runtime").toBe(false);
  });

  it("pins every base image to an exact version of the project's Node.js major", () => {
    const major = read(".nvmrc").trim().replace(/^v/, "").split(".")[0];
    for (const s of stages) {
      expect(s.image, s.image).toMatch(/^[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?$/);
      expect(s.image.startsWith(`node:${major}.`), s.image).toBe(true);
    }
  });

  it("runs as a non-root user, set after everything that needs root", () => {
    const users = ops(runtime, "USER");
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/^(root|0)(:|$)/);
    const lastUser = runtime.instructions.map((i) => i.op).lastIndexOf("USER");
    const lastRun = runtime.instructions.map((i) => i.op).lastIndexOf("RUN");
    expect(lastUser).toBeGreaterThan(lastRun);
  });

  it("checks its health with the container health check, and runs the raptorflow command", () => {
    const [health] = ops(runtime, "HEALTHCHECK");
    expect(health).toMatch(/--interval=\d+s/);
    expect(health).toMatch(/--timeout=\d+s/);
    expect(health).toMatch(/CMD \["node", "container\/healthcheck.ts"\]/);
    expect(existsSync(join(root, "container/healthcheck.ts"))).toBe(true);
    expect(ops(runtime, "ENTRYPOINT")).toEqual(['["node", "bin/raptorflow.js"]']);
    // The service is the command: `serve <service>` (bin/cli.ts).
    expect(read("bin/cli.ts")).toMatch(/case "serve":/);
  });

  it("copies only what exists, and fetches nothing but Amazon RDS's CA bundle, to where the stack points NODE_EXTRA_CA_CERTS", () => {
    for (const copy of ops(runtime, "COPY").filter((c) => !c.startsWith("--from"))) {
      const sources = copy.split(/\s+/).slice(0, -1);
      for (const src of sources) expect(existsSync(join(root, src)), src).toBe(true);
    }
    const adds = ops(runtime, "ADD");
    expect(adds).toHaveLength(1);
    expect(adds[0]).toMatch(new RegExp(`^--chmod=\\d+ https://\\S+\\.pem ${rdsCaBundlePath.replaceAll("/", "\\/")}$`));
  });

  it("keeps tests, dependencies and secrets out of the build context (.dockerignore)", () => {
    const ignore = read(".dockerignore").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
    expect(ignore[0]).toBe("**");
    expect(ignore).toEqual(expect.arrayContaining(["**/*.test.ts", "**/node_modules"]));
    const copied = ops(runtime, "COPY").filter((c) => !c.startsWith("--from")).flatMap((c) => c.split(/\s+/).slice(0, -1));
    for (const src of copied) expect(ignore.some((l) => l === `!${src}` || l === `!${src}/**`), `${src} is let into the context`).toBe(true);
  });
});

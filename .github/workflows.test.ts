import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";

// The workflows cannot run here: parse them and check the jobs and steps that must exist.
type Step = { name?: string; uses?: string; run?: string; with?: Record<string, unknown>; "working-directory"?: string };
type Job = { name?: string; needs?: string | string[]; if?: string; environment?: string; services?: Record<string, { image: string }>; steps: Step[] };
type Workflow = { name: string; on: Record<string, any>; permissions?: Record<string, string>; jobs: Record<string, Job> };

const load = (file: string): Workflow => parse(readFileSync(fileURLToPath(new URL(`./workflows/${file}`, import.meta.url)), "utf8")) as Workflow;
const ci = load("ci.yml");
const deploy = load("deploy.yml");
const runs = (job: Job): string => job.steps.map((s) => s.run ?? "").join("\n");
const uses = (job: Job): string[] => job.steps.flatMap((s) => (s.uses ? [s.uses] : []));

describe("ci.yml", () => {
  it("runs on pushes to main, tags and pull requests, reading the repository only", () => {
    expect(ci.on.push.branches).toEqual(["main"]);
    expect(ci.on).toHaveProperty("pull_request");
    expect(ci.permissions).toEqual({ contents: "read" });
  });

  it("lints: buf lint, buf breaking, generated code, tsc", () => {
    const lint = runs(ci.jobs.lint);
    for (const cmd of ["npm ci", "buf lint", "buf:breaking", "check:gen", "tsc -p tsconfig.json"]) expect(lint).toContain(cmd);
    expect(ci.jobs.lint.steps[0].with?.["fetch-depth"], "buf breaking needs history").toBe(0);
  });

  it("tests with PostgreSQL (pgvector) and Redis service containers, required, not skipped", () => {
    const test = ci.jobs.test as Job & { env: Record<string, string> };
    expect(test.services?.postgres.image).toMatch(/^pgvector\/pgvector:pg\d+$/);
    expect(test.services?.redis.image).toMatch(/^redis:\d/);
    expect(test.env.REQUIRE_TEST_SERVICES).toBe("1");
    expect(test.env.DATABASE_URL).toMatch(/^postgres:\/\//);
    expect(test.env.REDIS_URL).toMatch(/^redis:\/\//);
    expect(runs(test)).toContain("npm test");
  });

  it("lints, builds and scans the image", () => {
    const image = uses(ci.jobs.image);
    expect(image.some((u) => u.startsWith("hadolint/hadolint-action@"))).toBe(true);
    expect(image.some((u) => u.startsWith("docker/build-push-action@"))).toBe(true);
    expect(image.some((u) => u.startsWith("aquasecurity/trivy-action@"))).toBe(true);
    const scan = ci.jobs.image.steps.find((s) => s.uses?.startsWith("aquasecurity/trivy-action@"))!;
    expect(scan.with?.["exit-code"]).toBe("1");
  });

  it("synthesizes CloudFormation (both mesh providers) and Kubernetes offline", () => {
    const synth = runs(ci.jobs.synth);
    expect(synth).toContain("npm run synth");
    expect(synth).toContain("cdk synth");
    expect(synth).toContain("meshProvider=appmesh");
  });
});

describe("deploy.yml", () => {
  it("deploys main to development and v* tags to production, through OIDC", () => {
    expect(deploy.on.push.branches).toEqual(["main"]);
    expect(deploy.on.push.tags).toEqual(["v*"]);
    expect(deploy.permissions).toMatchObject({ "id-token": "write", contents: "read" });
    expect(deploy.jobs["deploy-development"].if).toContain("refs/heads/main");
    expect(deploy.jobs["deploy-development"].environment).toBe("development");
    expect(deploy.jobs["deploy-production"].if).toContain("refs/tags/v");
    expect(deploy.jobs["deploy-production"].environment).toBe("production");
  });

  it("pushes and scans the image before either deployment", () => {
    expect(uses(deploy.jobs.image)).toEqual(expect.arrayContaining(["aws-actions/amazon-ecr-login@v2"]));
    expect(deploy.jobs.image.steps.find((s) => s.uses?.startsWith("docker/build-push-action@"))?.with?.push).toBe(true);
    expect(uses(deploy.jobs.image).some((u) => u.startsWith("aquasecurity/trivy-action@"))).toBe(true);
    for (const job of ["deploy-development", "deploy-production"]) expect(deploy.jobs[job].needs).toBe("image");
  });

  it("shows the diff, then releases blue/green with the release script (which rolls back on alarms)", () => {
    for (const job of ["deploy-development", "deploy-production"]) {
      const steps = deploy.jobs[job].steps;
      const diff = steps.findIndex((s) => s.run?.includes("cdk diff"));
      const release = steps.findIndex((s) => s.run?.includes("npm run release -- --env"));
      expect(diff, job).toBeGreaterThan(-1);
      expect(release, job).toBeGreaterThan(diff);
      expect(steps[release].run).toContain("--tag ${{ needs.image.outputs.tag }}");
      expect(uses(deploy.jobs[job])).toEqual(expect.arrayContaining(["aws-actions/configure-aws-credentials@v4"]));
    }
    const pkg = JSON.parse(readFileSync(fileURLToPath(new URL("../package.json", import.meta.url)), "utf8")) as { scripts: Record<string, string> };
    expect(pkg.scripts.release).toBe("tsx cdk/release.ts");
    expect(pkg.scripts.synth).toBeDefined();
  });
});

describe("both workflows", () => {
  it("pin every action to a version and name every job", () => {
    for (const wf of [ci, deploy]) {
      for (const [id, job] of Object.entries(wf.jobs)) {
        expect(job.name, id).toBeTruthy();
        for (const u of uses(job)) expect(u, `${wf.name}/${id}`).toMatch(/^[\w.-]+\/[\w.-]+@(v\d+(\.\d+)*|\d+\.\d+\.\d+|[0-9a-f]{40})$/);
      }
    }
  });
});

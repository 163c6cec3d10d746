/**
 * The blue/green release: `npm run release -- --env <name> --tag <image tag>`.
 * With App Mesh it deploys the new tag beside the live one, moves the route
 * weights through releasePlan.steps (10 % → 50 % → 100 %), bakes each step
 * while watching the release alarm, and on an alarm (or a failed deploy)
 * puts every route back on the live slot. With Service Connect it deploys the
 * tag once: ECS runs the canary, watches the same alarms and rolls back by
 * itself, and the deploy fails if it did.
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { meshName } from "../mesh/topology.js";
import { contextPrefix, otherSlot, type MeshProvider, type ReleaseState } from "./config.js";
import { releasePlan } from "./release-plan.js";

/** ReleaseIo is everything the release does to the world, so tests can fake it. */
export interface ReleaseIo {
  /** currentRelease is the deployed stack's release state, or undefined before the first deployment. */
  currentRelease(): Promise<ReleaseState | undefined>;
  /** deploy deploys the stack with this release state; it throws when the deployment fails. */
  deploy(state: ReleaseState): Promise<void>;
  /** alarmFiring tells whether the release alarm is in ALARM. */
  alarmFiring(): Promise<boolean>;
  /** sleep waits. */
  sleep(ms: number): Promise<void>;
  /** log tells the operator what happens. */
  log(message: string): void;
}

/** ReleaseOptions say what to release and how. */
export interface ReleaseOptions {
  /** provider is the environment's mesh provider. */
  readonly provider: MeshProvider;
  /** tag is the image tag to release. */
  readonly tag: string;
  /** steps are the candidate's traffic percentages (releasePlan.steps by default). */
  readonly steps?: readonly number[];
  /** bakeMinutes is how long each step is watched (releasePlan.bakeMinutes by default). */
  readonly bakeMinutes?: number;
  /** pollSeconds is how often the alarm is read while baking (30 by default). */
  readonly pollSeconds?: number;
}

/** ReleaseOutcome is how a release ended and the state left deployed. */
export interface ReleaseOutcome {
  readonly outcome: "released" | "rolled-back" | "unchanged";
  readonly state: ReleaseState;
}

/** runRelease releases a tag (see the file comment) and returns how it ended. */
export async function runRelease(options: ReleaseOptions, io: ReleaseIo): Promise<ReleaseOutcome> {
  const steps = options.steps ?? releasePlan.steps;
  const bakeMs = (options.bakeMinutes ?? releasePlan.bakeMinutes) * 60 * 1000;
  const pollMs = (options.pollSeconds ?? 30) * 1000;
  const current = await io.currentRelease();

  if (!current) {
    const state: ReleaseState = { live: "blue", tags: { blue: options.tag }, candidateWeight: 0 };
    io.log(`first deployment: ${options.tag} on the blue slot`);
    await io.deploy(state);
    return { outcome: "released", state };
  }
  const liveTag = current.tags[current.live]!;
  if (liveTag === options.tag && current.candidateWeight === 0) {
    io.log(`${options.tag} is already live`);
    return { outcome: "unchanged", state: current };
  }
  const stable: ReleaseState = { live: current.live, tags: { [current.live]: liveTag }, candidateWeight: 0 };

  if (options.provider === "serviceconnect") {
    const state: ReleaseState = { ...stable, tags: { [current.live]: options.tag } };
    io.log(`deploying ${options.tag}: ECS shifts ${steps[0]}% first, then the rest, and rolls back on the release alarms`);
    try {
      await io.deploy(state);
    } catch (e) {
      io.log(`the deployment failed and was rolled back to ${liveTag}: ${(e as Error).message}`);
      return { outcome: "rolled-back", state: stable };
    }
    return { outcome: "released", state };
  }

  const candidate = otherSlot(current.live);
  const shifting = (weight: number): ReleaseState => ({
    live: current.live,
    tags: { [current.live]: liveTag, [candidate]: options.tag },
    candidateWeight: weight,
  });
  const rollBack = async (why: string): Promise<ReleaseOutcome> => {
    io.log(`rolling back (${why}): every route to ${current.live} (${liveTag})`);
    await io.deploy(stable);
    return { outcome: "rolled-back", state: stable };
  };
  try {
    io.log(`starting ${options.tag} on the ${candidate} slot with no traffic`);
    await io.deploy(shifting(0));
    for (const weight of steps) {
      io.log(`${weight}% of the traffic to ${options.tag}`);
      await io.deploy(shifting(weight));
      for (let waited = 0; waited < bakeMs; waited += pollMs) {
        if (await io.alarmFiring()) return await rollBack(`the release alarm fired at ${weight}%`);
        await io.sleep(pollMs);
      }
      if (await io.alarmFiring()) return await rollBack(`the release alarm fired at ${weight}%`);
    }
  } catch (e) {
    return await rollBack(`a deployment failed: ${(e as Error).message}`);
  }
  const promoted: ReleaseState = { live: candidate, tags: { [candidate]: options.tag }, candidateWeight: 0 };
  io.log(`${options.tag} takes all the traffic; the ${candidate} slot is live, the ${current.live} slot is removed`);
  await io.deploy(promoted);
  return { outcome: "released", state: promoted };
}

const aws = (...args: string[]): string => execFileSync("aws", args, { encoding: "utf8" }).trim();

/** stackOutput reads one output of the deployed stack, or undefined when the stack or the output does not exist. */
export function stackOutput(envName: string, key: string): string | undefined {
  try {
    const out = aws("cloudformation", "describe-stacks", "--stack-name", `Raptorflow-${envName}`, "--query", `Stacks[0].Outputs[?OutputKey=='${key}'].OutputValue`, "--output", "text");
    return out && out !== "None" ? out : undefined;
  } catch {
    return undefined;
  }
}

/** awsIo is the real world: the AWS CLI and the CDK CLI, run from cdk/. */
export function awsIo(envName: string): ReleaseIo {
  const stackName = `Raptorflow-${envName}`;
  const cdkDir = fileURLToPath(new URL(".", import.meta.url));
  return {
    async currentRelease() {
      const out = stackOutput(envName, "Release");
      return out ? (JSON.parse(out) as ReleaseState) : undefined;
    },
    async deploy(state) {
      execFileSync(
        "npx",
        ["cdk", "deploy", stackName, "--require-approval", "never", "-c", `${contextPrefix}envName=${envName}`, "-c", `${contextPrefix}release=${JSON.stringify(state)}`],
        { cwd: cdkDir, stdio: "inherit" },
      );
    },
    async alarmFiring() {
      const state = aws(
        "cloudwatch",
        "describe-alarms",
        "--alarm-names",
        `${meshName}-${envName}-release`,
        "--alarm-types",
        "CompositeAlarm",
        "--query",
        "CompositeAlarms[0].StateValue",
        "--output",
        "text",
      );
      return state === "ALARM";
    },
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    log: (m) => console.log(`release: ${m}`),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { env: { type: "string" }, tag: { type: "string" }, provider: { type: "string" } } });
  // The provider is the deployed stack's unless the flag says otherwise (the first deployment, a migration).
  const provider = values.env ? (values.provider ?? stackOutput(values.env, "MeshProvider") ?? "serviceconnect") : undefined;
  if (!values.env || !values.tag || (provider !== "appmesh" && provider !== "serviceconnect")) {
    console.error("usage: npm run release -- --env <environment> --tag <image tag> [--provider serviceconnect|appmesh]");
    process.exit(2);
  }
  const result = await runRelease({ provider, tag: values.tag }, awsIo(values.env));
  console.log(`release: ${result.outcome}: ${JSON.stringify(result.state)}`);
  process.exit(result.outcome === "rolled-back" ? 1 : 0);
}

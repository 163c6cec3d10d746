import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { App } from "aws-cdk-lib";
import { meshName } from "../mesh/topology.js";
import { configFromContext } from "./config.js";
import { RaptorflowStack } from "./raptorflow-stack.js";

/** defaultOutdir is where `npm run synth` writes the CloudFormation (gitignored). */
export const defaultOutdir = fileURLToPath(new URL("../dist/cdk.out", import.meta.url));

/** BuildAppOptions configure one synthesis. */
export interface BuildAppOptions {
  /** outdir is where the cloud assembly goes (the CDK CLI's when it runs the app). */
  readonly outdir?: string;
  /** context is the CDK context; without it (and outside the CDK CLI, which passes its own) cdk/cdk.json's. */
  readonly context?: Record<string, unknown>;
}

/** cdkJsonContext is the context committed in cdk/cdk.json, so `npm run synth` and `cdk synth` agree. */
export function cdkJsonContext(): Record<string, unknown> {
  const file = fileURLToPath(new URL("./cdk.json", import.meta.url));
  return (JSON.parse(readFileSync(file, "utf8")) as { context?: Record<string, unknown> }).context ?? {};
}

/**
 * buildApp is the CDK app: one environment-agnostic stack for the
 * environment the context names. It needs no AWS account to synthesize.
 */
export function buildApp(options: BuildAppOptions = {}): App {
  const context = options.context ?? (process.env.CDK_CONTEXT_JSON ? undefined : cdkJsonContext());
  const app = new App({ outdir: options.outdir ?? process.env.CDK_OUTDIR ?? defaultOutdir, context });
  const config = configFromContext(app.node);
  new RaptorflowStack(app, `Raptorflow-${config.envName}`, {
    config,
    description: `${meshName} mesh (${config.envName}, ${config.meshProvider})`,
    tags: { project: meshName, environment: config.envName },
  });
  return app;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const assembly = buildApp().synth();
  for (const stack of assembly.stacks) console.log(`synthesized ${stack.stackName} -> ${assembly.directory}/${stack.templateFile}`);
}

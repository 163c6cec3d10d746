import type { Node } from "constructs";

/**
 * MeshProvider is how the services find and call each other on ECS: AWS App
 * Mesh (Envoy sidecars, virtual nodes and routers; AWS ended its support on
 * 30 September 2026) or ECS Service Connect (the supported path, the default).
 */
export type MeshProvider = "appmesh" | "serviceconnect";

/** Slot is one of the two colours a service runs in during a blue/green release. */
export type Slot = "blue" | "green";

/**
 * ReleaseState is where a blue/green release stands. With App Mesh, each
 * slot is its own ECS service and virtual node, and the routes send
 * `candidateWeight` percent of the traffic to the slot that is not live.
 * With Service Connect, the live slot's tag is deployed and ECS shifts the
 * traffic itself (canary), rolling back on the release alarms.
 */
export interface ReleaseState {
  /** live is the slot that serves when no release is in progress. */
  readonly live: Slot;
  /** tags is the image tag each slot runs; a slot without a tag runs no tasks. */
  readonly tags: Readonly<Partial<Record<Slot, string>>>;
  /** candidateWeight is the percentage of traffic the other slot gets (0 to 100). */
  readonly candidateWeight: number;
}

/** DeploymentConfig is everything about one environment that is not in the topology. */
export interface DeploymentConfig {
  /** envName names the environment (`development`, `production`); it prefixes names and secrets. */
  readonly envName: string;
  /** meshProvider picks App Mesh or Service Connect. */
  readonly meshProvider: MeshProvider;
  /** imageRepositoryName is the ECR repository of the one image every service runs. */
  readonly imageRepositoryName: string;
  /** release is the blue/green state: which tags run and how the traffic is split. */
  readonly release: ReleaseState;
  /** domainName is the public API's name (the certificate's subject). */
  readonly domainName: string;
  /** internalDomainName is the name internal gRPC clients use (on the same certificate). */
  readonly internalDomainName: string;
  /** certificateArn is an existing ACM certificate for both names; without it one is requested, validated by DNS. */
  readonly certificateArn?: string;
  /** certificateAuthorityArn is an ACM Private CA for TLS between services (required with App Mesh). */
  readonly certificateAuthorityArn?: string;
  /** alarmEmail, when set, is subscribed to the alarm topic. */
  readonly alarmEmail?: string;
  /** envoyImage is the App Mesh Envoy image (pinned). */
  readonly envoyImage: string;
  /** llmProvider is LLM_PROVIDER for the agent services (`openai`, `bedrock`, `offline` …). */
  readonly llmProvider: string;
  /** maxAzs is how many availability zones the network spans (at least 2). */
  readonly maxAzs: number;
}

/** defaultConfig is what an unconfigured synth uses: Service Connect, a development environment. */
export const defaultConfig: DeploymentConfig = {
  envName: "development",
  meshProvider: "serviceconnect",
  imageRepositoryName: "raptorflow",
  release: { live: "blue", tags: { blue: "latest" }, candidateWeight: 0 },
  domainName: "api.raptorflow.example",
  internalDomainName: "grpc.raptorflow.example",
  envoyImage: "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29.6.0-prod",
  llmProvider: "openai",
  maxAzs: 2,
};

/** contextPrefix prefixes every context key this app reads (`-c raptorflow:meshProvider=appmesh`). */
export const contextPrefix = "raptorflow:";

/**
 * configFromContext reads the deployment from CDK context (cdk.json or
 * `-c raptorflow:<key>=<value>`), over the defaults, and checks it: a bad
 * value fails the synth with a message naming the key.
 */
export function configFromContext(node: Node, base: DeploymentConfig = defaultConfig): DeploymentConfig {
  const envName = String(node.tryGetContext(`${contextPrefix}envName`) ?? base.envName);
  // Per-environment settings live in cdk.json under `raptorflow:environments`; a `-c` key wins over them.
  const environments = (node.tryGetContext(`${contextPrefix}environments`) ?? {}) as Record<string, Partial<Record<keyof DeploymentConfig, unknown>>>;
  const overlay = environments[envName] ?? {};
  const read = (key: keyof DeploymentConfig): unknown => node.tryGetContext(contextPrefix + key) ?? overlay[key];
  const str = (key: keyof DeploymentConfig): string | undefined => {
    const v = read(key);
    return v === undefined || v === "" ? undefined : String(v);
  };
  const rawRelease = read("release");
  const release = rawRelease === undefined ? base.release : typeof rawRelease === "string" ? JSON.parse(rawRelease) : rawRelease;
  return validateConfig({
    envName,
    meshProvider: (str("meshProvider") ?? base.meshProvider) as MeshProvider,
    imageRepositoryName: str("imageRepositoryName") ?? base.imageRepositoryName,
    release: release as ReleaseState,
    domainName: str("domainName") ?? base.domainName,
    internalDomainName: str("internalDomainName") ?? base.internalDomainName,
    certificateArn: str("certificateArn") ?? base.certificateArn,
    certificateAuthorityArn: str("certificateAuthorityArn") ?? base.certificateAuthorityArn,
    alarmEmail: str("alarmEmail") ?? base.alarmEmail,
    envoyImage: str("envoyImage") ?? base.envoyImage,
    llmProvider: str("llmProvider") ?? base.llmProvider,
    maxAzs: Number(str("maxAzs") ?? base.maxAzs),
  });
}

/** validateConfig checks a deployment and returns it, or throws naming what is wrong. */
export function validateConfig(config: DeploymentConfig): DeploymentConfig {
  const fail = (msg: string): never => {
    throw new Error(`${contextPrefix}${msg}`);
  };
  if (config.meshProvider !== "appmesh" && config.meshProvider !== "serviceconnect") {
    fail(`meshProvider must be appmesh or serviceconnect, got "${config.meshProvider}"`);
  }
  if (!/^[a-z][a-z0-9-]{0,19}$/.test(config.envName)) fail(`envName must be lower-case letters, digits and dashes, got "${config.envName}"`);
  if (!Number.isInteger(config.maxAzs) || config.maxAzs < 2) fail(`maxAzs must be at least 2, got ${config.maxAzs}`);
  const r = config.release;
  if (!r || (r.live !== "blue" && r.live !== "green")) fail(`release.live must be blue or green`);
  if (!r.tags?.[r.live]) fail(`release.tags.${r.live} (the live slot's image tag) is required`);
  if (!Number.isFinite(r.candidateWeight) || r.candidateWeight < 0 || r.candidateWeight > 100) {
    fail(`release.candidateWeight must be from 0 to 100, got ${r.candidateWeight}`);
  }
  if (r.candidateWeight > 0 && !r.tags[otherSlot(r.live)]) fail(`release.candidateWeight is ${r.candidateWeight} but release.tags.${otherSlot(r.live)} is not set`);
  if (config.meshProvider === "appmesh" && !config.certificateAuthorityArn) {
    fail("certificateAuthorityArn (an ACM Private CA) is required with App Mesh: traffic between services is TLS");
  }
  return config;
}

/** otherSlot is the slot that is not `slot`. */
export function otherSlot(slot: Slot): Slot {
  return slot === "blue" ? "green" : "blue";
}

/** slotWeights is the percentage of traffic each running slot gets. */
export function slotWeights(release: ReleaseState): { slot: Slot; weight: number }[] {
  const candidate = otherSlot(release.live);
  const out = [{ slot: release.live, weight: 100 - release.candidateWeight }];
  if (release.tags[candidate]) out.push({ slot: candidate, weight: release.candidateWeight });
  return out;
}

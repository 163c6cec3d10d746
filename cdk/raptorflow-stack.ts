import { Construct } from "constructs";
import { CfnOutput, Stack, type StackProps } from "aws-cdk-lib";
import * as ecr from "aws-cdk-lib/aws-ecr";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { callersOf, envPrefix, exposureOf, meshName, needsOf, serviceNames, topology, type ServiceName, type ServiceSpec } from "../mesh/topology.js";
import type { DeploymentConfig } from "./config.js";
import { DataStores } from "./data-stores.js";
import { Edge } from "./edge.js";
import { AppMeshFabric, ServiceConnectFabric, type MeshFabric } from "./mesh-fabric.js";
import { MeshedService } from "./meshed-service.js";
import { Monitoring } from "./monitoring.js";
import { Network } from "./network.js";

/** rdsCaBundlePath is where the image keeps Amazon RDS's CA bundle (see Dockerfile), so TLS to the database is verified. */
export const rdsCaBundlePath = "/app/certs/rds-global-bundle.pem";

/** RaptorflowStackProps configure the whole mesh on AWS. */
export interface RaptorflowStackProps extends StackProps {
  /** config is the environment: mesh provider, release, names. */
  readonly config: DeploymentConfig;
  /** specs are the services in start order (upstreams first); the topology's by default. */
  readonly specs?: readonly ServiceSpec[];
}

/**
 * RaptorflowStack is the mesh on AWS, built from the topology: network,
 * database and cache, ECS cluster, the mesh fabric (Service Connect or App
 * Mesh), one MeshedService per service with exactly the access its `needs`
 * and `upstreams` ask for, the load balancers its `exposure` asks for, and
 * the alarms and dashboard of observability/alerts.ts.
 */
export class RaptorflowStack extends Stack {
  /** services are the meshed services by name. */
  readonly services: ReadonlyMap<ServiceName, MeshedService>;

  constructor(scope: Construct, id: string, props: RaptorflowStackProps) {
    super(scope, id, props);
    const { config } = props;
    const specs = props.specs ?? serviceNames.map((n) => topology[n]);
    const publics = specs.filter((s) => exposureOf(s) === "public");
    if (publics.length > 1) throw new Error(`at most one service may be public, got ${publics.map((s) => s.name).join(", ")}`);
    const prefix = `${meshName}-${config.envName}`;

    const key = new kms.Key(this, "Key", {
      alias: `${meshName}/${config.envName}`,
      description: `${prefix}: database, cache, secrets, alarm topic`,
      enableKeyRotation: true,
    });
    // CloudWatch publishes alarms to the encrypted topic.
    key.grant(new iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*");

    const { vpc } = new Network(this, "Network", { maxAzs: config.maxAzs });
    const data = new DataStores(this, "Data", { vpc, envName: config.envName, key });
    const cluster = new ecs.Cluster(this, "Cluster", {
      vpc,
      enableFargateCapacityProviders: true,
      containerInsightsV2: ecs.ContainerInsights.ENHANCED,
    });
    const fabric: MeshFabric =
      config.meshProvider === "appmesh"
        ? new AppMeshFabric(this, "AppMesh", { vpc, certificateAuthorityArn: config.certificateAuthorityArn!, envoyImage: config.envoyImage })
        : new ServiceConnectFabric(this, "ServiceConnect", { certificateAuthorityArn: config.certificateAuthorityArn, key });
    const edge = new Edge(this, "Edge", {
      vpc,
      domainName: config.domainName,
      internalDomainName: config.internalDomainName,
      certificateArn: config.certificateArn,
    });
    const monitoring = new Monitoring(this, "Monitoring", { prefix, provider: config.meshProvider, key, alarmEmail: config.alarmEmail });
    monitoring.watchDatabase(data.database);
    const repository = ecr.Repository.fromRepositoryName(this, "Repository", config.imageRepositoryName);
    const bySpec = new Map(specs.map((s) => [s.name, s]));

    const services = new Map<ServiceName, MeshedService>();
    specs.forEach((spec, i) => {
      const environment: Record<string, string> = {
        NODE_ENV: "production",
        HOST: "0.0.0.0",
        RAPTORFLOW_SERVICE: spec.name,
        RAPTORFLOW_ENV: config.envName,
      };
      for (const u of spec.upstreams) {
        const upstream = bySpec.get(u);
        if (!upstream) throw new Error(`${spec.name} calls ${u}, which is not in the topology`);
        environment[`${envPrefix(u)}_ADDR`] = fabric.address(upstream);
      }
      const secrets: Record<string, ecs.Secret> = {};
      const taskPolicies: iam.PolicyStatement[] = [];
      if (needsOf(spec, "postgres")) {
        // The URL carries no password: the driver (pg) reads PGPASSWORD, straight from the database secret.
        environment.DATABASE_URL = data.databaseUrl;
        environment.PGSSLMODE = "verify-full";
        environment.NODE_EXTRA_CA_CERTS = rdsCaBundlePath;
        secrets.PGPASSWORD = ecs.Secret.fromSecretsManager(data.databaseSecret, "password");
      }
      if (needsOf(spec, "redis")) secrets.REDIS_URL = ecs.Secret.fromSecretsManager(data.redisUrlSecret, "url");
      if (needsOf(spec, "llm")) {
        environment.LLM_PROVIDER = config.llmProvider;
        secrets.OPENAI_API_KEY = ecs.Secret.fromSecretsManager(data.llmSecret, "OPENAI_API_KEY");
        if (config.llmProvider.split(",").includes("bedrock")) {
          taskPolicies.push(
            new iam.PolicyStatement({
              actions: ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
              resources: ["arn:aws:bedrock:*::foundation-model/*", `arn:aws:bedrock:*:${this.account}:inference-profile/*`],
            }),
          );
        }
      }
      for (const name of spec.secrets ?? []) {
        // Its own secrets: a random placeholder until the operator puts the value in (docs/deploy.md).
        const secret = new secretsmanager.Secret(this, `${constructId(spec.name)}${constructId(name.toLowerCase().replaceAll("_", "-"))}`, {
          secretName: `${meshName}/${config.envName}/${spec.name}/${name}`,
          description: `${name} for ${spec.name}`,
          encryptionKey: key,
          generateSecretString: { passwordLength: 32, excludePunctuation: true },
        });
        secrets[name] = ecs.Secret.fromSecretsManager(secret);
      }
      const service = new MeshedService(this, constructId(spec.name), {
        spec,
        callers: callersOf(spec.name, specs),
        cluster,
        fabric,
        repository,
        release: config.release,
        environment,
        secrets,
        taskPolicies,
        ingress: edge.ingressFor(spec, 10 + i),
        alarms: monitoring,
      });
      if (needsOf(spec, "postgres")) service.allowTo(data.databaseSecurityGroup, data.databasePort, "PostgreSQL");
      if (needsOf(spec, "redis")) service.allowTo(data.cacheSecurityGroup, data.redisPort, "Redis");
      for (const u of spec.upstreams) {
        const upstream = services.get(u);
        if (!upstream) throw new Error(`${u} must come before ${spec.name} in start order`);
        service.connectTo(upstream);
      }
      services.set(spec.name, service);
    });
    this.services = services;
    const release = monitoring.finish();

    new CfnOutput(this, "PublicLoadBalancer", { value: edge.publicLoadBalancer.loadBalancerDnsName, description: `point ${config.domainName} here` });
    new CfnOutput(this, "InternalLoadBalancer", { value: edge.internalLoadBalancer.loadBalancerDnsName, description: `point *.${config.internalDomainName} here` });
    new CfnOutput(this, "ClusterName", { value: cluster.clusterName });
    new CfnOutput(this, "MeshProvider", { value: config.meshProvider });
    new CfnOutput(this, "Release", { value: JSON.stringify(config.release), description: "the blue/green state this deployment runs" });
    if (release) new CfnOutput(this, "ReleaseAlarm", { value: release.alarmName });
    new CfnOutput(this, "AlarmTopic", { value: monitoring.topic.topicArn });
    new CfnOutput(this, "Dashboard", { value: monitoring.dashboard.dashboardName });
    new CfnOutput(this, "LlmSecret", { value: data.llmSecret.secretName, description: "set OPENAI_API_KEY here" });
    const migrator = specs.find((s) => needsOf(s, "postgres"));
    if (migrator) {
      const svc = services.get(migrator.name)!;
      const live = svc.services.get(config.release.live)!;
      new CfnOutput(this, "MigrationTaskDefinition", { value: live.taskDefinition.taskDefinitionArn, description: "run with command [\"migrate\"]" });
      new CfnOutput(this, "MigrationSecurityGroup", { value: svc.securityGroup.securityGroupId });
      new CfnOutput(this, "TaskSubnets", { value: vpc.privateSubnets.map((s) => s.subnetId).join(",") });
    }
  }
}

/** constructId is a service's construct id: `v1-agents` -> `V1Agents`. */
export function constructId(name: string): string {
  return name
    .split("-")
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join("");
}

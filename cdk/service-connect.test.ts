import { App } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { callersOf, envPrefix, exposureOf, healthCheckOf, needsOf, scalingTargets, serviceNames, topology, type ServiceSpec } from "../mesh/topology.js";
import { alerts } from "../observability/alerts.js";
import { defaultConfig, validateConfig } from "./config.js";
import { RaptorflowStack, constructId } from "./raptorflow-stack.js";
import { releasePlan } from "./release-plan.js";
import { scratchOutdirs } from "./scratch-outdir.js";

const outdirs = scratchOutdirs();
afterAll(() => outdirs.removeAll());

// GIVEN the default deployment (Service Connect), synthesized once for the whole file.
let template: Template;
const specs: ServiceSpec[] = serviceNames.map((n) => topology[n]);

type Resource = { Type: string; Properties: Record<string, any>; DependsOn?: unknown };

/** resourcesOf are a service's resources of a type (their logical ids start with the service's construct id). */
function resourcesOf(type: string, spec: ServiceSpec): [string, Resource][] {
  return Object.entries(template.findResources(type) as Record<string, Resource>).filter(([id]) => id.startsWith(constructId(spec.name)));
}
function oneOf(type: string, spec: ServiceSpec): Resource {
  const found = resourcesOf(type, spec);
  expect(found, `${spec.name}: one ${type}`).toHaveLength(1);
  return found[0][1];
}
function appContainer(spec: ServiceSpec): Record<string, any> {
  return oneOf("AWS::ECS::TaskDefinition", spec).Properties.ContainerDefinitions.find((c: { Name: string }) => c.Name === "app");
}
/** refsIn lists every logical id a CloudFormation value refers to. */
function refsIn(value: unknown): string[] {
  const json = JSON.stringify(value);
  return [...json.matchAll(/"(?:Ref|Fn::GetAtt)":\s*(?:"([^"]+)"|\["([^"]+)")/g)].map((m) => m[1] ?? m[2]);
}
function logicalIdOf(type: string, prefix: string): string {
  const ids = Object.keys(template.findResources(type)).filter((id) => id.startsWith(prefix));
  expect(ids, `${type} ${prefix}`).toHaveLength(1);
  return ids[0];
}

beforeAll(() => {
  const app = new App({ outdir: outdirs.next() });
  const stack = new RaptorflowStack(app, "Test", { config: validateConfig({ ...defaultConfig, meshProvider: "serviceconnect" }) });
  template = Template.fromStack(stack);
});

describe("network", () => {
  it("spans at least two availability zones, with private subnets for the tasks and isolated ones for the data", () => {
    const subnets = Object.values(template.findResources("AWS::EC2::Subnet") as Record<string, Resource>);
    const byTier = (tier: string) => subnets.filter((s) => JSON.stringify(s.Properties.Tags).includes(`"${tier}"`));
    for (const tier of ["tasks", "data", "public"]) {
      const zones = new Set(byTier(tier).map((s) => JSON.stringify(s.Properties.AvailabilityZone)));
      expect(zones.size, tier).toBeGreaterThanOrEqual(2);
    }
    for (const s of [...byTier("tasks"), ...byTier("data")]) expect(s.Properties.MapPublicIpOnLaunch).toBe(false);
    template.resourceCountIs("AWS::EC2::NatGateway", 2);
  });

  it("runs every task in the private subnets without a public address", () => {
    for (const spec of specs) {
      const net = oneOf("AWS::ECS::Service", spec).Properties.NetworkConfiguration.AwsvpcConfiguration;
      expect(net.AssignPublicIp).toBe("DISABLED");
      for (const subnet of refsIn(net.Subnets)) expect(subnet).toMatch(/tasksSubnet/);
    }
  });
});

describe("services, from the topology", () => {
  it("gives each service its task size, its port, its command and a read-only, non-root container", () => {
    for (const spec of specs) {
      const task = oneOf("AWS::ECS::TaskDefinition", spec).Properties;
      expect(task.Cpu).toBe(String(spec.scaling.cpu));
      expect(task.Memory).toBe(String(spec.scaling.memoryMiB));
      expect(task.RequiresCompatibilities).toEqual(["FARGATE"]);
      const app = appContainer(spec);
      expect(app.Command).toEqual(["serve", spec.name]);
      expect(app.PortMappings).toEqual([expect.objectContaining({ ContainerPort: spec.port, Name: spec.name })]);
      expect(app.ReadonlyRootFilesystem).toBe(true);
      expect(app.User).toBe("1000:1000");
      expect(app.HealthCheck.Command).toEqual(["CMD", "node", "container/healthcheck.ts"]);
      expect(app.HealthCheck.Interval).toBe(healthCheckOf(spec).intervalSeconds);
      expect(app.HealthCheck.StartPeriod).toBe(healthCheckOf(spec).startPeriodSeconds);
      expect(app.Environment).toEqual(expect.arrayContaining([{ Name: "RAPTORFLOW_SERVICE", Value: spec.name }]));
    }
  });

  it("puts services marked spot on Fargate Spot (with one on-demand task) and the rest on demand only", () => {
    for (const spec of specs) {
      const providers = oneOf("AWS::ECS::Service", spec).Properties.CapacityProviderStrategy.map((p: { CapacityProvider: string }) => p.CapacityProvider);
      expect(providers, spec.name).toEqual(spec.scaling.spot ? ["FARGATE", "FARGATE_SPOT"] : ["FARGATE"]);
    }
    expect(specs.some((s) => s.scaling.spot), "the topology has a spot service to check").toBe(true);
  });

  it("scales each service on CPU and memory within its task range", () => {
    for (const spec of specs) {
      const target = oneOf("AWS::ApplicationAutoScaling::ScalableTarget", spec).Properties;
      expect([target.MinCapacity, target.MaxCapacity], spec.name).toEqual([spec.scaling.minTasks, spec.scaling.maxTasks]);
      const policies = resourcesOf("AWS::ApplicationAutoScaling::ScalingPolicy", spec).map(([, p]) => p.Properties.TargetTrackingScalingPolicyConfiguration);
      expect(policies).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ TargetValue: scalingTargets.cpuPercent, PredefinedMetricSpecification: { PredefinedMetricType: "ECSServiceAverageCPUUtilization" } }),
          expect.objectContaining({ TargetValue: scalingTargets.memoryPercent, PredefinedMetricSpecification: { PredefinedMetricType: "ECSServiceAverageMemoryUtilization" } }),
        ]),
      );
    }
  });

  it("publishes each called service on Service Connect with the topology's deadline, and tells callers where it is", () => {
    for (const spec of specs) {
      const sc = oneOf("AWS::ECS::Service", spec).Properties.ServiceConnectConfiguration;
      expect(sc.Enabled).toBe(true);
      if (callersOf(spec.name).length === 0) {
        expect(sc.Services, spec.name).toBeUndefined();
        continue;
      }
      expect(sc.Services).toEqual([
        expect.objectContaining({
          PortName: spec.name,
          DiscoveryName: spec.name,
          ClientAliases: [{ DnsName: spec.name, Port: spec.port }],
          Timeout: expect.objectContaining({ PerRequestTimeoutSeconds: spec.callPolicy.timeoutMs / 1000 }),
        }),
      ]);
      for (const caller of callersOf(spec.name)) {
        expect(appContainer(topology[caller]).Environment).toContainEqual({ Name: `${envPrefix(spec.name)}_ADDR`, Value: `${spec.name}:${spec.port}` });
      }
    }
  });

  it("deploys each reachable service as an ECS canary at the first release step, rolled back by its release alarms", () => {
    const alarmNames = new Set(Object.values(template.findResources("AWS::CloudWatch::Alarm") as Record<string, Resource>).map((a) => a.Properties.AlarmName));
    for (const spec of specs) {
      const deployment = oneOf("AWS::ECS::Service", spec).Properties.DeploymentConfiguration;
      expect(deployment.Strategy, spec.name).toBe("CANARY");
      expect(deployment.CanaryConfiguration).toEqual({ CanaryPercent: releasePlan.steps[0], CanaryBakeTimeInMinutes: releasePlan.bakeMinutes });
      expect(deployment.DeploymentCircuitBreaker).toEqual({ Enable: true, Rollback: true });
      expect(deployment.Alarms.Rollback).toBe(true);
      const rollbackAlerts = alerts.filter((a) => a.rollback).map((a) => a.name);
      expect(deployment.Alarms.AlarmNames).toHaveLength(rollbackAlerts.length);
      for (const name of deployment.Alarms.AlarmNames) {
        expect(alarmNames.has(name), `${name} exists`).toBe(true);
        expect(rollbackAlerts.some((a) => name.endsWith(`-${spec.name}-${a}`))).toBe(true);
      }
    }
  });
});

describe("data", () => {
  it("runs PostgreSQL multi-AZ, encrypted with the KMS key, with 7 days of backups, Performance Insights and TLS required", () => {
    template.hasResourceProperties("AWS::RDS::DBInstance", {
      Engine: "postgres",
      MultiAZ: true,
      StorageEncrypted: true,
      KmsKeyId: { "Fn::GetAtt": [Match.stringLikeRegexp("^Key"), "Arn"] },
      BackupRetentionPeriod: 7,
      EnablePerformanceInsights: true,
      PerformanceInsightsKMSKeyId: { "Fn::GetAtt": [Match.stringLikeRegexp("^Key"), "Arn"] },
      PubliclyAccessible: false,
      DeletionProtection: true,
    });
    template.hasResourceProperties("AWS::RDS::DBParameterGroup", { Parameters: Match.objectLike({ "rds.force_ssl": "1" }) });
    template.hasResourceProperties("AWS::KMS::Key", { EnableKeyRotation: true });
  });

  it("runs Redis encrypted at rest and in transit, with an AUTH token from Secrets Manager, across zones", () => {
    template.hasResourceProperties("AWS::ElastiCache::ReplicationGroup", {
      AtRestEncryptionEnabled: true,
      TransitEncryptionEnabled: true,
      KmsKeyId: Match.anyValue(),
      MultiAZEnabled: true,
      AutomaticFailoverEnabled: true,
      AuthToken: { "Fn::Join": ["", Match.arrayWith([Match.stringLikeRegexp("^\\{\\{resolve:secretsmanager:")])] },
    });
  });

  it("gives every secret to the containers from Secrets Manager, and none in plain environment", () => {
    const secretIds = new Set([...Object.keys(template.findResources("AWS::SecretsManager::Secret")), ...Object.keys(template.findResources("AWS::SecretsManager::SecretTargetAttachment"))]);
    for (const spec of specs) {
      const app = appContainer(spec);
      for (const secret of app.Secrets ?? []) for (const ref of refsIn(secret.ValueFrom)) expect(secretIds.has(ref), `${spec.name} ${secret.Name}`).toBe(true);
      for (const env of app.Environment) {
        expect(env.Name, spec.name).not.toMatch(/PASSWORD|SECRET|TOKEN|API_KEY|REDIS_URL/);
        expect(JSON.stringify(env.Value)).not.toMatch(/resolve:secretsmanager/);
      }
      const secretNames = (app.Secrets ?? []).map((s: { Name: string }) => s.Name).sort();
      const expected = [
        ...(needsOf(spec, "llm") ? ["OPENAI_API_KEY"] : []),
        ...(needsOf(spec, "postgres") ? ["PGPASSWORD"] : []),
        ...(needsOf(spec, "redis") ? ["REDIS_URL"] : []),
        ...(spec.secrets ?? []),
      ].sort();
      expect(secretNames, spec.name).toEqual(expected);
      const databaseUrl = app.Environment.find((e: { Name: string }) => e.Name === "DATABASE_URL");
      if (needsOf(spec, "postgres")) {
        expect(JSON.stringify(databaseUrl.Value)).toContain("postgres://raptorflow@");
        expect(app.Environment).toContainEqual({ Name: "PGSSLMODE", Value: "verify-full" });
      } else expect(databaseUrl).toBeUndefined();
    }
  });
});

describe("least privilege", () => {
  const statementsOf = (roleId: string): Record<string, any>[] =>
    Object.values(template.findResources("AWS::IAM::Policy") as Record<string, Resource>)
      .filter((p) => refsIn(p.Properties.Roles).includes(roleId))
      .flatMap((p) => p.Properties.PolicyDocument.Statement);

  it("lets each service's execution role read only the secrets that service needs", () => {
    const dbSecret = logicalIdOf("AWS::SecretsManager::SecretTargetAttachment", "DataPostgres");
    const redisSecret = logicalIdOf("AWS::SecretsManager::Secret", "DataRedisUrl");
    const llmSecret = logicalIdOf("AWS::SecretsManager::Secret", "DataLlmKeys");
    for (const spec of specs) {
      const role = logicalIdOf("AWS::IAM::Role", `${constructId(spec.name)}ExecutionRole`);
      const readable = statementsOf(role)
        .filter((s) => [s.Action].flat().includes("secretsmanager:GetSecretValue"))
        .flatMap((s) => refsIn(s.Resource));
      expect(readable.includes(dbSecret), `${spec.name} reads the database secret`).toBe(needsOf(spec, "postgres"));
      expect(readable.includes(redisSecret), `${spec.name} reads the Redis secret`).toBe(needsOf(spec, "redis"));
      expect(readable.includes(llmSecret), `${spec.name} reads the model keys`).toBe(needsOf(spec, "llm"));
      const own = Object.keys(template.findResources("AWS::SecretsManager::Secret")).filter((id) => id.startsWith(constructId(spec.name)));
      expect(own.length, `${spec.name}'s own secrets`).toBe(spec.secrets?.length ?? 0);
      const others = readable.filter((id) => ![dbSecret, redisSecret, llmSecret].includes(id));
      expect(others.sort(), `${spec.name} reads only its own secrets`).toEqual(own.sort());
    }
  });

  it("gives task roles nothing they do not use (no Bedrock unless the provider is Bedrock)", () => {
    for (const spec of specs) {
      const role = logicalIdOf("AWS::IAM::Role", `${constructId(spec.name)}TaskRole`);
      expect(statementsOf(role), spec.name).toEqual([]);
    }
  });

  it("allows no wildcard action anywhere, and a wildcard resource only where AWS offers nothing narrower", () => {
    const allowedOnAnyResource = new Set(["ecr:GetAuthorizationToken"]);
    for (const policy of Object.values(template.findResources("AWS::IAM::Policy") as Record<string, Resource>)) {
      for (const s of policy.Properties.PolicyDocument.Statement) {
        for (const action of [s.Action].flat()) expect(action).not.toMatch(/\*$/);
        if (s.Resource === "*") for (const action of [s.Action].flat()) expect(allowedOnAnyResource.has(action), action).toBe(true);
      }
    }
  });

  it("opens each service's port only to its callers (and its load balancer), and the data stores only to their users", () => {
    const ingress = Object.values(template.findResources("AWS::EC2::SecurityGroupIngress") as Record<string, Resource>).map((r) => r.Properties);
    for (const spec of specs) {
      const sg = logicalIdOf("AWS::EC2::SecurityGroup", `${constructId(spec.name)}Sg`);
      const into = ingress.filter((r) => refsIn(r.GroupId).includes(sg));
      const sources = into.map((r) => refsIn(r.SourceSecurityGroupId)[0]).sort();
      const expected = callersOf(spec.name).map((c) => logicalIdOf("AWS::EC2::SecurityGroup", `${constructId(c)}Sg`));
      if (exposureOf(spec) !== "mesh") expected.push(logicalIdOf("AWS::EC2::SecurityGroup", exposureOf(spec) === "public" ? "EdgePublicSecurityGroup" : "EdgeInternalSecurityGroup"));
      expect(sources, spec.name).toEqual(expected.sort());
      for (const r of into) expect([r.FromPort, r.ToPort]).toEqual([spec.port, spec.port]);
    }
    for (const [store, backing] of [["DataDatabaseSg", "postgres"], ["DataCacheSg", "redis"]] as const) {
      const sg = logicalIdOf("AWS::EC2::SecurityGroup", store);
      const sources = ingress.filter((r) => refsIn(r.GroupId).includes(sg)).map((r) => refsIn(r.SourceSecurityGroupId)[0]).sort();
      const users = specs.filter((s) => needsOf(s, backing)).map((s) => logicalIdOf("AWS::EC2::SecurityGroup", `${constructId(s.name)}Sg`));
      expect(sources, store).toEqual(users.sort());
    }
  });
});

describe("load balancers", () => {
  it("serves the public service over TLS only (HTTP redirects) and health-checks it on its HTTP path", () => {
    template.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", {
      Protocol: "HTTPS",
      Port: 443,
      Certificates: [{ CertificateArn: Match.anyValue() }],
      SslPolicy: Match.stringLikeRegexp("TLS13|TLS-1-2"),
    });
    template.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", {
      Protocol: "HTTP",
      Port: 80,
      DefaultActions: [Match.objectLike({ Type: "redirect", RedirectConfig: Match.objectLike({ Protocol: "HTTPS", Port: "443" }) })],
    });
    for (const spec of specs.filter((s) => exposureOf(s) === "public")) {
      for (const [, tg] of resourcesOf("AWS::ElasticLoadBalancingV2::TargetGroup", spec)) {
        expect(tg.Properties).toMatchObject({ Port: spec.port, HealthCheckPath: healthCheckOf(spec).path, Matcher: { HttpCode: "200" }, TargetType: "ip" });
      }
    }
  });

  it("gives each internal service a gRPC target group on the internal load balancer, probed with grpc.health.v1", () => {
    template.hasResourceProperties("AWS::ElasticLoadBalancingV2::LoadBalancer", { Scheme: "internal" });
    template.hasResourceProperties("AWS::ElasticLoadBalancingV2::LoadBalancer", { Scheme: "internet-facing" });
    const internal = specs.filter((s) => exposureOf(s) === "internal");
    expect(internal.length).toBeGreaterThan(0);
    for (const spec of internal) {
      const groups = resourcesOf("AWS::ElasticLoadBalancingV2::TargetGroup", spec);
      expect(groups).toHaveLength(2); // live and alternate, for ECS's canary
      for (const [, tg] of groups) {
        expect(tg.Properties).toMatchObject({
          ProtocolVersion: "GRPC",
          Port: spec.port,
          HealthCheckPath: "/grpc.health.v1.Health/Check",
          Matcher: { GrpcCode: "0" },
        });
      }
      const rule = oneOf("AWS::ElasticLoadBalancingV2::ListenerRule", spec).Properties;
      expect(JSON.stringify(rule.Conditions)).toContain(`${spec.name}.${defaultConfig.internalDomainName}`);
      const weights = rule.Actions[0].ForwardConfig.TargetGroups.map((t: { Weight: number }) => t.Weight);
      expect(weights).toEqual([100, 0]);
    }
  });
});

describe("alarms and dashboard", () => {
  const alarms = (): Record<string, any>[] => Object.values(template.findResources("AWS::CloudWatch::Alarm") as Record<string, Resource>).map((a) => a.Properties);

  it("raises every alert of observability/alerts.ts with its threshold, for every service (and the database)", () => {
    const all = alarms();
    for (const alert of alerts) {
      const raised = all.filter((a) => a.AlarmName.endsWith(`-${alert.name}`));
      expect(raised.length, alert.name).toBeGreaterThan(0);
      for (const a of raised) {
        expect(a.ComparisonOperator).toBe(alert.comparison === "above" ? "GreaterThanThreshold" : "LessThanThreshold");
        expect(a.EvaluationPeriods).toBe(alert.forMinutes);
        // Service Connect reports response time in milliseconds; everything else is in the alert's own unit.
        const serviceConnectLatency = alert.unit === "seconds" && a.Namespace === "AWS/ECS";
        expect(a.Threshold, a.AlarmName).toBe(serviceConnectLatency ? alert.threshold * 1000 : alert.threshold);
      }
    }
    for (const spec of specs) {
      for (const alert of alerts.filter((a) => a.scope === "service" && !a.rollback)) {
        expect(all.some((a) => a.AlarmName.endsWith(`-${spec.name}-blue-${alert.name}`)), `${spec.name} ${alert.name}`).toBe(true);
      }
    }
    expect(all.find((a) => a.AlarmName.endsWith("-database-LowStorage"))).toMatchObject({ MetricName: "FreeStorageSpace", Namespace: "AWS/RDS" });
  });

  it("sends every alarm to one SNS topic, encrypted, and combines the release alarms into one", () => {
    const topic = logicalIdOf("AWS::SNS::Topic", "MonitoringAlarms");
    template.hasResourceProperties("AWS::SNS::Topic", { KmsMasterKeyId: Match.anyValue() });
    for (const a of alarms()) expect(refsIn(a.AlarmActions), a.AlarmName).toEqual([topic]);
    const composite = Object.values(template.findResources("AWS::CloudWatch::CompositeAlarm") as Record<string, Resource>);
    expect(composite).toHaveLength(1);
    const rollbackIds = Object.entries(template.findResources("AWS::CloudWatch::Alarm") as Record<string, Resource>)
      .filter(([, a]) => alerts.some((al) => al.rollback && a.Properties.AlarmName.endsWith(`-${al.name}`)))
      .map(([id]) => id);
    expect(rollbackIds.length).toBeGreaterThan(0);
    expect(refsIn(composite[0].Properties.AlarmRule).sort()).toEqual(rollbackIds.sort());
    template.resourceCountIs("AWS::CloudWatch::Dashboard", 1);
  });
});

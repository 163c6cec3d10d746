import { Construct } from "constructs";
import { Duration } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as ecr from "aws-cdk-lib/aws-ecr";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as elbv2 from "aws-cdk-lib/aws-elasticloadbalancingv2";
import * as iam from "aws-cdk-lib/aws-iam";
import * as logs from "aws-cdk-lib/aws-logs";
import { healthCheckOf, scalingTargets, type ServiceName, type ServiceSpec } from "../mesh/topology.js";
import { otherSlot, slotWeights, type ReleaseState, type Slot } from "./config.js";
import type { MeshFabric, SlotBinding } from "./mesh-fabric.js";
import { releasePlan } from "./release-plan.js";
import type { ServiceAlarms } from "./monitoring.js";

/** ServiceIngress is the load balancer listener a service is reached through from outside the mesh. */
export interface ServiceIngress {
  /** loadBalancer is the ALB (its metrics feed the service's alarms). */
  readonly loadBalancer: elbv2.IApplicationLoadBalancer;
  /** listener is its HTTPS listener. */
  readonly listener: elbv2.IApplicationListener;
  /** conditions pick this service's requests on the listener. */
  readonly conditions: readonly elbv2.ListenerCondition[];
  /** priority orders the listener rule. */
  readonly priority: number;
}

/** MeshedServiceProps configure one service of the mesh on ECS. */
export interface MeshedServiceProps {
  /** spec is the service's entry in the topology: port, health, scaling, exposure. */
  readonly spec: ServiceSpec;
  /** callers are the services that call it (from the topology's upstreams). */
  readonly callers: readonly ServiceName[];
  /** cluster runs its tasks. */
  readonly cluster: ecs.ICluster;
  /** fabric is the mesh (App Mesh or Service Connect). */
  readonly fabric: MeshFabric;
  /** repository holds the one image of the mesh. */
  readonly repository: ecr.IRepository;
  /** release says which image tags run and how traffic is split between them. */
  readonly release: ReleaseState;
  /** environment is the plain configuration the service gets (no secrets). */
  readonly environment: Readonly<Record<string, string>>;
  /** secrets are the environment variables it reads from Secrets Manager. */
  readonly secrets: Readonly<Record<string, ecs.Secret>>;
  /** taskPolicies are the extra permissions its code needs (for example Bedrock). */
  readonly taskPolicies?: readonly iam.PolicyStatement[];
  /** ingress is the listener that reaches it from outside the mesh, if its exposure asks for one. */
  readonly ingress?: ServiceIngress;
  /** alarms receive its alarms (CPU, memory, response time, errors). */
  readonly alarms: ServiceAlarms;
}

/** containerName is the name of every service's application container. */
export const containerName = "app";

/**
 * MeshedService is one service of the mesh on ECS Fargate: its task
 * definition (the one image, run as `serve <service>`, read-only, non-root,
 * health-checked), one ECS service per running slot (App Mesh) or one with
 * ECS canary deployments (Service Connect), autoscaling on CPU and memory
 * within the topology's task range, its security group, task role and
 * alarms. `connectTo` lets it call another service.
 */
export class MeshedService extends Construct {
  /** spec is the service's topology entry. */
  readonly spec: ServiceSpec;
  /** securityGroup guards its port; callers are let in by `connectTo`. */
  readonly securityGroup: ec2.SecurityGroup;
  /** taskRole is what its code may do in AWS. */
  readonly taskRole: iam.Role;
  /** services are its ECS services, one per running slot. */
  readonly services: ReadonlyMap<Slot, ecs.FargateService>;
  private readonly bindings: SlotBinding[] = [];
  private readonly fabric: MeshFabric;
  private readonly vpc: ec2.IVpc;

  constructor(scope: Construct, id: string, props: MeshedServiceProps) {
    super(scope, id);
    const { spec, fabric } = props;
    this.spec = spec;
    this.fabric = fabric;
    this.vpc = props.cluster.vpc;
    this.securityGroup = new ec2.SecurityGroup(this, "Sg", {
      vpc: props.cluster.vpc,
      description: `${spec.name}: its port is open to its callers only`,
      allowAllOutbound: true,
    });
    this.taskRole = new iam.Role(this, "TaskRole", {
      assumedBy: new iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
      description: `${spec.name} task role: only what its code calls`,
    });
    for (const statement of props.taskPolicies ?? []) this.taskRole.addToPolicy(statement);
    const executionRole = new iam.Role(this, "ExecutionRole", {
      assumedBy: new iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
      description: `${spec.name} execution role: pull the image, read its secrets, write its logs`,
    });
    const logGroup = new logs.LogGroup(this, "Logs", { retention: logs.RetentionDays.ONE_MONTH });

    const called = props.callers.length > 0;
    const running = props.fabric.provider === "appmesh" ? slotWeights(props.release) : [{ slot: props.release.live, weight: 100 }];
    const services = new Map<Slot, ecs.FargateService>();
    const bound: { slot: Slot; weight: number; binding: SlotBinding; service: ecs.FargateService }[] = [];
    for (const { slot, weight } of running) {
      const scope = new Construct(this, slot === "blue" ? "Blue" : "Green");
      const tag = props.release.tags[slot]!;
      const taskDefinition = this.taskDefinition(scope, props, tag, executionRole, logGroup);
      const binding = fabric.bindSlot(scope, spec, slot, taskDefinition, called);
      const service = this.ecsService(scope, props, taskDefinition, binding);
      binding.afterService(service);
      services.set(slot, service);
      this.bindings.push(binding);
      bound.push({ slot, weight, binding, service });
    }
    this.services = services;
    fabric.routeService(this, spec, bound, called);
    if (props.ingress) this.attachIngress(props.ingress, bound, props.fabric);

    for (const { slot, service } of bound) {
      props.alarms.watchService(this, spec, slot, service, called);
    }
    if (props.ingress) props.alarms.watchLoadBalancer(this, spec, props.ingress.loadBalancer, called);
  }

  /** connectTo lets this service call `other`: its port opens to this service, and the mesh routes the calls. */
  connectTo(other: MeshedService): void {
    other.securityGroup.addIngressRule(this.securityGroup, ec2.Port.tcp(other.spec.port), `${this.spec.name} calls ${other.spec.name}`);
    this.fabric.connect(this.bindings, other.spec);
  }

  /** allowTo opens a data store's port to this service. */
  allowTo(store: ec2.SecurityGroup, port: number, what: string): void {
    store.addIngressRule(this.securityGroup, ec2.Port.tcp(port), `${this.spec.name} uses ${what}`);
  }

  private taskDefinition(
    scope: Construct,
    props: MeshedServiceProps,
    tag: string,
    executionRole: iam.IRole,
    logGroup: logs.ILogGroup,
  ): ecs.FargateTaskDefinition {
    const { spec } = props;
    const taskDefinition = new ecs.FargateTaskDefinition(scope, "Task", {
      cpu: spec.scaling.cpu,
      memoryLimitMiB: spec.scaling.memoryMiB,
      taskRole: this.taskRole,
      executionRole,
      runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.ARM64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
      proxyConfiguration:
        props.fabric.provider === "appmesh"
          ? ecs.ProxyConfigurations.appMeshProxyConfiguration({
              containerName: "envoy",
              properties: {
                appPorts: [spec.port],
                proxyEgressPort: 15001,
                proxyIngressPort: 15000,
                ignoredUID: 1337,
                egressIgnoredIPs: ["169.254.170.2", "169.254.169.254"],
              },
            })
          : undefined,
    });
    // The root filesystem is read-only; tsx's compile cache and Node's temp files go to a scratch volume.
    taskDefinition.addVolume({ name: "tmp" });
    const health = healthCheckOf(spec);
    const container = taskDefinition.addContainer(containerName, {
      image: ecs.ContainerImage.fromEcrRepository(props.repository, tag),
      command: ["serve", spec.name],
      essential: true,
      readonlyRootFilesystem: true,
      user: "1000:1000",
      portMappings: [{ name: spec.name, containerPort: spec.port, appProtocol: props.fabric.appProtocolOf(spec) }],
      environment: { ...props.environment },
      secrets: { ...props.secrets },
      healthCheck: {
        command: ["CMD", "node", "container/healthcheck.ts"],
        interval: Duration.seconds(health.intervalSeconds),
        timeout: Duration.seconds(health.timeoutSeconds),
        retries: health.unhealthyThreshold,
        startPeriod: Duration.seconds(health.startPeriodSeconds),
      },
      stopTimeout: Duration.seconds(30),
      logging: ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: spec.name }),
    });
    container.addMountPoints({ containerPath: "/tmp", sourceVolume: "tmp", readOnly: false });
    return taskDefinition;
  }

  private ecsService(scope: Construct, props: MeshedServiceProps, taskDefinition: ecs.FargateTaskDefinition, binding: SlotBinding): ecs.FargateService {
    const { spec } = props;
    const called = props.callers.length > 0;
    const canary = props.fabric.provider === "serviceconnect" && (called || props.ingress !== undefined);
    const rollbackAlarms = props.alarms.rollbackAlarmNames(spec, called, props.ingress !== undefined);
    const service = new ecs.FargateService(scope, "Service", {
      cluster: props.cluster,
      taskDefinition,
      securityGroups: [this.securityGroup],
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      assignPublicIp: false,
      capacityProviderStrategies: spec.scaling.spot
        ? [
            { capacityProvider: "FARGATE", base: 1, weight: 1 },
            { capacityProvider: "FARGATE_SPOT", weight: 4 },
          ]
        : [{ capacityProvider: "FARGATE", weight: 1 }],
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { enable: true, rollback: true },
      healthCheckGracePeriod: props.ingress ? Duration.seconds(healthCheckOf(spec).startPeriodSeconds) : undefined,
      enableExecuteCommand: false,
      propagateTags: ecs.PropagatedTagSource.SERVICE,
      ...(canary
        ? {
            deploymentStrategy: ecs.DeploymentStrategy.CANARY,
            canaryConfiguration: { stepPercent: releasePlan.steps[0], stepBakeTime: Duration.minutes(releasePlan.bakeMinutes) },
            bakeTime: Duration.minutes(releasePlan.bakeMinutes),
            deploymentAlarms: rollbackAlarms.length ? { alarmNames: rollbackAlarms, behavior: ecs.AlarmBehavior.ROLLBACK_ON_ALARM } : undefined,
          }
        : {}),
      ...binding.serviceProps,
    });
    const scaling = service.autoScaleTaskCount({ minCapacity: spec.scaling.minTasks, maxCapacity: spec.scaling.maxTasks });
    scaling.scaleOnCpuUtilization("Cpu", {
      targetUtilizationPercent: scalingTargets.cpuPercent,
      scaleOutCooldown: Duration.seconds(60),
      scaleInCooldown: Duration.seconds(300),
    });
    scaling.scaleOnMemoryUtilization("Memory", {
      targetUtilizationPercent: scalingTargets.memoryPercent,
      scaleOutCooldown: Duration.seconds(60),
      scaleInCooldown: Duration.seconds(300),
    });
    return service;
  }

  private attachIngress(
    ingress: ServiceIngress,
    bound: readonly { slot: Slot; weight: number; service: ecs.FargateService }[],
    fabric: MeshFabric,
  ): void {
    const { spec } = this;
    const health = healthCheckOf(spec);
    const grpc = spec.protocol === "grpc";
    const targetGroup = (id: string): elbv2.ApplicationTargetGroup =>
      new elbv2.ApplicationTargetGroup(this, id, {
        vpc: this.vpc,
        targetType: elbv2.TargetType.IP,
        port: spec.port,
        // With App Mesh every node's listener is TLS (Envoy terminates it).
        protocol: fabric.provider === "appmesh" ? elbv2.ApplicationProtocol.HTTPS : elbv2.ApplicationProtocol.HTTP,
        protocolVersion: grpc ? elbv2.ApplicationProtocolVersion.GRPC : elbv2.ApplicationProtocolVersion.HTTP1,
        deregistrationDelay: Duration.seconds(30),
        healthCheck: {
          path: grpc ? "/grpc.health.v1.Health/Check" : health.path,
          healthyGrpcCodes: grpc ? "0" : undefined,
          healthyHttpCodes: grpc ? undefined : "200",
          interval: Duration.seconds(health.intervalSeconds),
          timeout: Duration.seconds(health.timeoutSeconds),
          healthyThresholdCount: health.healthyThreshold,
          unhealthyThresholdCount: health.unhealthyThreshold,
        },
      });
    const rule = (targets: readonly { group: elbv2.IApplicationTargetGroup; weight: number }[]): elbv2.ApplicationListenerRule =>
      new elbv2.ApplicationListenerRule(this, "Rule", {
        listener: ingress.listener,
        priority: ingress.priority,
        conditions: [...ingress.conditions],
        action: elbv2.ListenerAction.weightedForward(targets.map((t) => ({ targetGroup: t.group, weight: t.weight }))),
      });

    if (fabric.provider === "appmesh") {
      // A target group per slot; the rule's weights follow the release.
      const groups = bound.map(({ slot, weight, service }) => {
        const group = targetGroup(slot === "blue" ? "BlueTargets" : "GreenTargets");
        service.loadBalancerTarget({ containerName, containerPort: spec.port }).attachToApplicationTargetGroup(group);
        return { group, weight };
      });
      rule(groups);
      return;
    }
    // Service Connect: ECS's canary moves the weights between the two groups and back on an alarm.
    const [{ slot, service }] = bound;
    const live = targetGroup(slot === "blue" ? "BlueTargets" : "GreenTargets");
    const alternate = targetGroup(otherSlot(slot) === "blue" ? "BlueTargets" : "GreenTargets");
    const production = rule([
      { group: live, weight: 100 },
      { group: alternate, weight: 0 },
    ]);
    service
      .loadBalancerTarget({
        containerName,
        containerPort: spec.port,
        alternateTarget: new ecs.AlternateTarget("Alternate", {
          alternateTargetGroup: alternate,
          productionListener: ecs.ListenerRuleConfiguration.applicationListenerRule(production),
        }),
      })
      .attachToApplicationTargetGroup(live);
  }
}

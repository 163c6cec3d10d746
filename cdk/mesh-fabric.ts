import { Construct } from "constructs";
import { Duration, Validations } from "aws-cdk-lib";
import * as acm from "aws-cdk-lib/aws-certificatemanager";
import * as acmpca from "aws-cdk-lib/aws-acmpca";
import * as appmesh from "aws-cdk-lib/aws-appmesh";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as logs from "aws-cdk-lib/aws-logs";
import * as servicediscovery from "aws-cdk-lib/aws-servicediscovery";
import { healthCheckOf, meshName, type CallPolicy, type ServiceSpec } from "../mesh/topology.js";
import type { MeshProvider, Slot } from "./config.js";

/** SlotBinding is what a fabric adds to one slot's ECS service. */
export interface SlotBinding {
  /** serviceProps are merged into the slot's FargateService props. */
  readonly serviceProps: Partial<ecs.FargateServiceProps>;
  /** afterService finishes the wiring once the ECS service exists. */
  afterService(service: ecs.FargateService): void;
  /** virtualNode is the slot's App Mesh node (App Mesh only). */
  readonly virtualNode?: appmesh.VirtualNode;
}

/** MeshFabric is how services find, call and shift traffic between each other: App Mesh or Service Connect. */
export interface MeshFabric {
  /** provider names the fabric. */
  readonly provider: MeshProvider;
  /** namespaceName is the service-discovery namespace (`raptorflow.local`). */
  readonly namespaceName: string;
  /** address is a service's `<SERVICE>_ADDR` for its callers (host:port). */
  address(spec: ServiceSpec): string;
  /** protocolOf is the ECS port mapping's application protocol. */
  appProtocolOf(spec: ServiceSpec): ecs.AppProtocol;
  /** bindSlot prepares one slot's task definition and returns what its ECS service needs; `called` says whether other services call it. */
  bindSlot(scope: Construct, spec: ServiceSpec, slot: Slot, taskDefinition: ecs.FargateTaskDefinition, called: boolean): SlotBinding;
  /** routeService sends a called service's callers to its slots with these weights (App Mesh; ECS shifts by itself with Service Connect). */
  routeService(scope: Construct, spec: ServiceSpec, slots: readonly { slot: Slot; weight: number; binding: SlotBinding }[], called: boolean): void;
  /** connect lets `from`'s slots call `to` through the mesh. */
  connect(from: readonly SlotBinding[], to: ServiceSpec): void;
}

/** grpcRetryEvents maps the topology's retryable gRPC codes to App Mesh's retry events. */
const grpcRetryEvents: Readonly<Record<string, appmesh.GrpcRetryEvent>> = {
  CANCELLED: appmesh.GrpcRetryEvent.CANCELLED,
  DEADLINE_EXCEEDED: appmesh.GrpcRetryEvent.DEADLINE_EXCEEDED,
  INTERNAL: appmesh.GrpcRetryEvent.INTERNAL_ERROR,
  RESOURCE_EXHAUSTED: appmesh.GrpcRetryEvent.RESOURCE_EXHAUSTED,
  UNAVAILABLE: appmesh.GrpcRetryEvent.UNAVAILABLE,
};

/** meshTimeout is a call policy as App Mesh's listener and route timeouts. */
function meshTimeout(policy: CallPolicy): { perRequest: Duration; idle: Duration } {
  return { perRequest: Duration.millis(policy.timeoutMs), idle: Duration.millis(policy.timeoutMs * 2) };
}

/** meshRetry is a call policy as an App Mesh retry policy: the same attempts, on the same codes, within the deadline. */
export function meshRetry(policy: CallPolicy): appmesh.GrpcRetryPolicy {
  const events = policy.retry.retryableCodes.map((code) => {
    const event = grpcRetryEvents[code];
    if (!event) throw new Error(`App Mesh cannot retry on gRPC code ${code}`);
    return event;
  });
  return {
    grpcRetryEvents: events,
    tcpRetryEvents: [appmesh.TcpRetryEvent.CONNECTION_ERROR],
    retryAttempts: policy.retry.maxAttempts - 1,
    retryTimeout: Duration.millis(Math.ceil(policy.timeoutMs / policy.retry.maxAttempts)),
  };
}

/** AppMeshFabricProps configure App Mesh. */
export interface AppMeshFabricProps {
  /** vpc holds the Cloud Map namespace. */
  readonly vpc: ec2.IVpc;
  /** certificateAuthorityArn is the ACM Private CA that issues each node's certificate. */
  readonly certificateAuthorityArn: string;
  /** envoyImage is the Envoy sidecar image. */
  readonly envoyImage: string;
}

/**
 * AppMeshFabric is AWS App Mesh: one mesh that lets no traffic out but to its
 * virtual services; per slot a Cloud Map service, a virtual node with a gRPC
 * (or HTTP/2) listener, a health check, the topology's timeouts and a TLS
 * certificate from the private CA, and an Envoy sidecar; per called service
 * a virtual router whose routes carry the topology's retry policy and the
 * blue/green weights, behind a virtual service. AWS ended support for App
 * Mesh on 30 September 2026: see docs/deploy.md for the move to Service
 * Connect.
 */
export class AppMeshFabric extends Construct implements MeshFabric {
  readonly provider = "appmesh" as const;
  readonly namespaceName = `${meshName}.local`;
  /** mesh is the App Mesh mesh. */
  readonly mesh: appmesh.Mesh;
  /** namespace is the Cloud Map private DNS namespace. */
  readonly namespace: servicediscovery.PrivateDnsNamespace;
  private readonly ca: acmpca.ICertificateAuthority;
  private readonly envoyImage: string;
  private readonly virtualServices = new Map<string, appmesh.VirtualService>();

  constructor(scope: Construct, id: string, props: AppMeshFabricProps) {
    super(scope, id);
    this.mesh = new appmesh.Mesh(this, "Mesh", { meshName, egressFilter: appmesh.MeshFilterType.DROP_ALL });
    this.namespace = new servicediscovery.PrivateDnsNamespace(this, "Namespace", { name: this.namespaceName, vpc: props.vpc });
    this.ca = acmpca.CertificateAuthority.fromCertificateAuthorityArn(this, "Ca", props.certificateAuthorityArn);
    this.envoyImage = props.envoyImage;
    // Known and planned for: the warning is the reason Service Connect is the default (docs/deploy.md).
    Validations.of(scope).acknowledge({
      id: "CloudFormation-Validate::W3696",
      reason: "App Mesh is shut down on 2026-09-30; Service Connect is the default and docs/deploy.md migrates to it",
    });
  }

  address(spec: ServiceSpec): string {
    return `${spec.name}.${this.namespaceName}:${spec.port}`;
  }

  appProtocolOf(spec: ServiceSpec): ecs.AppProtocol {
    return spec.protocol === "grpc" ? ecs.AppProtocol.grpc : ecs.AppProtocol.http;
  }

  bindSlot(scope: Construct, spec: ServiceSpec, slot: Slot, taskDefinition: ecs.FargateTaskDefinition): SlotBinding {
    const nodeName = `${spec.name}-${slot}`;
    const certificate = new acm.PrivateCertificate(scope, "Certificate", {
      domainName: `${spec.name}.${this.namespaceName}`,
      subjectAlternativeNames: [`${nodeName}.${this.namespaceName}`],
      certificateAuthority: this.ca,
    });
    const health = healthCheckOf(spec);
    const meshHealth = {
      interval: Duration.seconds(health.intervalSeconds),
      timeout: Duration.seconds(health.timeoutSeconds),
      healthyThreshold: health.healthyThreshold,
      unhealthyThreshold: health.unhealthyThreshold,
    };
    const tls: appmesh.ListenerTlsOptions = { mode: appmesh.TlsMode.STRICT, certificate: appmesh.TlsCertificate.acm(certificate) };
    const listener =
      spec.protocol === "grpc"
        ? appmesh.VirtualNodeListener.grpc({ port: spec.port, healthCheck: appmesh.HealthCheck.grpc(meshHealth), timeout: meshTimeout(spec.callPolicy), tls })
        : appmesh.VirtualNodeListener.http({
            port: spec.port,
            healthCheck: appmesh.HealthCheck.http({ ...meshHealth, path: health.path }),
            timeout: meshTimeout(spec.callPolicy),
            tls,
          });
    const cloudMapService = new servicediscovery.Service(scope, "Discovery", {
      namespace: this.namespace,
      name: nodeName,
      dnsRecordType: servicediscovery.DnsRecordType.A,
      dnsTtl: Duration.seconds(10),
      customHealthCheck: { failureThreshold: 1 },
    });
    const virtualNode = new appmesh.VirtualNode(scope, "VirtualNode", {
      mesh: this.mesh,
      virtualNodeName: nodeName,
      serviceDiscovery: appmesh.ServiceDiscovery.cloudMap(cloudMapService),
      listeners: [listener],
      backendDefaults: { tlsClientPolicy: { validation: { trust: appmesh.TlsValidationTrust.acm([this.ca]) } } },
      accessLog: appmesh.AccessLog.fromFilePath("/dev/stdout"),
    });

    // Envoy: receives the node's configuration, terminates and originates TLS.
    const envoy = taskDefinition.addContainer("envoy", {
      image: ecs.ContainerImage.fromRegistry(this.envoyImage),
      essential: true,
      user: "1337",
      memoryReservationMiB: 128,
      environment: { APPMESH_RESOURCE_ARN: virtualNode.virtualNodeArn, ENVOY_LOG_LEVEL: "info" },
      healthCheck: {
        command: ["CMD-SHELL", "curl -s http://localhost:9901/server_info | grep state | grep -q LIVE"],
        interval: Duration.seconds(5),
        timeout: Duration.seconds(2),
        retries: 3,
        startPeriod: Duration.seconds(10),
      },
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: "envoy", logRetention: logs.RetentionDays.ONE_MONTH }),
    });
    taskDefinition.defaultContainer?.addContainerDependencies({ container: envoy, condition: ecs.ContainerDependencyCondition.HEALTHY });
    virtualNode.grantStreamAggregatedResources(taskDefinition.taskRole);
    taskDefinition.addToTaskRolePolicy(
      new iam.PolicyStatement({ actions: ["acm:ExportCertificate"], resources: [certificate.certificateArn] }),
    );
    taskDefinition.addToTaskRolePolicy(
      new iam.PolicyStatement({ actions: ["acm-pca:GetCertificateAuthorityCertificate"], resources: [this.ca.certificateAuthorityArn] }),
    );

    return {
      virtualNode,
      serviceProps: {},
      afterService: (service) => {
        service.associateCloudMapService({ service: cloudMapService, containerPort: spec.port });
      },
    };
  }

  routeService(scope: Construct, spec: ServiceSpec, slots: readonly { slot: Slot; weight: number; binding: SlotBinding }[], called: boolean): void {
    if (!called) return;
    const weightedTargets = slots.map((s) => ({ virtualNode: s.binding.virtualNode!, weight: s.weight }));
    const router = new appmesh.VirtualRouter(scope, "Router", {
      mesh: this.mesh,
      virtualRouterName: spec.name,
      listeners: [spec.protocol === "grpc" ? appmesh.VirtualRouterListener.grpc(spec.port) : appmesh.VirtualRouterListener.http2(spec.port)],
    });
    const timeout = meshTimeout(spec.callPolicy);
    const retry = meshRetry(spec.callPolicy);
    if (spec.protocol === "grpc") {
      // One route per served gRPC service: callers reach nothing else.
      spec.grpcServices.forEach((grpcService, i) => {
        router.addRoute(`Route${i}`, {
          routeName: grpcService.replaceAll(".", "-").toLowerCase(),
          routeSpec: appmesh.RouteSpec.grpc({ weightedTargets, match: { serviceName: grpcService }, timeout, retryPolicy: retry }),
        });
      });
    } else {
      router.addRoute("Route", {
        routeName: "all",
        routeSpec: appmesh.RouteSpec.http2({
          weightedTargets,
          match: { path: appmesh.HttpRoutePathMatch.startsWith("/") },
          timeout,
          retryPolicy: {
            httpRetryEvents: [appmesh.HttpRetryEvent.GATEWAY_ERROR],
            tcpRetryEvents: retry.tcpRetryEvents,
            retryAttempts: retry.retryAttempts,
            retryTimeout: retry.retryTimeout,
          },
        }),
      });
    }
    const virtualService = new appmesh.VirtualService(scope, "VirtualService", {
      virtualServiceName: `${spec.name}.${this.namespaceName}`,
      virtualServiceProvider: appmesh.VirtualServiceProvider.virtualRouter(router),
    });
    // The name must resolve for the caller to open a connection; Envoy then
    // intercepts it and routes by the mesh, so the address itself is never used.
    const alias = new servicediscovery.Service(scope, "ServiceName", {
      namespace: this.namespace,
      name: spec.name,
      dnsRecordType: servicediscovery.DnsRecordType.A,
    });
    alias.registerIpInstance("Placeholder", { ipv4: "10.10.10.10", port: spec.port });
    this.virtualServices.set(spec.name, virtualService);
  }

  connect(from: readonly SlotBinding[], to: ServiceSpec): void {
    const virtualService = this.virtualServices.get(to.name);
    if (!virtualService) throw new Error(`${to.name} must be created before its callers`);
    for (const b of from) {
      b.virtualNode!.addBackend(appmesh.Backend.virtualService(virtualService));
      // The backend is named, not referenced: make sure it exists first.
      b.virtualNode!.node.addDependency(virtualService);
    }
  }
}

/** ServiceConnectFabricProps configure Service Connect. */
export interface ServiceConnectFabricProps {
  /** certificateAuthorityArn, when set, turns on TLS between services (ACM Private CA). */
  readonly certificateAuthorityArn?: string;
  /** key encrypts the TLS private keys. */
  readonly key: kms.IKey;
}

/**
 * ServiceConnectFabric is ECS Service Connect: a Cloud Map namespace; each
 * called service publishes its port under its own name with the topology's
 * per-request timeout; every service is a client of the namespace. Retries
 * stay in the callers (grpc-js, from the same call policy). With a private
 * CA, traffic between services is TLS.
 */
export class ServiceConnectFabric extends Construct implements MeshFabric {
  readonly provider = "serviceconnect" as const;
  readonly namespaceName = `${meshName}.local`;
  /** namespace is the Cloud Map HTTP namespace. */
  readonly namespace: servicediscovery.HttpNamespace;
  private readonly tls?: ecs.ServiceConnectTlsConfiguration;

  constructor(scope: Construct, id: string, props: ServiceConnectFabricProps) {
    super(scope, id);
    this.namespace = new servicediscovery.HttpNamespace(this, "Namespace", { name: this.namespaceName });
    if (props.certificateAuthorityArn) {
      const role = new iam.Role(this, "TlsRole", {
        assumedBy: new iam.ServicePrincipal("ecs.amazonaws.com"),
        managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName("service-role/AmazonECSInfrastructureRolePolicyForServiceConnectTransportLayerSecurity")],
      });
      props.key.grantEncryptDecrypt(role);
      this.tls = { awsPcaAuthorityArn: props.certificateAuthorityArn, kmsKey: props.key, role };
    }
  }

  address(spec: ServiceSpec): string {
    return `${spec.name}:${spec.port}`;
  }

  appProtocolOf(spec: ServiceSpec): ecs.AppProtocol {
    return spec.protocol === "grpc" ? ecs.AppProtocol.grpc : ecs.AppProtocol.http;
  }

  bindSlot(_scope: Construct, spec: ServiceSpec, _slot: Slot, _taskDefinition: ecs.FargateTaskDefinition, called: boolean): SlotBinding {
    return {
      serviceProps: {
        serviceConnectConfiguration: {
          namespace: this.namespace.namespaceArn,
          services: called
            ? [
                {
                  portMappingName: spec.name,
                  discoveryName: spec.name,
                  dnsName: spec.name,
                  port: spec.port,
                  perRequestTimeout: Duration.millis(spec.callPolicy.timeoutMs),
                  idleTimeout: Duration.millis(spec.callPolicy.timeoutMs * 2),
                  tls: this.tls,
                },
              ]
            : undefined,
          logDriver: ecs.LogDrivers.awsLogs({ streamPrefix: "service-connect", logRetention: logs.RetentionDays.ONE_MONTH }),
        },
      },
      afterService: () => undefined,
    };
  }

  routeService(): void {
    // ECS shifts the traffic itself (canary deployments): nothing to route.
  }

  connect(): void {
    // Every service is a client of the namespace; the security groups say who may call whom.
  }
}

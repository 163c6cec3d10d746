import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { callersOf, exposureOf, healthCheckOf, serviceNames, topology, type ServiceSpec } from "../mesh/topology.js";
import { defaultConfig, validateConfig, type DeploymentConfig, type ReleaseState } from "./config.js";
import { RaptorflowStack, constructId } from "./raptorflow-stack.js";
import { scratchOutdirs } from "./scratch-outdir.js";

const outdirs = scratchOutdirs();
afterAll(() => outdirs.removeAll());

type Resource = { Type: string; Properties: Record<string, any> };
const specs: ServiceSpec[] = serviceNames.map((n) => topology[n]);
const ca = "arn:aws:acm-pca:us-east-1:111111111111:certificate-authority/00000000-0000-0000-0000-000000000000";

function synth(release: ReleaseState, overrides: Partial<DeploymentConfig> = {}): Template {
  const app = new App({ outdir: outdirs.next() });
  const config = validateConfig({ ...defaultConfig, meshProvider: "appmesh", certificateAuthorityArn: ca, release, ...overrides });
  return Template.fromStack(new RaptorflowStack(app, "Test", { config }));
}
function values<T = Resource>(t: Template, type: string): T[] {
  return Object.values(t.findResources(type)) as T[];
}
function refsIn(value: unknown): string[] {
  return [...JSON.stringify(value).matchAll(/"(?:Ref|Fn::GetAtt)":\s*(?:"([^"]+)"|\["([^"]+)")/g)].map((m) => m[1] ?? m[2]);
}

// GIVEN App Mesh in the middle of a release: blue runs v1 and green v2 with 10% of the traffic.
let shifting: Template;
// GIVEN App Mesh at the next step of the same release: 50%.
let halfway: Template;
// GIVEN App Mesh with no release in progress.
let steady: Template;

beforeAll(() => {
  shifting = synth({ live: "blue", tags: { blue: "v1", green: "v2" }, candidateWeight: 10 });
  halfway = synth({ live: "blue", tags: { blue: "v1", green: "v2" }, candidateWeight: 50 });
  steady = synth({ live: "green", tags: { green: "v2" }, candidateWeight: 0 });
});

describe("the mesh", () => {
  it("lets no traffic leave the mesh but to its virtual services, and discovers nodes through Cloud Map", () => {
    shifting.hasResourceProperties("AWS::AppMesh::Mesh", { Spec: { EgressFilter: { Type: "DROP_ALL" } } });
    shifting.resourceCountIs("AWS::ServiceDiscovery::PrivateDnsNamespace", 1);
  });

  it("runs a virtual node per service and slot, listening on the topology's port with its health check, timeout and TLS", () => {
    const nodes = values(shifting, "AWS::AppMesh::VirtualNode");
    expect(nodes).toHaveLength(specs.length * 2);
    for (const spec of specs) {
      for (const slot of ["blue", "green"]) {
        const node = nodes.find((n) => n.Properties.VirtualNodeName === `${spec.name}-${slot}`);
        expect(node, `${spec.name}-${slot}`).toBeDefined();
        const [listener] = node!.Properties.Spec.Listeners;
        const health = healthCheckOf(spec);
        expect(listener.PortMapping).toEqual({ Port: spec.port, Protocol: spec.protocol === "grpc" ? "grpc" : "http" });
        expect(listener.HealthCheck).toMatchObject({
          Protocol: spec.protocol === "grpc" ? "grpc" : "http",
          IntervalMillis: health.intervalSeconds * 1000,
          TimeoutMillis: health.timeoutSeconds * 1000,
          HealthyThreshold: health.healthyThreshold,
          UnhealthyThreshold: health.unhealthyThreshold,
          ...(health.path ? { Path: health.path } : {}),
        });
        const timeout = listener.Timeout.GRPC ?? listener.Timeout.HTTP;
        expect(timeout.PerRequest).toEqual({ Unit: "ms", Value: spec.callPolicy.timeoutMs });
        expect(listener.TLS).toMatchObject({ Mode: "STRICT", Certificate: { ACM: { CertificateArn: expect.anything() } } });
        expect(node!.Properties.Spec.BackendDefaults.ClientPolicy.TLS.Validation.Trust.ACM.CertificateAuthorityArns).toEqual([ca]);
        expect(node!.Properties.Spec.ServiceDiscovery.AWSCloudMap).toBeDefined();
      }
    }
  });

  it("routes each called service's gRPC services by weight, with the topology's retries and deadline", () => {
    const routes = values(shifting, "AWS::AppMesh::Route");
    for (const spec of specs.filter((s) => callersOf(s.name).length > 0)) {
      shifting.hasResourceProperties("AWS::AppMesh::VirtualService", { VirtualServiceName: `${spec.name}.raptorflow.local` });
      const own = routes.filter((r) => JSON.stringify(r.Properties.VirtualRouterName).includes(constructId(spec.name)));
      expect(own.length, spec.name).toBe(spec.protocol === "grpc" ? spec.grpcServices.length : 1);
      for (const route of own) {
        const grpc = route.Properties.Spec.GrpcRoute;
        expect(grpc.Action.WeightedTargets.map((t: { Weight: number }) => t.Weight)).toEqual([90, 10]);
        expect(grpc.RetryPolicy).toMatchObject({
          MaxRetries: spec.callPolicy.retry.maxAttempts - 1,
          GrpcRetryEvents: spec.callPolicy.retry.retryableCodes.map((c) => c.toLowerCase()),
          TcpRetryEvents: ["connection-error"],
        });
        expect(grpc.Timeout.PerRequest).toEqual({ Unit: "ms", Value: spec.callPolicy.timeoutMs });
        expect(spec.grpcServices).toContain(grpc.Match.ServiceName);
      }
    }
  });

  it("moves the weights with the release context: 90/10, then 50/50", () => {
    for (const [t, weights] of [
      [shifting, [90, 10]],
      [halfway, [50, 50]],
    ] as const) {
      for (const route of values(t, "AWS::AppMesh::Route")) {
        expect(route.Properties.Spec.GrpcRoute.Action.WeightedTargets.map((w: { Weight: number }) => w.Weight)).toEqual(weights);
      }
      const publicRule = values(t, "AWS::ElasticLoadBalancingV2::ListenerRule").find((r) =>
        specs.some((s) => exposureOf(s) === "public" && JSON.stringify(r.Properties.Actions).includes(constructId(s.name))),
      );
      expect(publicRule!.Properties.Actions[0].ForwardConfig.TargetGroups.map((g: { Weight: number }) => g.Weight)).toEqual(weights);
    }
  });

  it("runs only the live slot when no release is in progress", () => {
    expect(values(steady, "AWS::AppMesh::VirtualNode").map((n) => n.Properties.VirtualNodeName).sort()).toEqual(specs.map((s) => `${s.name}-green`).sort());
    for (const route of values(steady, "AWS::AppMesh::Route")) {
      expect(route.Properties.Spec.GrpcRoute.Action.WeightedTargets.map((w: { Weight: number }) => w.Weight)).toEqual([100]);
    }
    steady.resourceCountIs("AWS::ECS::Service", specs.length);
  });

  it("lets each node call exactly its upstreams", () => {
    const nodes = values(shifting, "AWS::AppMesh::VirtualNode");
    for (const spec of specs) {
      const node = nodes.find((n) => n.Properties.VirtualNodeName === `${spec.name}-blue`)!;
      const backends = (node.Properties.Spec.Backends ?? []).map((b: { VirtualService: { VirtualServiceName: string } }) => b.VirtualService.VirtualServiceName);
      expect(backends.sort(), spec.name).toEqual(spec.upstreams.map((u) => `${u}.raptorflow.local`).sort());
    }
  });
});

describe("tasks", () => {
  it("run an Envoy sidecar that the application waits for, with App Mesh's proxy configuration on the service's port", () => {
    for (const task of values(shifting, "AWS::ECS::TaskDefinition")) {
      const containers = task.Properties.ContainerDefinitions as { Name: string; User?: string; DependsOn?: unknown; PortMappings?: { ContainerPort: number }[] }[];
      const envoy = containers.find((c) => c.Name === "envoy")!;
      const app = containers.find((c) => c.Name === "app")!;
      expect(envoy.User).toBe("1337");
      expect(app.DependsOn).toEqual([{ ContainerName: "envoy", Condition: "HEALTHY" }]);
      const props = Object.fromEntries(task.Properties.ProxyConfiguration.ProxyConfigurationProperties.map((p: { Name: string; Value: string }) => [p.Name, p.Value]));
      expect(props.AppPorts).toBe(String(app.PortMappings![0].ContainerPort));
      expect(props.IgnoredUID).toBe("1337");
    }
  });

  it("let each task role stream only its own node's configuration and export only its own certificate", () => {
    const policies = values(shifting, "AWS::IAM::Policy");
    for (const spec of specs) {
      const role = Object.keys(shifting.findResources("AWS::IAM::Role")).find((id) => id.startsWith(`${constructId(spec.name)}TaskRole`))!;
      const statements = policies.filter((p) => refsIn(p.Properties.Roles).includes(role)).flatMap((p) => p.Properties.PolicyDocument.Statement);
      const stream = statements.filter((s) => [s.Action].flat().includes("appmesh:StreamAggregatedResources"));
      expect(stream.length, spec.name).toBe(2);
      for (const s of stream) for (const id of refsIn(s.Resource)) expect(id.startsWith(constructId(spec.name))).toBe(true);
      const exports = statements.filter((s) => [s.Action].flat().includes("acm:ExportCertificate"));
      for (const s of exports) for (const id of refsIn(s.Resource)) expect(id.startsWith(constructId(spec.name))).toBe(true);
    }
  });

  it("serve the public service over TLS to the targets, since Envoy terminates TLS on every node", () => {
    for (const tg of values(shifting, "AWS::ElasticLoadBalancingV2::TargetGroup")) expect(tg.Properties.Protocol).toBe("HTTPS");
  });
});

describe("configuration", () => {
  it("refuses App Mesh without a private CA, a weight without a candidate, and a bad provider", () => {
    expect(() => validateConfig({ ...defaultConfig, meshProvider: "appmesh" })).toThrow(/certificateAuthorityArn/);
    expect(() => validateConfig({ ...defaultConfig, release: { live: "blue", tags: { blue: "v1" }, candidateWeight: 10 } })).toThrow(/tags.green/);
    expect(() => validateConfig({ ...defaultConfig, meshProvider: "istio" as never })).toThrow(/meshProvider/);
    expect(() => validateConfig({ ...defaultConfig, maxAzs: 1 })).toThrow(/maxAzs/);
  });
});

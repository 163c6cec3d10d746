import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { Testing } from "cdk8s";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serviceNames, topology, type ServiceName, type ServiceSpec } from "../mesh/topology.js";
import { MeshChart } from "../k8s/mesh-chart.js";
import { millicores } from "../k8s/meshed-workload.js";
import { defaultConfig } from "./config.js";
import { RaptorflowStack, constructId } from "./raptorflow-stack.js";
import { scratchOutdirs } from "./scratch-outdir.js";

const outdirs = scratchOutdirs();
afterAll(() => outdirs.removeAll());

const root = fileURLToPath(new URL("..", import.meta.url));

/** sources are the deployment code's files (tests excluded): what must not hard-code the topology. */
function sources(dir: string): { file: string; text: string }[] {
  return readdirSync(join(root, dir), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
    .map((f) => ({ file: `${dir}/${f}`, text: readFileSync(join(root, dir, f), "utf8") }));
}

/** withoutComments drops comments, which may name services and ports to explain. */
function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:])\/\/.*$/gm, "$1");
}

/** numberForms are the ways a number can be written in TypeScript: 60000, 60_000. */
function numberPattern(n: number): RegExp {
  const plain = String(n);
  const grouped = plain.replace(/\B(?=(\d{3})+(?!\d))/g, "_");
  return new RegExp(`(?<![\\w.])(${plain}|${grouped})(?![\\w.])`);
}

describe("nothing in cdk/ or k8s/ hard-codes what the topology defines", () => {
  const specs = serviceNames.map((n) => topology[n]);
  const deployment = [...sources("cdk"), ...sources("k8s")];
  const runners = ["mesh/local-runner.ts", "mesh/clients.ts", "mesh/serve.ts"].map((file) => ({ file, text: readFileSync(join(root, file), "utf8") }));

  it("names no port, deadline or task size of any service", () => {
    const numbers = new Set(specs.flatMap((s) => [s.port, s.callPolicy.timeoutMs, s.scaling.cpu, s.scaling.memoryMiB]));
    for (const { file, text } of [...deployment, ...runners]) {
      const code = withoutComments(text);
      for (const n of numbers) expect(numberPattern(n).test(code), `${file} hard-codes ${n}`).toBe(false);
    }
  });

  it("sets no task count, replica count or capacity from a literal", () => {
    for (const { file, text } of deployment) {
      const code = withoutComments(text);
      expect(code, file).not.toMatch(/\b(minCapacity|maxCapacity|minReplicas|maxReplicas|desiredCount|replicas|cpu|memoryLimitMiB|containerPort)\s*:\s*\d/);
    }
  });

  it("names no service (the deployment code is generic over the topology)", () => {
    for (const { file, text } of deployment) {
      const code = withoutComments(text);
      for (const name of serviceNames) expect(code.includes(`"${name}"`), `${file} names ${name}`).toBe(false);
    }
  });
});

describe("the AWS stack and the Kubernetes chart follow a changed topology", () => {
  // GIVEN a topology where every number moved and a sixth service appeared, called by an existing one.
  const moved: ServiceSpec[] = serviceNames.map((n, i) => {
    const s = topology[n];
    return {
      ...s,
      port: 41000 + i,
      callPolicy: { ...s.callPolicy, timeoutMs: 7_000 + i * 1000 },
      scaling: { cpu: 2048, memoryMiB: 4096 + i * 1024, minTasks: 3 + i, maxTasks: 30 + i, spot: !s.scaling.spot },
    };
  });
  const search: ServiceSpec = {
    name: "search" as ServiceName,
    protocol: "grpc",
    port: 42000,
    grpcServices: ["raptorflow.search.v1.SearchService"],
    upstreams: [],
    callPolicy: { timeoutMs: 4_000, retry: topology[serviceNames[0]].callPolicy.retry },
    scaling: { cpu: 256, memoryMiB: 512, minTasks: 1, maxTasks: 4, spot: true },
    needs: ["postgres"],
  };
  const caller = moved.find((s) => s.upstreams.length > 0)!;
  const specs: ServiceSpec[] = [search, ...moved.map((s) => (s === caller ? { ...s, upstreams: [...s.upstreams, search.name] } : s))];

  let aws: Template;
  let k8s: Record<string, any>[];
  beforeAll(() => {
    // WHEN both are synthesized from it
    const app = new App({ outdir: outdirs.next() });
    aws = Template.fromStack(new RaptorflowStack(app, "Moved", { config: defaultConfig, specs }));
    k8s = Testing.synth(new MeshChart(Testing.app(), "moved", { image: "raptorflow:test", specs }));
  });

  it("ECS: task sizes, ports, task ranges, spot, deadlines and upstream addresses are the changed ones", () => {
    const resources = (type: string, spec: ServiceSpec) =>
      Object.entries(aws.findResources(type)).filter(([id]) => id.startsWith(constructId(spec.name))).map(([, r]) => (r as { Properties: any }).Properties);
    for (const spec of specs) {
      const [task] = resources("AWS::ECS::TaskDefinition", spec);
      expect([task.Cpu, task.Memory], spec.name).toEqual([String(spec.scaling.cpu), String(spec.scaling.memoryMiB)]);
      expect(task.ContainerDefinitions[0].PortMappings[0].ContainerPort).toBe(spec.port);
      const [target] = resources("AWS::ApplicationAutoScaling::ScalableTarget", spec);
      expect([target.MinCapacity, target.MaxCapacity]).toEqual([spec.scaling.minTasks, spec.scaling.maxTasks]);
      const [service] = resources("AWS::ECS::Service", spec);
      expect(JSON.stringify(service.CapacityProviderStrategy).includes("FARGATE_SPOT")).toBe(spec.scaling.spot);
      const published = service.ServiceConnectConfiguration.Services?.[0];
      if (published) expect(published.Timeout.PerRequestTimeoutSeconds).toBe(spec.callPolicy.timeoutMs / 1000);
    }
    const [callerTask] = resources("AWS::ECS::TaskDefinition", caller);
    expect(callerTask.ContainerDefinitions[0].Environment).toContainEqual({ Name: "SEARCH_ADDR", Value: `search:${search.port}` });
  });

  it("Kubernetes: deployments, resources, probes, autoscalers and network policies are the changed ones", () => {
    const find = (kind: string, name: string): Record<string, any> => {
      const found = k8s.find((o) => o.kind === kind && o.metadata.name === name);
      expect(found, `${kind} ${name}`).toBeDefined();
      return found!;
    };
    for (const spec of specs) {
      const container = find("Deployment", spec.name).spec.template.spec.containers[0];
      expect(container.ports[0].containerPort, spec.name).toBe(spec.port);
      expect(container.resources.limits).toEqual({ cpu: `${millicores(spec.scaling.cpu)}m`, memory: `${spec.scaling.memoryMiB}Mi` });
      expect(container.readinessProbe.grpc?.port ?? container.readinessProbe.httpGet?.port).toBe(spec.port);
      const hpa = find("HorizontalPodAutoscaler", spec.name).spec;
      expect([hpa.minReplicas, hpa.maxReplicas]).toEqual([spec.scaling.minTasks, spec.scaling.maxTasks]);
      expect(find("Service", spec.name).spec.ports[0].port).toBe(spec.port);
    }
    const policy = find("NetworkPolicy", "search-callers").spec;
    expect(policy.ingress[0].from).toEqual([{ podSelector: { matchLabels: expect.objectContaining({ "app.kubernetes.io/name": caller.name }) } }]);
    expect(find("ConfigMap", `${caller.name}-config`).data.SEARCH_ADDR).toBe(`search:${search.port}`);
  });
});

import { Testing } from "cdk8s";
import { stringify } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { callersOf, envPrefix, exposureOf, healthCheckOf, meshName, needsOf, scalingTargets, serviceNames, topology, type ServiceName, type ServiceSpec } from "../mesh/topology.js";
import { MeshChart } from "./mesh-chart.js";
import { labelsOf, millicores } from "./meshed-workload.js";

type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec?: any; data?: any };

const specs: ServiceSpec[] = serviceNames.map((n) => topology[n]);
let manifests: Manifest[];
const find = (kind: string, name: string): Manifest => {
  const m = manifests.find((o) => o.kind === kind && o.metadata.name === name);
  expect(m, `${kind} ${name}`).toBeDefined();
  return m!;
};
const containerOf = (name: string) => find("Deployment", name).spec.template.spec.containers[0];

beforeAll(() => {
  // GIVEN the chart of the real topology, synthesized once
  manifests = Testing.synth(new MeshChart(Testing.app(), "test", { image: "raptorflow:test" })) as Manifest[];
});

describe("the chart, from a fixed two-service topology", () => {
  it("matches its snapshot (a change to the chart's shape shows up here; the topology's own changes do not)", () => {
    const retry = { maxAttempts: 3, initialBackoffMs: 50, maxBackoffMs: 1000, backoffMultiplier: 2, retryableCodes: ["UNAVAILABLE"] };
    const fixture: ServiceSpec[] = [
      {
        name: "backend" as ServiceName,
        protocol: "grpc",
        port: 9001,
        grpcServices: ["example.v1.BackendService"],
        upstreams: [],
        callPolicy: { timeoutMs: 1000, retry },
        scaling: { cpu: 256, memoryMiB: 512, minTasks: 1, maxTasks: 3, spot: false },
        needs: ["postgres", "llm"],
      },
      {
        name: "front" as ServiceName,
        protocol: "http",
        port: 9000,
        grpcServices: [],
        upstreams: ["backend" as ServiceName],
        callPolicy: { timeoutMs: 2000, retry },
        scaling: { cpu: 512, memoryMiB: 1024, minTasks: 2, maxTasks: 4, spot: true },
        exposure: "public",
        needs: ["redis"],
      },
    ];
    const out = Testing.synth(new MeshChart(Testing.app(), "fixture", { image: "raptorflow:snapshot", specs: fixture }));
    expect(out.map((o) => stringify(o)).join("---\n")).toMatchSnapshot();
  });
});

describe("the chart, from the topology", () => {
  it("puts everything in the mesh's namespace, which enforces the restricted Pod Security Standard", () => {
    const ns = find("Namespace", meshName);
    expect(ns.metadata.labels).toMatchObject({ "pod-security.kubernetes.io/enforce": "restricted" });
    expect(ns.metadata.namespace).toBeUndefined();
    for (const m of manifests.filter((o) => o.kind !== "Namespace")) expect(m.metadata.namespace, `${m.kind} ${m.metadata.name}`).toBe(meshName);
  });

  it("runs each service's image as `serve <service>`, non-root, read-only, without capabilities, sized from the topology", () => {
    for (const spec of specs) {
      const pod = find("Deployment", spec.name).spec.template.spec;
      const c = pod.containers[0];
      expect(c.args).toEqual(["serve", spec.name]);
      expect(c.ports).toEqual([{ containerPort: spec.port, name: spec.protocol === "grpc" ? "grpc" : "http" }]);
      expect(c.securityContext).toMatchObject({
        runAsNonRoot: true,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        privileged: false,
        capabilities: { drop: ["ALL"] },
        seccompProfile: { type: "RuntimeDefault" },
      });
      expect(c.securityContext.runAsUser).toBeGreaterThan(0);
      expect(pod.securityContext.runAsNonRoot).toBe(true);
      expect(pod.automountServiceAccountToken).toBe(false);
      const cpu = `${millicores(spec.scaling.cpu)}m`;
      const memory = `${spec.scaling.memoryMiB}Mi`;
      expect(c.resources).toEqual({ requests: { cpu, memory }, limits: { cpu, memory } });
      expect(c.volumeMounts).toEqual([{ mountPath: "/tmp", name: "tmp" }]);
    }
  });

  it("probes gRPC services with grpc.health.v1 and HTTP services on their health path, for startup, readiness and liveness", () => {
    for (const spec of specs) {
      const c = containerOf(spec.name);
      const health = healthCheckOf(spec);
      for (const probe of [c.startupProbe, c.readinessProbe, c.livenessProbe]) {
        if (health.kind === "grpc") expect(probe.grpc, spec.name).toEqual({ port: spec.port });
        else expect(probe.httpGet, spec.name).toMatchObject({ path: health.path, port: spec.port });
        expect(probe.periodSeconds).toBe(health.intervalSeconds);
        expect(probe.timeoutSeconds).toBe(health.timeoutSeconds);
      }
      expect(c.startupProbe.failureThreshold * c.startupProbe.periodSeconds).toBeGreaterThanOrEqual(health.startPeriodSeconds);
      expect(c.livenessProbe.failureThreshold).toBe(health.unhealthyThreshold);
    }
  });

  it("scales each service on CPU and memory within its task range, and keeps all but one pod through disruptions", () => {
    for (const spec of specs) {
      const hpa = find("HorizontalPodAutoscaler", spec.name).spec;
      expect(hpa.scaleTargetRef).toMatchObject({ kind: "Deployment", name: spec.name });
      expect([hpa.minReplicas, hpa.maxReplicas], spec.name).toEqual([spec.scaling.minTasks, spec.scaling.maxTasks]);
      const targets = Object.fromEntries(hpa.metrics.map((m: any) => [m.resource.name, m.resource.target.averageUtilization]));
      expect(targets).toEqual({ cpu: scalingTargets.cpuPercent, memory: scalingTargets.memoryPercent });
      expect(find("Deployment", spec.name).spec.replicas, "the autoscaler owns the count").toBeUndefined();
      const pdb = find("PodDisruptionBudget", spec.name).spec;
      expect(pdb).toEqual({ maxUnavailable: 1, selector: { matchLabels: labelsOf(spec.name) } });
    }
  });

  it("lets into each service only its callers (and, for a public or internal service, its ingress), on its port", () => {
    expect(find("NetworkPolicy", "default-deny-ingress").spec).toEqual({ podSelector: {}, policyTypes: ["Ingress"] });
    for (const spec of specs) {
      const policy = find("NetworkPolicy", `${spec.name}-callers`).spec;
      expect(policy.podSelector).toEqual({ matchLabels: labelsOf(spec.name) });
      const port = [{ port: spec.port, protocol: "TCP" }];
      const callers = callersOf(spec.name);
      if (exposureOf(spec) !== "mesh") expect(policy.ingress).toEqual([{ ports: port }]);
      else if (callers.length === 0) expect(policy.ingress).toEqual([]);
      else expect(policy.ingress).toEqual([{ from: callers.map((c) => ({ podSelector: { matchLabels: labelsOf(c) } })), ports: port }]);
      // The pods carry the labels the policies select.
      expect(find("Deployment", spec.name).spec.template.metadata.labels).toMatchObject(labelsOf(spec.name));
    }
  });

  it("configures each service from a ConfigMap (its upstreams' addresses) and reads its secrets by reference only", () => {
    for (const spec of specs) {
      const config = find("ConfigMap", `${spec.name}-config`).data;
      for (const u of spec.upstreams) expect(config[`${envPrefix(u)}_ADDR`]).toBe(`${u}:${topology[u].port}`);
      const c = containerOf(spec.name);
      expect(c.envFrom).toEqual([{ configMapRef: { name: `${spec.name}-config` } }]);
      const fromSecrets = Object.fromEntries((c.env ?? []).map((e: any) => [e.name, e.valueFrom.secretKeyRef]));
      const expected: Record<string, unknown> = {};
      if (needsOf(spec, "postgres")) expected.DATABASE_URL = { name: `${meshName}-database`, key: "url", optional: false };
      if (needsOf(spec, "redis")) expected.REDIS_URL = { name: `${meshName}-redis`, key: "url", optional: false };
      if (needsOf(spec, "llm")) expected.OPENAI_API_KEY = { name: `${meshName}-llm`, key: "OPENAI_API_KEY", optional: false };
      for (const name of spec.secrets ?? []) expected[name] = { name: `${spec.name}-secrets`, key: name, optional: false };
      expect(fromSecrets, spec.name).toEqual(expected);
    }
    expect(manifests.some((m) => m.kind === "Secret"), "the chart never carries a secret's value").toBe(false);
  });

  it("gives each service a Service on its port", () => {
    for (const spec of specs) {
      const svc = find("Service", spec.name).spec;
      expect(svc.ports).toEqual([{ name: spec.protocol === "grpc" ? "grpc" : "http", port: spec.port, targetPort: spec.port }]);
      expect(svc.selector).toEqual(find("Deployment", spec.name).spec.selector.matchLabels);
    }
  });
});

describe("the chart is valid Kubernetes (1.34 schemas, from kubernetes-models)", () => {
  type Model = new (data: unknown) => { validate(): void };
  /** schemas are the API groups the chart uses; a manifest of any other group fails the test until it is added. */
  const schemas: Record<string, () => Promise<Record<string, unknown>>> = {
    v1: () => import("kubernetes-models/v1"),
    "apps/v1": () => import("kubernetes-models/apps/v1"),
    "autoscaling/v2": () => import("kubernetes-models/autoscaling/v2"),
    "policy/v1": () => import("kubernetes-models/policy/v1"),
    "networking.k8s.io/v1": () => import("kubernetes-models/networking.k8s.io/v1"),
  };
  /** modelFor loads the kubernetes-models class of a manifest's apiVersion and kind. */
  async function modelFor(m: Manifest): Promise<Model> {
    const load = schemas[m.apiVersion];
    const model = load ? ((await load())[m.kind] as Model | undefined) : undefined;
    if (!model) throw new Error(`no schema for ${m.apiVersion} ${m.kind}`);
    return model;
  }

  it("validates every manifest against its schema", async () => {
    expect(manifests.length).toBeGreaterThan(specs.length * 6);
    for (const m of manifests) {
      const Model = await modelFor(m);
      expect(() => new Model(m).validate(), `${m.kind} ${m.metadata.name}`).not.toThrow();
    }
  });

  it("would catch a broken manifest (the validator is not a no-op)", async () => {
    const deployment = structuredClone(find("Deployment", specs[0].name));
    deployment.spec.template.spec.containers[0].readinessProbe = { grpc: { port: "not-a-number" } };
    const Model = await modelFor(deployment);
    expect(() => new Model(deployment).validate()).toThrow(/port/);
  });
});

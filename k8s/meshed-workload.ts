import { Construct } from "constructs";
import { Duration, Size } from "cdk8s";
import * as kplus from "cdk8s-plus-34";
import { cpuUnitsPerVcpu, envPrefix, exposureOf, healthCheckOf, meshName, needsOf, scalingTargets, type ServiceName, type ServiceSpec } from "../mesh/topology.js";

/**
 * SecretNames are the shared Kubernetes Secrets (created by the operator,
 * never by the chart) the services read; a service's own `secrets` come from
 * the Secret `<service>-secrets`.
 */
export interface SecretNames {
  /** database holds `url`: DATABASE_URL, password included. */
  readonly database: string;
  /** redis holds `url`: REDIS_URL (`rediss://:token@host:6379`). */
  readonly redis: string;
  /** llm holds the model providers' keys (`OPENAI_API_KEY`). */
  readonly llm: string;
}

/** MeshedWorkloadProps configure one service of the mesh on Kubernetes. */
export interface MeshedWorkloadProps {
  /** spec is the service's topology entry. */
  readonly spec: ServiceSpec;
  /** callers are the services that call it: only they may reach its port (with any ingress its exposure asks for). */
  readonly callers: readonly ServiceName[];
  /** upstreams are the specs of the services it calls. */
  readonly upstreams: readonly ServiceSpec[];
  /** image is the one image of the mesh (`repository:tag`). */
  readonly image: string;
  /** secrets name the Secrets it reads. */
  readonly secrets: SecretNames;
  /** llmProvider is LLM_PROVIDER for the services that use a model. */
  readonly llmProvider: string;
}

/** labelsOf are the labels of a service's pods, which selectors and network policies match. */
export function labelsOf(name: string): Record<string, string> {
  return { "app.kubernetes.io/name": name, "app.kubernetes.io/part-of": meshName };
}

/** millicores converts the topology's CPU units (ECS's) to Kubernetes millicores. */
export function millicores(cpuUnits: number): number {
  return Math.round((cpuUnits * 1000) / cpuUnitsPerVcpu);
}

/** uid is the image's non-root user (`node` in the Node.js images). */
const uid = 1000;

/**
 * MeshedWorkload is one service of the mesh on Kubernetes: a Deployment (the
 * one image as `serve <service>`, non-root, read-only root filesystem, all
 * capabilities dropped, probed with grpc.health.v1 or its HTTP health path,
 * sized from the topology), its configuration in a ConfigMap and its secrets
 * by reference, a Service, a HorizontalPodAutoscaler on CPU and memory within
 * the topology's task range, a PodDisruptionBudget and a NetworkPolicy that
 * lets in only its callers.
 */
export class MeshedWorkload extends Construct {
  /** deployment runs the pods. */
  readonly deployment: kplus.Deployment;
  /** service is its stable name in the cluster (`<service>:<port>`). */
  readonly service: kplus.Service;
  /** config is its plain configuration. */
  readonly config: kplus.ConfigMap;

  constructor(scope: Construct, id: string, props: MeshedWorkloadProps) {
    super(scope, id);
    const { spec } = props;
    const labels = labelsOf(spec.name);
    const portName = spec.protocol === "grpc" ? "grpc" : "http";

    const data: Record<string, string> = { NODE_ENV: "production", HOST: "0.0.0.0", RAPTORFLOW_SERVICE: spec.name };
    for (const u of props.upstreams) data[`${envPrefix(u.name)}_ADDR`] = `${u.name}:${u.port}`;
    if (needsOf(spec, "llm")) data.LLM_PROVIDER = props.llmProvider;
    this.config = new kplus.ConfigMap(this, "Config", { metadata: { name: `${spec.name}-config`, labels }, data });

    const envVariables: Record<string, kplus.EnvValue> = {};
    const fromSecret = (name: string, key: string): kplus.EnvValue =>
      kplus.EnvValue.fromSecretValue({ secret: kplus.Secret.fromSecretName(this, `${name}-${key}`, name), key }, { optional: false });
    if (needsOf(spec, "postgres")) envVariables.DATABASE_URL = fromSecret(props.secrets.database, "url");
    if (needsOf(spec, "redis")) envVariables.REDIS_URL = fromSecret(props.secrets.redis, "url");
    if (needsOf(spec, "llm")) envVariables.OPENAI_API_KEY = fromSecret(props.secrets.llm, "OPENAI_API_KEY");
    for (const name of spec.secrets ?? []) envVariables[name] = fromSecret(`${spec.name}-secrets`, name);

    const health = healthCheckOf(spec);
    const probeOptions = {
      periodSeconds: Duration.seconds(health.intervalSeconds),
      timeoutSeconds: Duration.seconds(health.timeoutSeconds),
    };
    const probe = (options: { failureThreshold: number; successThreshold?: number }): kplus.Probe =>
      health.kind === "grpc"
        ? kplus.Probe.fromGrpc({ port: spec.port, ...probeOptions, ...options })
        : kplus.Probe.fromHttpGet(health.path ?? "/healthz", { port: spec.port, ...probeOptions, ...options });

    const cpu = kplus.Cpu.millis(millicores(spec.scaling.cpu));
    const memory = Size.mebibytes(spec.scaling.memoryMiB);
    this.deployment = new kplus.Deployment(this, "Deployment", {
      metadata: { name: spec.name, labels },
      podMetadata: { labels },
      strategy: kplus.DeploymentStrategy.rollingUpdate({
        maxSurge: kplus.PercentOrAbsolute.percent(25),
        maxUnavailable: kplus.PercentOrAbsolute.absolute(0),
      }),
      automountServiceAccountToken: false,
      terminationGracePeriod: Duration.seconds(30),
      securityContext: { ensureNonRoot: true, user: uid, group: uid, fsGroup: uid },
      containers: [
        {
          name: "app",
          image: props.image,
          args: ["serve", spec.name],
          ports: [{ number: spec.port, name: portName }],
          envFrom: [kplus.Env.fromConfigMap(this.config)],
          envVariables,
          resources: {
            cpu: { request: cpu, limit: cpu },
            memory: { request: memory, limit: memory },
          },
          securityContext: {
            ensureNonRoot: true,
            user: uid,
            group: uid,
            readOnlyRootFilesystem: true,
            allowPrivilegeEscalation: false,
            privileged: false,
            capabilities: { drop: [kplus.Capability.ALL] },
            seccompProfile: { type: kplus.SeccompProfileType.RUNTIME_DEFAULT },
          },
          // Startup gives migrations time; then readiness takes it out of the Service, liveness restarts it.
          startup: probe({ failureThreshold: Math.ceil(health.startPeriodSeconds / health.intervalSeconds) }),
          readiness: probe({ failureThreshold: health.unhealthyThreshold, successThreshold: health.healthyThreshold }),
          liveness: probe({ failureThreshold: health.unhealthyThreshold }),
          volumeMounts: [{ path: "/tmp", volume: kplus.Volume.fromEmptyDir(this, "Tmp", "tmp", { sizeLimit: Size.mebibytes(256) }) }],
        },
      ],
    });

    this.service = new kplus.Service(this, "Service", {
      metadata: { name: spec.name, labels },
      selector: this.deployment,
      ports: [{ port: spec.port, targetPort: spec.port, name: portName }],
      type: kplus.ServiceType.CLUSTER_IP,
    });

    new kplus.HorizontalPodAutoscaler(this, "Autoscaler", {
      metadata: { name: spec.name, labels },
      target: this.deployment,
      minReplicas: spec.scaling.minTasks,
      maxReplicas: spec.scaling.maxTasks,
      metrics: [
        kplus.Metric.resourceCpu(kplus.MetricTarget.averageUtilization(scalingTargets.cpuPercent)),
        kplus.Metric.resourceMemory(kplus.MetricTarget.averageUtilization(scalingTargets.memoryPercent)),
      ],
    });

    new kplus.k8s.KubePodDisruptionBudget(this, "Disruption", {
      metadata: { name: spec.name, labels },
      spec: { maxUnavailable: kplus.k8s.IntOrString.fromNumber(1), selector: { matchLabels: labels } },
    });

    // Only the topology's edges: its callers' pods on its port; a public or
    // internal service also takes its port from outside the namespace (the ingress).
    const from: kplus.k8s.NetworkPolicyPeer[] = props.callers.map((c) => ({ podSelector: { matchLabels: labelsOf(c) } }));
    const ingress: kplus.k8s.NetworkPolicyIngressRule[] = [];
    const port = { port: kplus.k8s.IntOrString.fromNumber(spec.port), protocol: "TCP" };
    if (exposureOf(spec) !== "mesh") ingress.push({ ports: [port] });
    else if (from.length) ingress.push({ from, ports: [port] });
    new kplus.k8s.KubeNetworkPolicy(this, "Callers", {
      metadata: { name: `${spec.name}-callers`, labels },
      spec: { podSelector: { matchLabels: labels }, policyTypes: ["Ingress"], ingress },
    });
  }
}

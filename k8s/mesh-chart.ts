import { Construct } from "constructs";
import { ApiObject, Chart, JsonPatch, type ChartProps } from "cdk8s";
import * as kplus from "cdk8s-plus-34";
import { callersOf, meshName, serviceNames, topology, type ServiceSpec } from "../mesh/topology.js";
import { MeshedWorkload, type SecretNames } from "./meshed-workload.js";

/** MeshChartProps configure the mesh on Kubernetes. */
export interface MeshChartProps extends ChartProps {
  /** image is the one image of the mesh (`repository:tag`). */
  readonly image: string;
  /** specs are the services in start order; the topology's by default. */
  readonly specs?: readonly ServiceSpec[];
  /** secrets name the operator's Secrets (defaults: `raptorflow-database`, `raptorflow-redis`, `raptorflow-llm`). */
  readonly secrets?: Partial<SecretNames>;
  /** llmProvider is LLM_PROVIDER for the services that use a model (default `openai`). */
  readonly llmProvider?: string;
}

/**
 * MeshChart is the mesh on Kubernetes, built from the topology: a namespace
 * that enforces the restricted Pod Security Standard, a policy that denies
 * all ingress not allowed by a service's own policy, and one MeshedWorkload
 * per service.
 */
export class MeshChart extends Chart {
  /** workloads are the services by name. */
  readonly workloads: ReadonlyMap<string, MeshedWorkload>;

  constructor(scope: Construct, id: string, props: MeshChartProps) {
    super(scope, id, { ...props, namespace: props.namespace ?? meshName, labels: { "app.kubernetes.io/part-of": meshName, ...props.labels } });
    const namespace = props.namespace ?? meshName;
    const specs = props.specs ?? serviceNames.map((n) => topology[n]);
    const secrets: SecretNames = {
      database: `${meshName}-database`,
      redis: `${meshName}-redis`,
      llm: `${meshName}-llm`,
      ...props.secrets,
    };

    const ns = new kplus.Namespace(this, "Namespace", {
      metadata: {
        name: namespace,
        labels: { "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest" },
      },
    });
    // A namespace is not namespaced: drop the chart's default.
    ApiObject.of(ns).addJsonPatch(JsonPatch.remove("/metadata/namespace"));
    new kplus.k8s.KubeNetworkPolicy(this, "DenyIngress", {
      metadata: { name: "default-deny-ingress" },
      spec: { podSelector: {}, policyTypes: ["Ingress"] },
    });

    const bySpec = new Map(specs.map((s) => [s.name, s]));
    const workloads = new Map<string, MeshedWorkload>();
    for (const spec of specs) {
      workloads.set(
        spec.name,
        new MeshedWorkload(this, spec.name, {
          spec,
          callers: callersOf(spec.name, specs),
          upstreams: spec.upstreams.map((u) => {
            const upstream = bySpec.get(u);
            if (!upstream) throw new Error(`${spec.name} calls ${u}, which is not in the topology`);
            return upstream;
          }),
          image: props.image,
          secrets,
          llmProvider: props.llmProvider ?? "openai",
        }),
      );
    }
    this.workloads = workloads;
  }
}

import { fileURLToPath } from "node:url";
import { App, YamlOutputType } from "cdk8s";
import { meshName } from "../mesh/topology.js";
import { MeshChart } from "./mesh-chart.js";

/** defaultOutdir is where `npm run synth` writes the Kubernetes manifests (gitignored). */
export const defaultOutdir = fileURLToPath(new URL("../dist/k8s", import.meta.url));

/**
 * buildK8sApp is the cdk8s app: the mesh chart with the image from
 * RAPTORFLOW_IMAGE (default `raptorflow:latest`) and the namespace from
 * RAPTORFLOW_NAMESPACE (default `raptorflow`).
 */
export function buildK8sApp(outdir: string = defaultOutdir, env: Record<string, string | undefined> = process.env): App {
  const app = new App({ outdir, outputFileExtension: ".yaml", yamlOutputType: YamlOutputType.FILE_PER_CHART });
  new MeshChart(app, meshName, {
    image: env.RAPTORFLOW_IMAGE || "raptorflow:latest",
    namespace: env.RAPTORFLOW_NAMESPACE || meshName,
    llmProvider: env.LLM_PROVIDER || "openai",
  });
  return app;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const app = buildK8sApp();
  app.synth();
  console.log(`synthesized ${app.charts.length} chart(s) -> ${app.outdir}`);
}

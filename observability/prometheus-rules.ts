import { fileURLToPath } from "node:url";
import { writeFileSync } from "node:fs";
import { stringify } from "yaml";
import { meshName } from "../mesh/topology.js";
import { codeName, serverFaultCodes } from "../mesh/call-stats.js";
import { alerts, metricNames as m, type AlertDefinition } from "./alerts.js";

/** prometheusRulesPath is where the generated rules file lives (committed; `npm run generate:alerts` rewrites it). */
export const prometheusRulesPath = fileURLToPath(new URL("./prometheus-rules.yml", import.meta.url));

/** PrometheusRule is one alerting rule as Prometheus reads it. */
export interface PrometheusRule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
}

/** faults are the status code names that count as errors. */
const faults = [...serverFaultCodes].map(codeName).join("|");

/**
 * prometheusExpr is the PromQL of one alert over the mesh's namespace. Each
 * alert compares with its own threshold, so the number lives only in
 * alerts.ts.
 */
export function prometheusExpr(alert: AlertDefinition, namespace: string = meshName): string {
  const ns = `namespace="${namespace}"`;
  const containers = `${ns}, container!="", container!="POD"`;
  const byContainer = "sum by (namespace, pod, container)";
  const op = alert.comparison === "above" ? ">" : "<";
  switch (alert.name) {
    case "HighCpu":
      return `100 * ${byContainer} (rate(${m.containerCpu}{${containers}}[5m])) / ${byContainer} (${m.containerLimits}{${ns}, resource="cpu"}) ${op} ${alert.threshold}`;
    case "HighMemory":
      return `100 * ${byContainer} (${m.containerMemory}{${containers}}) / ${byContainer} (${m.containerLimits}{${ns}, resource="memory"}) ${op} ${alert.threshold}`;
    case "SlowResponses":
      return `histogram_quantile(0.95, sum by (${m.serviceLabel}, le) (rate(${m.rpcDuration}_bucket{${ns}}[5m]))) ${op} ${alert.threshold}`;
    case "HighErrorRate":
      // Client mistakes (INVALID_ARGUMENT, NOT_FOUND …) are not the service failing: count what a caller cannot fix,
      // the same codes the services' status and error rates count (mesh/call-stats.ts).
      return `100 * sum by (${m.serviceLabel}) (rate(${m.rpcDuration}_count{${ns}, ${m.rpcStatusLabel}=~"${faults}"}[5m])) / sum by (${m.serviceLabel}) (rate(${m.rpcDuration}_count{${ns}}[5m])) ${op} ${alert.threshold}`;
    case "LowStorage":
      return `${m.volumeAvailable}{${ns}} ${op} ${alert.threshold}`;
  }
}

/** prometheusRule is one alert as a Prometheus alerting rule. */
export function prometheusRule(alert: AlertDefinition, namespace: string = meshName): PrometheusRule {
  return {
    alert: alert.name,
    expr: prometheusExpr(alert, namespace),
    for: `${alert.forMinutes}m`,
    labels: { severity: alert.severity, mesh: meshName, rollback: String(alert.rollback) },
    annotations: {
      summary: alert.summary,
      description: `${alert.summary} for ${alert.forMinutes} minutes (threshold ${alert.threshold} ${alert.unit}).`,
    },
  };
}

/** renderPrometheusRules is the rules file: one group with every alert of alerts.ts. */
export function renderPrometheusRules(namespace: string = meshName): string {
  const doc = { groups: [{ name: `${meshName}-alerts`, rules: alerts.map((a) => prometheusRule(a, namespace)) }] };
  return (
    "# Generated from observability/alerts.ts by `npm run generate:alerts`; do not edit by hand.\n" +
    stringify(doc, { lineWidth: 0 })
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(prometheusRulesPath, renderPrometheusRules());
  console.log(`wrote ${prometheusRulesPath}`);
}

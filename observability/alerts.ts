/**
 * The mesh's alerts, defined once. `cdk/monitoring.ts` turns each into
 * CloudWatch alarms (per service, or on the database) and
 * `observability/prometheus-rules.ts` into Prometheus alerting rules
 * (`observability/prometheus-rules.yml`, generated, committed). A threshold
 * changes here and nowhere else.
 */

/** AlertName names one alert of the mesh. */
export type AlertName = "HighCpu" | "HighMemory" | "SlowResponses" | "HighErrorRate" | "LowStorage";

/** AlertDefinition is one alert: what is measured, its threshold and how long it must hold. */
export interface AlertDefinition {
  /** name is the alert's name in both CloudWatch and Prometheus. */
  readonly name: AlertName;
  /** summary says in one line what is wrong, for the page that wakes someone. */
  readonly summary: string;
  /** scope is what it watches: each service of the mesh, or the database. */
  readonly scope: "service" | "database";
  /** threshold is the limit, in `unit`. */
  readonly threshold: number;
  /** unit is the threshold's unit: a percentage, seconds or bytes. */
  readonly unit: "percent" | "seconds" | "bytes";
  /** comparison says whether the alert fires above or below the threshold. */
  readonly comparison: "above" | "below";
  /** forMinutes is how long the condition must hold before the alert fires. */
  readonly forMinutes: number;
  /** severity routes the notification. */
  readonly severity: "warning" | "critical";
  /** rollback says whether a release in progress is rolled back when the alert fires. */
  readonly rollback: boolean;
}

/** alerts are the seed's thresholds: CPU > 80 %, memory > 85 %, response time > 5 s, errors > 5 %, storage < 2 GB free. */
export const alerts: readonly AlertDefinition[] = [
  {
    name: "HighCpu",
    summary: "CPU above 80% of the task's share",
    scope: "service",
    threshold: 80,
    unit: "percent",
    comparison: "above",
    forMinutes: 5,
    severity: "warning",
    rollback: false,
  },
  {
    name: "HighMemory",
    summary: "Memory above 85% of the task's limit",
    scope: "service",
    threshold: 85,
    unit: "percent",
    comparison: "above",
    forMinutes: 5,
    severity: "warning",
    rollback: false,
  },
  {
    name: "SlowResponses",
    summary: "95th percentile response time above 5 seconds",
    scope: "service",
    threshold: 5,
    unit: "seconds",
    comparison: "above",
    forMinutes: 5,
    severity: "critical",
    rollback: true,
  },
  {
    name: "HighErrorRate",
    summary: "More than 5% of requests fail",
    scope: "service",
    threshold: 5,
    unit: "percent",
    comparison: "above",
    forMinutes: 3,
    severity: "critical",
    rollback: true,
  },
  {
    name: "LowStorage",
    summary: "Less than 2 GB of database storage free",
    scope: "database",
    threshold: 2_000_000_000,
    unit: "bytes",
    comparison: "below",
    forMinutes: 5,
    severity: "critical",
    rollback: false,
  },
];

/** alertNamed is the definition of one alert. */
export function alertNamed(name: AlertName): AlertDefinition {
  const found = alerts.find((a) => a.name === name);
  if (!found) throw new Error(`no alert named ${name}`);
  return found;
}

/**
 * metricNames are the Prometheus series the rules read: the services' own
 * RED metrics, as each service's `/metrics` serves them (mesh/telemetry.ts:
 * OpenTelemetry's `rpc.server.call.duration` histogram, in seconds, with
 * the status code's name in `rpc_response_status_code` and the service in
 * `service_name`, from the resource; the gateway counts the RPCs it serves
 * over REST and Connect in it too), the kubelet's container and volume
 * metrics, and kube-state-metrics' limits. mesh/telemetry.test.ts checks
 * the first against a real scrape.
 */
export const metricNames = {
  rpcDuration: "rpc_server_call_duration",
  rpcStatusLabel: "rpc_response_status_code",
  serviceLabel: "service_name",
  containerCpu: "container_cpu_usage_seconds_total",
  containerMemory: "container_memory_working_set_bytes",
  containerLimits: "kube_pod_container_resource_limits",
  volumeAvailable: "kubelet_volume_stats_available_bytes",
} as const;

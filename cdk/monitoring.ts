import { Construct } from "constructs";
import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as actions from "aws-cdk-lib/aws-cloudwatch-actions";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as elbv2 from "aws-cdk-lib/aws-elasticloadbalancingv2";
import * as kms from "aws-cdk-lib/aws-kms";
import * as rds from "aws-cdk-lib/aws-rds";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import type { ServiceSpec } from "../mesh/topology.js";
import { alertNamed, alerts, type AlertDefinition, type AlertName } from "../observability/alerts.js";
import type { MeshProvider, Slot } from "./config.js";

/** ServiceAlarms is what a meshed service needs from monitoring: its alarms, by name before they exist. */
export interface ServiceAlarms {
  /** rollbackAlarmNames are the alarms that roll a release of the service back. */
  rollbackAlarmNames(spec: ServiceSpec, called: boolean, hasIngress: boolean): string[];
  /** watchService raises the alarms of one ECS service (CPU, memory; Service Connect requests when it is called). */
  watchService(scope: Construct, spec: ServiceSpec, slot: Slot, service: ecs.FargateService, called: boolean): void;
  /** watchLoadBalancer raises the request alarms of a service reached through a load balancer. */
  watchLoadBalancer(scope: Construct, spec: ServiceSpec, loadBalancer: elbv2.IApplicationLoadBalancer, called: boolean): void;
}

/** MonitoringProps configure alarms and the dashboard. */
export interface MonitoringProps {
  /** prefix starts every alarm's name (`raptorflow-production`). */
  readonly prefix: string;
  /** provider decides where request metrics come from. */
  readonly provider: MeshProvider;
  /** key encrypts the alarm topic. */
  readonly key: kms.IKey;
  /** alarmEmail, when set, is subscribed to the topic. */
  readonly alarmEmail?: string;
}

/** RequestSource is where a service's response-time and error metrics come from. */
export type RequestSource = "serviceconnect" | "loadbalancer" | undefined;

/**
 * requestSource picks a service's request metrics: Service Connect's when
 * it is called through Service Connect (every caller's calls), else its
 * load balancer's when it has one, else none (App Mesh publishes no
 * CloudWatch metrics; the services' own metrics come with the
 * observability work).
 */
export function requestSource(provider: MeshProvider, called: boolean, hasIngress: boolean): RequestSource {
  if (provider === "serviceconnect" && called) return "serviceconnect";
  return hasIngress ? "loadbalancer" : undefined;
}

const period = Duration.minutes(1);

/**
 * Monitoring is the alarm topic, every alarm of observability/alerts.ts
 * (per service and on the database) and the dashboard. Alarm names are
 * fixed (`<prefix>-<service>-<alert>`), so ECS deployments can name the
 * alarms that roll them back without a dependency cycle.
 */
export class Monitoring extends Construct implements ServiceAlarms {
  /** topic receives every alarm and its recovery. */
  readonly topic: sns.Topic;
  /** dashboard shows the mesh. */
  readonly dashboard: cloudwatch.Dashboard;
  /** alarms are every alarm raised so far. */
  readonly alarms: cloudwatch.Alarm[] = [];
  private readonly props: MonitoringProps;
  private readonly rollback: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    this.props = props;
    this.topic = new sns.Topic(this, "Alarms", { displayName: `${props.prefix} alarms`, masterKey: props.key, enforceSSL: true });
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    this.dashboard = new cloudwatch.Dashboard(this, "Dashboard", { dashboardName: props.prefix, defaultInterval: Duration.hours(3) });
  }

  /** alarmName is an alert's fixed name for one service (or `database`). */
  alarmName(subject: string, alert: AlertName): string {
    return `${this.props.prefix}-${subject}-${alert}`;
  }

  rollbackAlarmNames(spec: ServiceSpec, called: boolean, hasIngress: boolean): string[] {
    if (!requestSource(this.props.provider, called, hasIngress)) return [];
    return alerts.filter((a) => a.rollback && a.scope === "service").map((a) => this.alarmName(spec.name, a.name));
  }

  watchService(scope: Construct, spec: ServiceSpec, slot: Slot, service: ecs.FargateService, called: boolean): void {
    const subject = `${spec.name}-${slot}`;
    const cpu = service.metricCpuUtilization({ period, statistic: "Average" });
    const memory = service.metricMemoryUtilization({ period, statistic: "Average" });
    this.raise(scope, `${slot}HighCpu`, alertNamed("HighCpu"), cpu, this.alarmName(subject, "HighCpu"));
    this.raise(scope, `${slot}HighMemory`, alertNamed("HighMemory"), memory, this.alarmName(subject, "HighMemory"));
    const widgets: cloudwatch.IWidget[] = [
      new cloudwatch.GraphWidget({ title: `${subject} CPU / memory %`, left: [cpu, memory], leftYAxis: { min: 0, max: 100 }, width: 8 }),
    ];
    if (requestSource(this.props.provider, called, false) === "serviceconnect") {
      const dims = { ClusterName: service.cluster.clusterName, ServiceName: service.serviceName, DiscoveryName: spec.name };
      const sc = (metricName: string, statistic: string): cloudwatch.Metric =>
        new cloudwatch.Metric({ namespace: "AWS/ECS", metricName, dimensionsMap: dims, statistic, period });
      // Service Connect reports response time in milliseconds.
      const latency = sc("TargetResponseTime", "p95");
      const errors = errorRate(sc("HTTPCode_Target_5XX_Count", "Sum"), undefined, sc("RequestCount", "Sum"));
      this.raise(scope, "SlowResponses", alertNamed("SlowResponses"), latency, this.alarmName(spec.name, "SlowResponses"), 1000);
      this.raise(scope, "HighErrorRate", alertNamed("HighErrorRate"), errors, this.alarmName(spec.name, "HighErrorRate"));
      widgets.push(
        new cloudwatch.GraphWidget({ title: `${spec.name} p95 response time (ms)`, left: [latency], width: 8 }),
        new cloudwatch.GraphWidget({ title: `${spec.name} errors %`, left: [errors], width: 8 }),
      );
    }
    this.dashboard.addWidgets(new cloudwatch.Row(...widgets));
  }

  watchLoadBalancer(scope: Construct, spec: ServiceSpec, loadBalancer: elbv2.IApplicationLoadBalancer, called: boolean): void {
    if (requestSource(this.props.provider, called, true) !== "loadbalancer") return;
    const latency = loadBalancer.metrics.targetResponseTime({ period, statistic: "p95" });
    const errors = errorRate(
      loadBalancer.metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, { period, statistic: "Sum" }),
      loadBalancer.metrics.httpCodeElb(elbv2.HttpCodeElb.ELB_5XX_COUNT, { period, statistic: "Sum" }),
      loadBalancer.metrics.requestCount({ period, statistic: "Sum" }),
    );
    this.raise(scope, "SlowResponses", alertNamed("SlowResponses"), latency, this.alarmName(spec.name, "SlowResponses"));
    this.raise(scope, "HighErrorRate", alertNamed("HighErrorRate"), errors, this.alarmName(spec.name, "HighErrorRate"));
    this.dashboard.addWidgets(
      new cloudwatch.Row(
        new cloudwatch.GraphWidget({ title: `${spec.name} p95 response time (s)`, left: [latency], width: 12 }),
        new cloudwatch.GraphWidget({ title: `${spec.name} errors %`, left: [errors], width: 12 }),
      ),
    );
  }

  /** watchDatabase raises the database's storage alarm and charts it. */
  watchDatabase(database: rds.DatabaseInstance): void {
    const free = database.metricFreeStorageSpace({ period, statistic: "Minimum" });
    this.raise(this, "DatabaseLowStorage", alertNamed("LowStorage"), free, this.alarmName("database", "LowStorage"));
    this.dashboard.addWidgets(
      new cloudwatch.Row(
        new cloudwatch.GraphWidget({ title: "database free storage (bytes)", left: [free], width: 8 }),
        new cloudwatch.GraphWidget({ title: "database CPU %", left: [database.metricCPUUtilization({ period })], width: 8 }),
        new cloudwatch.GraphWidget({ title: "database connections", left: [database.metricDatabaseConnections({ period })], width: 8 }),
      ),
    );
  }

  /**
   * finish adds the release alarm (any rollback alarm firing: the release
   * script watches it) and the alarm overview to the dashboard.
   */
  finish(): cloudwatch.CompositeAlarm | undefined {
    this.dashboard.addWidgets(new cloudwatch.AlarmStatusWidget({ title: "alarms", alarms: this.alarms, width: 24 }));
    if (this.rollback.length === 0) return undefined;
    const release = new cloudwatch.CompositeAlarm(this, "Release", {
      compositeAlarmName: `${this.props.prefix}-release`,
      alarmDescription: "A release alarm fires: roll the release back",
      alarmRule: cloudwatch.AlarmRule.anyOf(...this.rollback.map((a) => cloudwatch.AlarmRule.fromAlarm(a, cloudwatch.AlarmState.ALARM))),
    });
    release.addAlarmAction(new actions.SnsAction(this.topic));
    return release;
  }

  /** raise makes one alarm from an alert definition; `scale` converts the threshold to the metric's unit. */
  private raise(scope: Construct, id: string, alert: AlertDefinition, metric: cloudwatch.IMetric, name: string, scale = 1): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(scope, id, {
      alarmName: name,
      alarmDescription: `${alert.summary} (${alert.severity})`,
      metric,
      threshold: alert.threshold * scale,
      comparisonOperator:
        alert.comparison === "above" ? cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD : cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: alert.forMinutes,
      datapointsToAlarm: alert.forMinutes,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(new actions.SnsAction(this.topic));
    alarm.addOkAction(new actions.SnsAction(this.topic));
    this.alarms.push(alarm);
    if (alert.rollback) this.rollback.push(alarm);
    return alarm;
  }
}

/** errorRate is the percentage of requests that failed, 0 when there were none. */
function errorRate(failed: cloudwatch.IMetric, failedAtBalancer: cloudwatch.IMetric | undefined, requests: cloudwatch.IMetric): cloudwatch.MathExpression {
  const usingMetrics: Record<string, cloudwatch.IMetric> = { failed, requests };
  if (failedAtBalancer) usingMetrics.balancer = failedAtBalancer;
  const failures = failedAtBalancer ? "FILL(failed, 0) + FILL(balancer, 0)" : "FILL(failed, 0)";
  return new cloudwatch.MathExpression({
    expression: `IF(FILL(requests, 0) > 0, 100 * (${failures}) / requests, 0)`,
    usingMetrics,
    label: "errors %",
    period,
  });
}

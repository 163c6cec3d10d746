import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { ServiceHealth, ServingState } from "./service-health.js";
import { serviceIdentity } from "./telemetry.js";

/** ReadinessReport is what `/readyz` answers: the state, who answers, and each dependency. */
export interface ReadinessReport {
  /** status is `serving`, `degraded` or `not_serving`. */
  readonly status: "serving" | "degraded" | "not_serving";
  /** service, version and instance say who answered. */
  readonly service: string;
  /** version runs. */
  readonly version: string;
  /** instance answered. */
  readonly instance: string;
  /** uptime_seconds since the process started. */
  readonly uptime_seconds: number;
  /** dependencies with their last check. */
  readonly dependencies: readonly { name: string; kind: string; required: boolean; healthy: boolean; checked_at?: string }[];
  /** services is the mesh as the gateway sees it (the gateway's answer only). */
  readonly services?: readonly { service: string; status: string; error?: string }[];
}

const statusNames: Record<ServingState, ReadinessReport["status"]> = { SERVING: "serving", DEGRADED: "degraded", NOT_SERVING: "not_serving" };

/** readinessReport is a service's readiness as `/readyz` shows it. */
export function readinessReport(health: ServiceHealth): ReadinessReport {
  const id = serviceIdentity();
  return {
    status: statusNames[health.state()],
    service: id.service,
    version: id.version,
    instance: id.instance,
    uptime_seconds: Math.round(process.uptime()),
    dependencies: health.dependencies().map((d) => ({
      name: d.name,
      kind: d.kind,
      required: d.required,
      healthy: d.healthy,
      ...(d.checkTime ? { checked_at: d.checkTime.toISOString() } : {}),
    })),
  };
}

/** readinessCode is `/readyz`'s HTTP status: 200 while serving (degraded too: the service still answers), 503 otherwise. */
export function readinessCode(report: ReadinessReport): number {
  return report.status === "not_serving" ? 503 : 200;
}

/** livenessReport is what `/livez` answers: the process is up and its event loop turns (it answered). */
export function livenessReport(): { status: "alive"; uptime_seconds: number } {
  return { status: "alive", uptime_seconds: Math.round(process.uptime()) };
}

/** OpsListenerOptions configure a service's operations listener. */
export interface OpsListenerOptions {
  /** metrics answers `/metrics` (Telemetry.serveMetrics); 404 without it. */
  readonly metrics?: (req: IncomingMessage, res: ServerResponse) => void;
  /** readiness is what `/readyz` reports. */
  readonly readiness: () => ReadinessReport | Promise<ReadinessReport>;
}

/** OpsListener is a running operations listener. */
export interface OpsListener {
  /** port it listens on. */
  readonly port: number;
  /** close stops it. */
  close(): Promise<void>;
}

const json = (res: ServerResponse, code: number, body: unknown): void => {
  res.writeHead(code, { "content-type": "application/json", "cache-control": "no-store" }).end(JSON.stringify(body));
};

/**
 * startOpsListener serves a service's operations endpoints on their own
 * port (`<PREFIX>_METRICS_PORT`), apart from its API: `GET /metrics`
 * (Prometheus text), `GET /livez` (200 while the process answers) and
 * `GET /readyz` (200 serving or degraded, 503 not serving, with the
 * dependencies). gRPC services have no HTTP port of their own, and the
 * gateway's public port should not expose metrics.
 */
export function startOpsListener(port: number, host: string, options: OpsListenerOptions): Promise<OpsListener> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") return json(res, 405, { error: "only GET" });
    if (path === "/metrics" && options.metrics) return options.metrics(req, res);
    if (path === "/livez") return json(res, 200, livenessReport());
    if (path === "/readyz") {
      void Promise.resolve()
        .then(options.readiness)
        .then(
          (r) => json(res, readinessCode(r), r),
          (e: Error) => json(res, 503, { status: "not_serving", error: e.message }),
        );
      return;
    }
    json(res, 404, { error: `no ${path} here: /metrics, /livez, /readyz` });
  });
  // A scraper's keep-alive connection must not hold the process open at shutdown.
  server.keepAliveTimeout = 5_000;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

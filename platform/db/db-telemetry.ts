import { context, SpanKind, SpanStatusCode, trace, type Attributes } from "@opentelemetry/api";
import type { Pool, PoolClient } from "pg";
import { durationBuckets, instruments, tracer } from "../../mesh/telemetry.js";

/** PoolTelemetry names a service's connection pool in telemetry. */
export interface PoolTelemetry {
  /** pool names it: `<service>` (one pool per service database). */
  readonly pool: string;
  /** schema is the PostgreSQL schema the service owns. */
  readonly schema: string;
  /** database is the database name, host and port the pool connects to. */
  readonly database: string;
  /** host of the server. */
  readonly host: string;
  /** port of the server. */
  readonly port: number;
  /** max is the pool's size. */
  readonly max: number;
}

const pools = new Map<Pool, PoolTelemetry>();

const dbInstruments = () =>
  instruments("db", (meter) => {
    const connections = meter.createObservableGauge("db.client.connection.count", {
      unit: "{connection}",
      description: "Connections of the pool by state (idle, used).",
    });
    const pending = meter.createObservableGauge("db.client.connection.pending_requests", {
      unit: "{request}",
      description: "Callers waiting for a connection of the pool.",
    });
    const max = meter.createObservableGauge("db.client.connection.max", {
      unit: "{connection}",
      description: "The most connections the pool opens.",
    });
    meter.addBatchObservableCallback(
      (r) => {
        for (const [pool, names] of pools) {
          const at: Attributes = { "db.system.name": "postgresql", "db.client.connection.pool.name": names.pool };
          r.observe(connections, pool.idleCount, { ...at, "db.client.connection.state": "idle" });
          r.observe(connections, pool.totalCount - pool.idleCount, { ...at, "db.client.connection.state": "used" });
          r.observe(pending, pool.waitingCount, at);
          r.observe(max, names.max, at);
        }
      },
      [connections, pending, max],
    );
    return {
      duration: meter.createHistogram("db.client.operation.duration", {
        unit: "s",
        description: "Duration of database and cache operations (PostgreSQL queries, Redis commands).",
        advice: { explicitBucketBoundaries: durationBuckets },
      }),
    };
  });

/** operationOf is a statement's first keyword (`SELECT`, `INSERT` …), what the span and the metric are named by. */
export function operationOf(sql: string): string {
  const m = /^\s*(?:\/\*.*?\*\/\s*)*([A-Za-z]+)/s.exec(sql);
  return m ? m[1].toUpperCase() : "QUERY";
}

/**
 * instrumentPool traces and measures a service's PostgreSQL pool (the `pg`
 * pool MikroORM creates, handed over by its `onPoolCreated`): each query of
 * each connection becomes a CLIENT span (`SELECT <schema>`, child of the
 * active span, with the parameterised statement — values never) and a
 * `db.client.operation.duration` measure, and the pool's connections (idle,
 * used), waiting callers and size are reported as gauges. Returns a
 * function that stops the gauges (at close).
 */
export function instrumentPool(pool: Pool, names: PoolTelemetry): () => void {
  dbInstruments();
  pools.set(pool, names);
  pool.on("connect", (client) => traceClient(client, names));
  return () => pools.delete(pool);
}

/** traceClient wraps one connection's promise-returning `query` (what MikroORM's driver calls); cursors and callbacks pass through. */
function traceClient(client: PoolClient, names: PoolTelemetry): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  const base: Attributes = {
    "db.system.name": "postgresql",
    "db.namespace": names.database,
    "server.address": names.host,
    "server.port": names.port,
    "raptorflow.db.schema": names.schema,
  };
  (client as { query: unknown }).query = (...args: unknown[]) => {
    const [first] = args;
    const text = typeof first === "string" ? first : first && typeof first === "object" && typeof (first as { text?: unknown }).text === "string" ? (first as { text: string }).text : undefined;
    if (text === undefined || typeof args.at(-1) === "function" || (first as { submit?: unknown })?.submit) return query(...args);
    const op = operationOf(text);
    const started = performance.now();
    const span = tracer().startSpan(`${op} ${names.schema}`, {
      kind: SpanKind.CLIENT,
      attributes: { ...base, "db.operation.name": op, "db.query.text": text.length > 2000 ? `${text.slice(0, 2000)}…` : text },
    });
    const done = (error?: unknown): void => {
      if (error !== undefined) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error)?.message });
        span.setAttribute("error.type", (error as { code?: string })?.code ?? "Error");
      }
      span.end();
      dbInstruments().duration.record((performance.now() - started) / 1000, {
        "db.system.name": "postgresql",
        "db.operation.name": op,
        "raptorflow.db.schema": names.schema,
        ...(error !== undefined ? { "error.type": (error as { code?: string })?.code ?? "Error" } : {}),
      });
    };
    const result = context.with(trace.setSpan(context.active(), span), () => query(...args)) as Promise<unknown>;
    return result.then(
      (r) => {
        done();
        return r;
      },
      (e: unknown) => {
        done(e);
        throw e;
      },
    );
  };
}

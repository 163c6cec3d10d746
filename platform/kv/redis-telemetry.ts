import { tracingChannel } from "node:diagnostics_channel";
import { SpanKind, SpanStatusCode, type Span } from "@opentelemetry/api";
import type { Redis } from "ioredis";
import { durationBuckets, instruments, tracer } from "../../mesh/telemetry.js";

/** RedisCommandContext is what ioredis publishes on its `ioredis:command` tracing channel. */
interface RedisCommandContext {
  readonly command: string;
  readonly database: number;
  readonly serverAddress: string;
  readonly serverPort?: number;
  span?: Span;
  started?: number;
  error?: unknown;
}

const clients = new Map<Redis, string>();

const redisInstruments = () =>
  instruments("redis", (meter) => {
    const connections = meter.createObservableGauge("raptorflow.redis.connection.ready", {
      unit: "{connection}",
      description: "Redis connections of this process that are ready (1) or not (0), by role.",
    });
    connections.addCallback((r) => {
      for (const [redis, role] of clients) r.observe(redis.status === "ready" ? 1 : 0, { "raptorflow.redis.role": role });
    });
    return {
      duration: meter.createHistogram("db.client.operation.duration", {
        unit: "s",
        description: "Duration of database and cache operations (PostgreSQL queries, Redis commands).",
        advice: { explicitBucketBoundaries: durationBuckets },
      }),
    };
  });

let subscribed = false;

/**
 * traceRedisCommands turns every ioredis command of the process into a
 * CLIENT span (`GET`, `SET` …, child of the active span) and a
 * `db.client.operation.duration` measure, from ioredis's own tracing
 * channel (its arguments are never recorded: keys hold organization ids).
 * Subscribed once per process.
 */
export function traceRedisCommands(): void {
  if (subscribed) return;
  subscribed = true;
  const end = (ctx: RedisCommandContext): void => {
    const span = ctx.span;
    if (!span) return;
    ctx.span = undefined;
    if (ctx.error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: (ctx.error as Error)?.message });
    span.end();
    const op = ctx.command.toUpperCase();
    redisInstruments().duration.record((performance.now() - (ctx.started ?? 0)) / 1000, {
      "db.system.name": "redis",
      "db.operation.name": op,
      ...(ctx.error !== undefined ? { "error.type": (ctx.error as Error)?.name ?? "Error" } : {}),
    });
  };
  tracingChannel<RedisCommandContext, RedisCommandContext>("ioredis:command").subscribe({
    start(ctx) {
      ctx.started = performance.now();
      ctx.span = tracer().startSpan(ctx.command.toUpperCase(), {
        kind: SpanKind.CLIENT,
        attributes: {
          "db.system.name": "redis",
          "db.operation.name": ctx.command.toUpperCase(),
          "db.namespace": String(ctx.database),
          "server.address": ctx.serverAddress,
          ...(ctx.serverPort ? { "server.port": ctx.serverPort } : {}),
        },
      });
    },
    end(ctx) {
      // A command that threw before returning its promise never reaches asyncEnd.
      if (ctx.error !== undefined) end(ctx);
    },
    asyncStart() {},
    asyncEnd(ctx) {
      end(ctx);
    },
    error() {},
  });
}

/** watchRedisConnection reports a client's readiness in `raptorflow.redis.connection.ready` until unwatched. */
export function watchRedisConnection(redis: Redis, role: string): () => void {
  redisInstruments();
  clients.set(redis, role);
  return () => clients.delete(redis);
}

import { createHash } from "node:crypto";
import { context, SpanKind, trace } from "@opentelemetry/api";
import { logger } from "../../mesh/logger.js";
import { instruments, tracer } from "../../mesh/telemetry.js";
import type { KeyValueStore } from "./kv-store.js";

const cacheInstruments = () =>
  instruments("result-cache", (meter) => ({
    requests: meter.createCounter("raptorflow.cache.requests", {
      unit: "{request}",
      description: "Result cache reads by cache and result (hit, miss, error): the hit ratio is hit / (hit + miss).",
    }),
  }));

/** cacheNameOf is the namespace of a cacheKey (`agent-result`), which names the cache in telemetry. */
function cacheNameOf(key: string): string {
  const i = key.indexOf(":");
  return i < 0 ? "default" : key.slice(0, i);
}

/** ResultCache keeps results of identical calls for a while; a cache that fails is a miss, never an error. */
export interface ResultCache {
  /** get returns a cached value, or undefined (also when the store fails). */
  get(key: string): Promise<string | undefined>;
  /** set stores a value for the cache's TTL; a failing store is ignored. */
  set(key: string, value: string): Promise<void>;
}

/** cacheKey digests the parts that make two calls identical into one key. */
export function cacheKey(namespace: string, parts: readonly unknown[]): string {
  return `${namespace}:${createHash("sha256").update(stableJson(parts)).digest("hex")}`;
}

/** stableJson serialises with sorted object keys, so equal inputs give equal keys whatever their key order. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : typeof v === "bigint"
        ? v.toString()
        : v,
  );
}

/**
 * createResultCache caches on a KeyValueStore. Redis being down degrades to
 * misses (and a warning once per outage), not to failed calls. Each read is
 * a `cache.get <name>` span saying whether it hit, and is counted in
 * `raptorflow.cache.requests`.
 */
export function createResultCache(kv: KeyValueStore, ttlMs: number, warn: (message: string) => void = (m) => logger("cache").warn(m)): ResultCache {
  let failing = false;
  const failed = (e: unknown): undefined => {
    if (!failing) warn(`result cache unavailable, serving without it: ${(e as Error).message}`);
    failing = true;
    return undefined;
  };
  return {
    async get(key) {
      const name = cacheNameOf(key);
      const span = tracer().startSpan(`cache.get ${name}`, { kind: SpanKind.INTERNAL, attributes: { "raptorflow.cache.name": name, "raptorflow.cache.store": kv.kind } });
      let result = "error";
      // Active while it reads, so the store's own spans (Redis GET) are its children.
      return context.with(trace.setSpan(context.active(), span), async () => {
        try {
          const v = await kv.get(key);
          failing = false;
          result = v === undefined ? "miss" : "hit";
          return v;
        } catch (e) {
          return failed(e);
        } finally {
          span.setAttribute("raptorflow.cache.hit", result === "hit");
          span.end();
          cacheInstruments().requests.add(1, { "raptorflow.cache.name": name, "raptorflow.cache.result": result });
        }
      });
    },
    async set(key, value) {
      try {
        await kv.set(key, value, ttlMs);
        failing = false;
      } catch (e) {
        failed(e);
      }
    },
  };
}

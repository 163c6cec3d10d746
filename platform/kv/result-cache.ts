import { createHash } from "node:crypto";
import type { KeyValueStore } from "./kv-store.js";

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
 * misses (and a warning once per outage), not to failed calls.
 */
export function createResultCache(kv: KeyValueStore, ttlMs: number, warn: (message: string) => void = console.warn): ResultCache {
  let failing = false;
  const failed = (e: unknown): undefined => {
    if (!failing) warn(`result cache unavailable, serving without it: ${(e as Error).message}`);
    failing = true;
    return undefined;
  };
  return {
    async get(key) {
      try {
        const v = await kv.get(key);
        failing = false;
        return v;
      } catch (e) {
        return failed(e);
      }
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

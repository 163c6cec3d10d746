import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { KeyValueStore } from "../../platform/kv/kv-store.js";
import type { RunStore } from "./run-store.js";
import { logger } from "../../mesh/logger.js";

/** SharedContext is the context the steps of one run share: each finished step's output, by agent id. */
export interface SharedContext {
  /** put records a step's output before the next step starts. */
  put(org: string, run: string, key: string, value: JsonValue): Promise<void>;
  /** get reads the whole context of a run. */
  get(org: string, run: string): Promise<JsonObject>;
}

/**
 * createSharedContext keeps a run's shared context in the KeyValueStore
 * (Redis: a hash per organization and run, with a TTL, so any orchestrator
 * instance can run the next step) and in the run store (PostgreSQL, the
 * durable copy). Reads come from the key-value store; when it is down or has
 * lost the entry, from PostgreSQL — degraded, not broken.
 */
export function createSharedContext(kv: KeyValueStore, store: RunStore, ttlMs: number, warn: (m: string) => void = (m) => logger("shared-context").warn(m)): SharedContext {
  const keyOf = (org: string, run: string) => `rf:ctx:${org}:${run}`;
  let degraded = false;
  const fell = (e: unknown) => {
    if (!degraded) warn(`shared context: key-value store unavailable, using PostgreSQL only: ${(e as Error).message}`);
    degraded = true;
  };
  return {
    async put(org, run, key, value) {
      await store.putContext(org, run, key, value);
      try {
        await kv.hset(keyOf(org, run), key, JSON.stringify(value), ttlMs);
        degraded = false;
      } catch (e) {
        fell(e);
      }
    },
    async get(org, run) {
      try {
        const fields = await kv.hgetall(keyOf(org, run));
        degraded = false;
        if (Object.keys(fields).length > 0) {
          return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, JSON.parse(v) as JsonValue])) as JsonObject;
        }
      } catch (e) {
        fell(e);
      }
      return store.getContext(org, run);
    },
  };
}

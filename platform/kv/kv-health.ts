import type { Dependency } from "../../mesh/service-health.js";
import type { KeyValueStore } from "./kv-store.js";

/**
 * kvDependency is the shared store (Redis) as a dependency: optional, since
 * every user of it degrades without it (caches miss, shared context falls
 * back to the database, rate limits fail open), so its loss makes a service
 * DEGRADED, not NOT_SERVING.
 */
export function kvDependency(kv: KeyValueStore): Dependency {
  return { name: "redis", kind: "cache", required: false, check: () => kv.ping() };
}

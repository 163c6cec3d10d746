import type { KeyValueStore } from "./kv-store.js";
import { createMemoryKeyValueStore } from "./memory-kv-store.js";
import { createRedisKeyValueStore } from "./redis-kv-store.js";

/** openKeyValueStore gives Redis when REDIS_URL is set, else the in-process store. */
export function openKeyValueStore(env: Record<string, string | undefined> = process.env): KeyValueStore {
  const url = env.REDIS_URL;
  if (url === undefined || url === "") return createMemoryKeyValueStore();
  if (!/^rediss?:\/\//.test(url)) throw new Error(`REDIS_URL must be redis://… or rediss://…, got "${url.replace(/:[^:@/]*@/, ":***@")}"`);
  return createRedisKeyValueStore(url);
}

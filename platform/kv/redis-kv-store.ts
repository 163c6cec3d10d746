import { Redis } from "ioredis";
import type { KeyValueStore } from "./kv-store.js";
import { traceRedisCommands, watchRedisConnection } from "./redis-telemetry.js";

/**
 * createRedisKeyValueStore is the KeyValueStore on Redis (ElastiCache in
 * production) through ioredis: one connection for commands and, once a
 * channel is subscribed, one for subscriptions (Redis requires it). Commands
 * fail fast while Redis is down (no offline queue), so callers can degrade.
 */
export function createRedisKeyValueStore(url: string): KeyValueStore {
  const options = { lazyConnect: false, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2_000 };
  traceRedisCommands();
  const redis = new Redis(url, options);
  const unwatch = [watchRedisConnection(redis, "commands")];
  // Errors surface on the commands; without a listener ioredis would log each reconnect as unhandled.
  redis.on("error", () => undefined);
  let subscriber: Redis | undefined;
  const handlers = new Map<string, Set<(m: string) => void>>();
  let everReady = false;
  redis.on("ready", () => (everReady = true));
  // Wait for Redis only while it first connects; once it has been up, a lost
  // connection fails commands at once (while ioredis reconnects in the
  // background), so a Redis outage costs callers nothing but a fallback.
  const ready = (): Promise<void> => {
    if (redis.status === "ready") return Promise.resolve();
    if (everReady || redis.status === "reconnecting" || redis.status === "end" || redis.status === "close") {
      return Promise.reject(new Error(`redis at ${url} is unavailable (${redis.status})`));
    }
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`redis at ${url} is not ready (${redis.status})`)), 2_000);
      redis.once("ready", () => {
        clearTimeout(t);
        resolve();
      });
    });
  };
  return {
    kind: "redis",
    async get(key) {
      await ready();
      return (await redis.get(key)) ?? undefined;
    },
    async set(key, value, ttlMs) {
      await ready();
      await redis.set(key, value, "PX", ttlMs);
    },
    async hset(key, field, value, ttlMs) {
      await ready();
      await redis.multi().hset(key, field, value).pexpire(key, ttlMs).exec();
    },
    async hgetall(key) {
      await ready();
      return redis.hgetall(key);
    },
    async incr(key, windowMs) {
      await ready();
      // One round trip: count, start the window on the first hit, and read what is left of it.
      const res = await redis.multi().incr(key).pexpire(key, windowMs, "NX").pttl(key).exec();
      const count = Number(res?.[0]?.[1]);
      const ttl = Number(res?.[2]?.[1]);
      return { count, resetMs: ttl > 0 ? ttl : windowMs };
    },
    async publish(channel, message) {
      await ready();
      await redis.publish(channel, message);
    },
    async subscribe(channel, onMessage) {
      if (!subscriber) {
        subscriber = redis.duplicate({ enableOfflineQueue: true });
        unwatch.push(watchRedisConnection(subscriber, "subscriber"));
        subscriber.on("error", () => undefined);
        subscriber.on("message", (ch: string, m: string) => handlers.get(ch)?.forEach((h) => h(m)));
      }
      let set = handlers.get(channel);
      if (!set) {
        set = new Set();
        handlers.set(channel, set);
        await subscriber.subscribe(channel);
      }
      set.add(onMessage);
      return async () => {
        set.delete(onMessage);
        if (set.size === 0) {
          handlers.delete(channel);
          await subscriber?.unsubscribe(channel);
        }
      };
    },
    async ping() {
      try {
        await ready();
        return (await redis.ping()) === "PONG";
      } catch {
        return false;
      }
    },
    async close() {
      unwatch.forEach((u) => u());
      subscriber?.disconnect();
      redis.disconnect();
    },
  };
}

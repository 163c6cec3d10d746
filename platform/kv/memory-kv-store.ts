import { EventEmitter } from "node:events";
import type { KeyValueStore } from "./kv-store.js";

interface Entry<T> {
  value: T;
  expires: number;
}

/**
 * createMemoryKeyValueStore is the embedded KeyValueStore: Maps with expiry
 * times and an EventEmitter for channels. Expired entries are dropped when
 * read and swept once a minute.
 */
export function createMemoryKeyValueStore(): KeyValueStore {
  const strings = new Map<string, Entry<string>>();
  const hashes = new Map<string, Entry<Map<string, string>>>();
  const counters = new Map<string, Entry<number>>();
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const live = <T>(m: Map<string, Entry<T>>, key: string): Entry<T> | undefined => {
    const e = m.get(key);
    if (e && e.expires <= Date.now()) {
      m.delete(key);
      return undefined;
    }
    return e;
  };
  const sweep = setInterval(() => {
    for (const m of [strings, hashes, counters] as Map<string, Entry<unknown>>[]) for (const k of m.keys()) live(m, k);
  }, 60_000);
  sweep.unref();
  return {
    kind: "memory",
    async get(key) {
      return live(strings, key)?.value;
    },
    async set(key, value, ttlMs) {
      strings.set(key, { value, expires: Date.now() + ttlMs });
    },
    async hset(key, field, value, ttlMs) {
      const e = live(hashes, key) ?? { value: new Map<string, string>(), expires: 0 };
      e.value.set(field, value);
      e.expires = Date.now() + ttlMs;
      hashes.set(key, e);
    },
    async hgetall(key) {
      return Object.fromEntries(live(hashes, key)?.value ?? []);
    },
    async incr(key, windowMs) {
      const now = Date.now();
      const e = live(counters, key) ?? { value: 0, expires: now + windowMs };
      e.value++;
      counters.set(key, e);
      return { count: e.value, resetMs: e.expires - now };
    },
    async publish(channel, message) {
      // Delivered asynchronously, as Redis delivers it.
      setImmediate(() => events.emit(channel, message));
    },
    async subscribe(channel, onMessage) {
      events.on(channel, onMessage);
      return async () => void events.off(channel, onMessage);
    },
    async ping() {
      return true;
    },
    async close() {
      clearInterval(sweep);
      events.removeAllListeners();
    },
  };
}

/**
 * KeyValueStore is the shared, short-lived state of the mesh: caches,
 * shared context between the steps of a run, rate-limit counters and event
 * channels. Redis implements it in production (REDIS_URL); the embedded
 * default is in-process. One contract suite (kv-store.contract.ts) runs
 * against both.
 */
export interface KeyValueStore {
  /** kind says which implementation this is: `redis` or `memory`. */
  readonly kind: "redis" | "memory";
  /** get reads a string value; undefined when absent or expired. */
  get(key: string): Promise<string | undefined>;
  /** set writes a string value that expires after `ttlMs`. */
  set(key: string, value: string, ttlMs: number): Promise<void>;
  /** hset writes one field of a hash and (re)sets the whole hash's expiry. */
  hset(key: string, field: string, value: string, ttlMs: number): Promise<void>;
  /** hgetall reads every field of a hash; {} when absent or expired. */
  hgetall(key: string): Promise<Record<string, string>>;
  /**
   * incr counts a hit in a fixed window: the first hit starts a window of
   * `windowMs`. Returns the count so far and the time left in the window.
   */
  incr(key: string, windowMs: number): Promise<{ count: number; resetMs: number }>;
  /** publish sends a message to every subscriber of a channel. */
  publish(channel: string, message: string): Promise<void>;
  /** subscribe calls `onMessage` for each message on a channel until the returned function is called. */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>>;
  /** ping tells whether the store answers. */
  ping(): Promise<boolean>;
  /** close releases connections. */
  close(): Promise<void>;
}

import { logger } from "../../mesh/logger.js";
import type { KeyValueStore } from "./kv-store.js";

/** RateLimitDecision is the answer for one request. */
export interface RateLimitDecision {
  /** allowed says whether the request may go on. */
  readonly allowed: boolean;
  /** limit is the number of requests a window allows. */
  readonly limit: number;
  /** remaining is what is left of the window's allowance. */
  readonly remaining: number;
  /** resetMs is the time until the window ends. */
  readonly resetMs: number;
}

/** RateLimiter counts requests per key in fixed windows shared by every instance. */
export interface RateLimiter {
  /** hit counts one request for `key` and says whether it is within the limit. */
  hit(key: string): Promise<RateLimitDecision>;
}

/**
 * createRateLimiter counts on the KeyValueStore (Redis across instances). It
 * fails open: when the store is down, requests pass (with one warning per
 * outage) rather than the whole API going down with the cache.
 */
export function createRateLimiter(
  kv: KeyValueStore,
  options: { limit: number; windowMs: number },
  warn: (m: string) => void = (m) => logger("rate-limit").warn(m),
): RateLimiter {
  let failing = false;
  return {
    async hit(key) {
      try {
        const { count, resetMs } = await kv.incr(`rl:${key}`, options.windowMs);
        failing = false;
        return { allowed: count <= options.limit, limit: options.limit, remaining: Math.max(0, options.limit - count), resetMs };
      } catch (e) {
        if (!failing) warn(`rate limiter unavailable, letting requests through: ${(e as Error).message}`);
        failing = true;
        return { allowed: true, limit: options.limit, remaining: options.limit, resetMs: options.windowMs };
      }
    },
  };
}

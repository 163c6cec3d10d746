import { describe, expect, it } from "vitest";
import { redisAvailable, redisUrl } from "../../test/support/databases.js";
import { kvStoreContract } from "./kv-store.contract.js";
import { createMemoryKeyValueStore } from "./memory-kv-store.js";
import { openKeyValueStore } from "./open-kv-store.js";
import { createRedisKeyValueStore } from "./redis-kv-store.js";

kvStoreContract("in-process", async () => createMemoryKeyValueStore());
kvStoreContract("Redis", async () => ((await redisAvailable("KeyValueStore contract on Redis")) ? createRedisKeyValueStore(redisUrl()) : undefined));

describe("openKeyValueStore", () => {
  it("is in-process without REDIS_URL, Redis with it, and rejects a URL that is not redis://", async () => {
    const mem = openKeyValueStore({});
    expect(mem.kind).toBe("memory");
    await mem.close();
    const redis = openKeyValueStore({ REDIS_URL: "redis://127.0.0.1:1" });
    expect(redis.kind).toBe("redis");
    await redis.close();
    expect(() => openKeyValueStore({ REDIS_URL: "http://user:pw@host" })).toThrow(/REDIS_URL must be redis:\/\/.*\*\*\*/);
  });

  it("a Redis that does not answer fails commands quickly instead of queueing them", async () => {
    const kv = createRedisKeyValueStore("redis://127.0.0.1:1");
    expect(await kv.ping()).toBe(false);
    await expect(kv.get("x")).rejects.toThrow();
    await kv.close();
  });
});

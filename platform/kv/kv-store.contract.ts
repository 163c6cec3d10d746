import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KeyValueStore } from "./kv-store.js";

/**
 * kvStoreContract is the behaviour every KeyValueStore must have; it runs
 * against the in-process store and a real Redis. Keys carry a random prefix,
 * so runs never see each other's data.
 */
export function kvStoreContract(name: string, open: () => Promise<KeyValueStore | undefined>): void {
  describe(`KeyValueStore contract: ${name}`, () => {
    let kv: KeyValueStore | undefined;
    const p = `test:${randomBytes(4).toString("hex")}:`;
    beforeAll(async () => {
      kv = await open();
    });
    afterAll(async () => {
      await kv?.close();
    });
    const test = (title: string, fn: (kv: KeyValueStore) => Promise<void>) => it(title, async (ctx) => (kv ? fn(kv) : ctx.skip()));

    test("get returns what set stored, until it expires", async (kv) => {
      await kv.set(`${p}a`, "one", 200);
      expect(await kv.get(`${p}a`)).toBe("one");
      expect(await kv.get(`${p}missing`)).toBeUndefined();
      await sleep(350);
      expect(await kv.get(`${p}a`)).toBeUndefined();
    });

    test("hash fields accumulate, and each write renews the hash's expiry", async (kv) => {
      await kv.hset(`${p}h`, "icp_builder", '{"icp":"x"}', 300);
      await kv.hset(`${p}h`, "copywriter", '{"copy":"y"}', 300);
      expect(await kv.hgetall(`${p}h`)).toEqual({ icp_builder: '{"icp":"x"}', copywriter: '{"copy":"y"}' });
      expect(await kv.hgetall(`${p}none`)).toEqual({});
      await sleep(450);
      expect(await kv.hgetall(`${p}h`)).toEqual({});
    });

    test("incr counts hits in a fixed window that starts with the first hit", async (kv) => {
      const a = await kv.incr(`${p}c`, 300);
      const b = await kv.incr(`${p}c`, 300);
      expect([a.count, b.count]).toEqual([1, 2]);
      expect(b.resetMs).toBeGreaterThan(0);
      expect(b.resetMs).toBeLessThanOrEqual(300);
      await sleep(400);
      expect((await kv.incr(`${p}c`, 300)).count).toBe(1);
    });

    test("publish reaches every subscriber of the channel, and only until it unsubscribes", async (kv) => {
      const got: string[] = [];
      const stop = await kv.subscribe(`${p}ch`, (m) => got.push(m));
      await kv.publish(`${p}ch`, "one");
      await kv.publish(`${p}other`, "not for us");
      for (let i = 0; i < 50 && got.length < 1; i++) await sleep(10);
      expect(got).toEqual(["one"]);
      await stop();
      await kv.publish(`${p}ch`, "two");
      await sleep(100);
      expect(got).toEqual(["one"]);
    });

    test("ping answers", async (kv) => {
      expect(await kv.ping()).toBe(true);
    });
  });
}

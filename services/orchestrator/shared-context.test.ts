import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { uuidv7 } from "uuidv7";
import { describe, expect, it } from "vitest";
import { Run_State, RunSchema } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { createMemoryKeyValueStore } from "../../platform/kv/memory-kv-store.js";
import { createRedisKeyValueStore } from "../../platform/kv/redis-kv-store.js";
import { redisAvailable, redisUrl } from "../../test/support/databases.js";
import { createMemoryRunStore } from "./run-store.js";
import { createSharedContext } from "./shared-context.js";

async function withRun(org: string) {
  const store = createMemoryRunStore();
  const run = create(RunSchema, { name: `runs/${uuidv7()}`, state: Run_State.RUNNING, createTime: timestampNow(), updateTime: timestampNow() });
  await store.create(org, run);
  return { store, run: run.name };
}

describe("shared context", () => {
  it("is written to both stores and read back per organization and run", async () => {
    const kv = createMemoryKeyValueStore();
    const { store, run } = await withRun("acme");
    const ctx = createSharedContext(kv, store, 60_000);
    await ctx.put("acme", run, "icp_builder", { icp: "retailers" });
    await ctx.put("acme", run, "copywriter", { headline: "Hi" });
    expect(await ctx.get("acme", run)).toEqual({ icp_builder: { icp: "retailers" }, copywriter: { headline: "Hi" } });
    expect(await ctx.get("globex", run)).toEqual({});
    expect(await store.getContext("acme", run)).toEqual({ icp_builder: { icp: "retailers" }, copywriter: { headline: "Hi" } });
  });

  it("falls back to the run store, with one warning, when the key-value store is down", async () => {
    const { store, run } = await withRun("acme");
    const down = createRedisKeyValueStore("redis://127.0.0.1:1");
    const warnings: string[] = [];
    const ctx = createSharedContext(down, store, 60_000, (m) => warnings.push(m));
    await ctx.put("acme", run, "icp_builder", { icp: "retailers" });
    expect(await ctx.get("acme", run)).toEqual({ icp_builder: { icp: "retailers" } });
    expect(warnings).toHaveLength(1);
    await down.close();
  });

  it("lives in Redis as a hash per organization and run, with a TTL", async (t) => {
    if (!(await redisAvailable("shared context on Redis"))) return t.skip();
    const kv = createRedisKeyValueStore(redisUrl());
    const { store, run } = await withRun("acme");
    const ctx = createSharedContext(kv, store, 60_000);
    await ctx.put("acme", run, "icp_builder", { icp: "retailers" });
    expect(await kv.hgetall(`rf:ctx:acme:${run}`)).toEqual({ icp_builder: '{"icp":"retailers"}' });
    // A fresh orchestrator instance (no memory of the run) reads it from Redis.
    const other = createSharedContext(kv, createMemoryRunStore(), 60_000);
    expect(await other.get("acme", run)).toEqual({ icp_builder: { icp: "retailers" } });
    await kv.close();
  });
});

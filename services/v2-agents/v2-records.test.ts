import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AssetKind, AssetService } from "../../gen/raptorflow/v2/asset_pb.js";
import { CampaignService, CampaignState } from "../../gen/raptorflow/v2/campaign_pb.js";
import { MemoryKind, MemoryService } from "../../gen/raptorflow/v2/memory_pb.js";
import { organizationHeader } from "../../mesh/call-context.js";
import { plainUnary } from "../../test/support/grpc-client.js";
import { build } from "./server.js";

const as = (org: string) => {
  const md = new grpc.Metadata();
  md.set(organizationHeader, org);
  return { metadata: md };
};

/** failure runs a call that must fail and returns its gRPC status. */
const failure = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error("the call succeeded");
    },
    (e: grpc.ServiceError) => e,
  );

describe.each([
  ["embedded PostgreSQL (PGlite)", "postgres"],
  ["in-process store", "memory"],
])("V2 records over gRPC, %s", (_title, store) => {
  let dir: string;
  let server: Awaited<ReturnType<typeof build>>;
  let address: string;
  const env = () => ({ ...process.env, NODE_ENV: "test", RAPTORFLOW_DATA_DIR: dir, DATABASE_URL: "", DATA_STORE: store });
  const start = async () => {
    server = await build(env());
    address = `127.0.0.1:${await server.listen(0, "127.0.0.1")}`;
    server.setServing(true);
  };
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "raptorflow-v2-"));
    await start();
  }, 30_000);
  afterAll(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("creates a campaign with its assets, lists the assets of one campaign, and deletes only with force", async () => {
    const { message: campaign } = await plainUnary(address, CampaignService.method.createCampaign, {
      campaign: { displayName: "Spring e-bike launch", goal: "500 test rides in April", channels: ["email", "instagram"], budgetUsd: 12000, state: CampaignState.DRAFT },
    }, as("acme"));
    expect(campaign.name).toMatch(/^campaigns\/[0-9a-f-]{36}$/);
    expect(campaign.createTime).toBeDefined();
    const other = (await plainUnary(address, CampaignService.method.createCampaign, { campaign: { displayName: "Autumn clearance" } }, as("acme"))).message;
    const made: string[] = [];
    for (const title of ["Launch email", "Instagram carousel"]) {
      const { message } = await plainUnary(address, AssetService.method.createAsset, {
        asset: { displayName: title, campaign: campaign.name, kind: AssetKind.EMAIL, content: `${title}: ride it before you buy it.`, agent: "agents/copywriter" },
      }, as("acme"));
      made.push(message.name);
    }
    await plainUnary(address, AssetService.method.createAsset, { asset: { displayName: "Clearance banner", campaign: other.name, kind: AssetKind.AD } }, as("acme"));

    const listed = await plainUnary(address, AssetService.method.listAssets, { campaign: campaign.name, pageSize: 10 }, as("acme"));
    expect(listed.message.assets.map((a) => a.name)).toEqual([...made].reverse());

    const refused = await failure(plainUnary(address, CampaignService.method.deleteCampaign, { name: campaign.name }, as("acme")));
    expect(refused.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(refused.details).toContain("assets");
    await plainUnary(address, CampaignService.method.deleteCampaign, { name: campaign.name, force: true }, as("acme"));
    for (const name of made) expect((await failure(plainUnary(address, AssetService.method.getAsset, { name }, as("acme")))).code).toBe(grpc.status.NOT_FOUND);
    // The other campaign's asset is untouched.
    expect((await plainUnary(address, AssetService.method.listAssets, { campaign: other.name }, as("acme"))).message.assets).toHaveLength(1);
  });

  it("rejects bad input naming the field", async () => {
    const noName = await failure(plainUnary(address, CampaignService.method.createCampaign, { campaign: { goal: "no name" } }, as("acme")));
    expect(noName.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(noName.details).toContain("display_name");
    const badRef = await failure(plainUnary(address, AssetService.method.createAsset, { asset: { displayName: "x", campaign: "icps/123" } }, as("acme")));
    expect(badRef.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(badRef.details).toContain("campaign");
    const noKind = await failure(plainUnary(address, MemoryService.method.createMemory, { memory: { content: "no kind" } }, as("acme")));
    expect(noKind.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(noKind.details).toContain("kind");
    const mask = await failure(
      plainUnary(address, CampaignService.method.updateCampaign, { campaign: { name: "campaigns/0193a0a0-0000-7000-8000-000000000000" }, updateMask: { paths: ["nope"] } }, as("acme")),
    );
    expect(mask.code).toBe(grpc.status.NOT_FOUND);
  });

  it("remembers, searches by meaning and forgets memories, per organization", async () => {
    const voice = await plainUnary(address, MemoryService.method.createMemory, {
      memory: { kind: MemoryKind.BRAND, content: "Our voice is plain and warm; we never promise speed records.", source: "user", labels: { area: "voice" } },
    }, as("acme"));
    await plainUnary(address, MemoryService.method.createMemory, {
      memory: { kind: MemoryKind.LESSON, content: "Test-ride offers converted three times better than discounts in spring.", source: "runs/abc" },
    }, as("acme"));
    const found = await plainUnary(address, MemoryService.method.searchMemories, { query: "what converted better, test rides or discounts?", pageSize: 2 }, as("acme"));
    expect(found.message.matches[0].memory?.kind).toBe(MemoryKind.LESSON);
    expect(found.message.matches[0].similarity).toBeGreaterThan(found.message.matches[1].similarity);
    const brandOnly = await plainUnary(address, MemoryService.method.searchMemories, { query: "test rides", kinds: [MemoryKind.BRAND] }, as("acme"));
    expect(brandOnly.message.matches.map((m) => m.memory?.name)).toEqual([voice.message.name]);
    // Another organization sees none of it.
    expect((await plainUnary(address, MemoryService.method.searchMemories, { query: "test rides" }, as("globex"))).message.matches).toEqual([]);
    expect((await failure(plainUnary(address, MemoryService.method.getMemory, { name: voice.message.name }, as("globex")))).code).toBe(grpc.status.NOT_FOUND);
    expect((await failure(plainUnary(address, MemoryService.method.deleteMemory, { name: voice.message.name }, as("globex")))).code).toBe(grpc.status.NOT_FOUND);
    const lessons = await plainUnary(address, MemoryService.method.listMemories, { kind: MemoryKind.LESSON }, as("acme"));
    expect(lessons.message.memories).toHaveLength(1);
    await plainUnary(address, MemoryService.method.deleteMemory, { name: voice.message.name }, as("acme"));
    expect((await failure(plainUnary(address, MemoryService.method.getMemory, { name: voice.message.name }, as("acme")))).code).toBe(grpc.status.NOT_FOUND);
  });

  it("another organization can neither read, change nor delete a campaign", async () => {
    const { message } = await plainUnary(address, CampaignService.method.createCampaign, { campaign: { displayName: "Secret launch" } }, as("acme"));
    for (const call of [
      plainUnary(address, CampaignService.method.getCampaign, { name: message.name }, as("globex")),
      plainUnary(address, CampaignService.method.updateCampaign, { campaign: { name: message.name, displayName: "Mine now" } }, as("globex")),
      plainUnary(address, CampaignService.method.deleteCampaign, { name: message.name, force: true }, as("globex")),
    ]) {
      expect((await failure(call)).code).toBe(grpc.status.NOT_FOUND);
    }
    expect((await plainUnary(address, CampaignService.method.getCampaign, { name: message.name }, as("acme"))).message.displayName).toBe("Secret launch");
  });

  it.runIf(store === "postgres")("keeps campaigns and memories across a restart", async () => {
    const { message: c } = await plainUnary(address, CampaignService.method.createCampaign, { campaign: { displayName: "Survives restarts" } }, as("acme"));
    const { message: m } = await plainUnary(address, MemoryService.method.createMemory, { memory: { kind: MemoryKind.KNOWLEDGE, content: "Families buy cargo bikes." } }, as("acme"));
    await server.close();
    await start();
    expect((await plainUnary(address, CampaignService.method.getCampaign, { name: c.name }, as("acme"))).message.displayName).toBe("Survives restarts");
    const found = await plainUnary(address, MemoryService.method.searchMemories, { query: "who buys cargo bikes" }, as("acme"));
    expect(found.message.matches[0].memory?.name).toBe(m.name);
  }, 30_000);
});

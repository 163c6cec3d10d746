import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "../support/mesh.js";

// The legacy V1 REST routes, called as an old client would (plain fetch, JSON bodies), through the real
// mesh: gateway -> v1-agents (and the orchestrator for runs). docs/legacy-v1.md lists what is tested here.
let mesh: TestMesh;
beforeAll(async () => {
  mesh = await startTestMesh();
});
afterAll(async () => {
  await mesh?.stop();
});

const call = (method: string, path: string, body?: unknown) => mesh.rest(method, path, body);

const resources = [
  { collection: "icps", create: { displayName: "Mid-market retailers", industry: "retail", painPoints: ["stock-outs"] }, change: { industry: "grocery" } },
  { collection: "cohorts", create: { displayName: "Weekend shoppers", tags: ["coupons", "family"], sizeEstimate: "1200" }, change: { description: "buy on Saturdays" } },
  { collection: "campaigns", create: { displayName: "Spring sale", status: "draft", channels: ["email"], budgetUsd: 5000 }, change: { status: "active" } },
  { collection: "moves", create: { displayName: "Referral push", status: "planned", week: 2 }, change: { week: 3 } },
  { collection: "metrics", create: { displayName: "click_through_rate", value: 2.5, unit: "percent" }, change: { value: 3.1 } },
  { collection: "assets", create: { displayName: "Launch email", kind: "email", content: "Hello!" }, change: { content: "Hello again!" } },
];

describe.each(resources)("legacy /api/$collection", ({ collection, create, change }) => {
  it("create, get, list, update with a mask, delete — on /api and /v1", async () => {
    const created = await call("POST", `/api/${collection}`, create);
    expect(created.status).toBe(200);
    expect(created.json.name).toMatch(new RegExp(`^${collection}/[0-9a-f-]+$`));
    expect(created.json).toMatchObject(create);
    expect(created.json.createTime).toBeDefined();

    const got = await call("GET", `/api/${created.json.name}`);
    expect(got.json).toEqual(created.json);
    const viaV1 = await call("GET", `/v1/${created.json.name}`);
    expect(viaV1.json).toEqual(created.json);

    const list = await call("GET", `/api/${collection}?pageSize=100`);
    expect(list.status).toBe(200);
    expect(list.json[collection].map((r: { name: string }) => r.name)).toContain(created.json.name);

    const field = Object.keys(change)[0];
    const updated = await call("PATCH", `/api/${created.json.name}?updateMask=${field}`, { ...change, displayName: "ignored: not in the mask" });
    expect(updated.status).toBe(200);
    expect(updated.json).toMatchObject(change);
    expect(updated.json.displayName).toBe(create.displayName);

    const badMask = await call("PATCH", `/api/${created.json.name}?updateMask=createTime`, {});
    expect(badMask.status).toBe(400);
    expect(badMask.json.message).toContain("create_time");

    expect((await call("DELETE", `/v1/${created.json.name}`)).status).toBe(200);
    expect((await call("GET", `/api/${created.json.name}`)).status).toBe(404);
    expect((await call("DELETE", `/api/${created.json.name}`)).status).toBe(404);
  });

  it("a bad request is a 400 naming the field", async () => {
    const res = await call("POST", `/api/${collection}`, { ...create, displayName: "" });
    expect(res.status).toBe(400);
    expect(res.json.message).toContain("display_name");
  });
});

describe("legacy actions", () => {
  it("POST /api/enrich runs the company enrich agent", async () => {
    const res = await call("POST", "/api/enrich", { domain: "acme.com", companyName: "Acme" });
    expect(res.status).toBe(200);
    expect(res.json.domain).toBe("acme.com");
    expect(res.json.result.agent).toBe("agents/company_enrich");
    expect(res.json.result.provider).toBe("offline");
    expect(Object.keys(res.json.profile).length).toBeGreaterThan(0);
    const bad = await call("POST", "/api/enrich", { domain: "not a domain" });
    expect(bad.status).toBe(400);
    expect(bad.json.message).toContain("domain");
  });

  it("POST /api/radar runs the trend scraper, then the competitor surface with the trends as context", async () => {
    const res = await call("POST", "/api/radar", { topic: "B2B analytics for retailers", competitors: ["Looker"] });
    expect(res.status).toBe(200);
    expect(res.json.results.map((r: { agent: string }) => r.agent)).toEqual(["agents/trend_scraper", "agents/competitor_surface"]);
    expect(Object.keys(res.json.trends).length).toBeGreaterThan(0);
    expect(Object.keys(res.json.competitors).length).toBeGreaterThan(0);
  });
});

describe("old clients' JSON", () => {
  it("bodies with the proto field names (snake_case) are accepted as the lowerCamelCase ones", async () => {
    const created = await call("POST", "/api/icps", { display_name: "Snake-case client", company_size: "10-50", pain_points: ["churn"] });
    expect(created.status).toBe(200);
    expect(created.json).toMatchObject({ displayName: "Snake-case client", companySize: "10-50", painPoints: ["churn"] });
    // A field mask is written as proto3 JSON writes it: lowerCamelCase paths.
    const patched = await call("PATCH", `/api/${created.json.name}?update_mask=companySize`, { company_size: "50-200" });
    expect(patched.json.companySize).toBe("50-200");
    const snakeMask = await call("PATCH", `/api/${created.json.name}?updateMask=company_size`, { company_size: "1-10" });
    expect(snakeMask.status).toBe(400);
    expect(snakeMask.json.message).toContain("update_mask");
  });

  it("a field the contract does not have is a 400 naming it (the original backend ignored it)", async () => {
    const res = await call("POST", "/api/cohorts", { displayName: "With an id", id: "42" });
    expect(res.status).toBe(400);
    expect(res.json.message).toContain("id");
  });

  it("an output-only field a client sends is ignored, never stored", async () => {
    const res = await call("POST", "/api/icps", { displayName: "Forged origin", origin: { agent: "agents/icp_builder", provider: "openai" } });
    expect(res.status).toBe(200);
    expect(res.json.origin).toBeUndefined();
  });
});

describe("list filters and deletes with dependants", () => {
  it("a cohort targeted by a campaign is not deleted (400 FAILED_PRECONDITION) unless forced; force takes it out of the campaign", async () => {
    const cohort = (await call("POST", "/api/cohorts", { displayName: "Targeted" })).json;
    const other = (await call("POST", "/api/cohorts", { displayName: "Also targeted" })).json;
    const campaign = (await call("POST", "/api/campaigns", { displayName: "Uses cohorts", cohorts: [cohort.name, other.name] })).json;
    const refused = await call("DELETE", `/api/${cohort.name}`);
    expect(refused.status).toBe(400);
    expect(refused.json.code).toBe(9); // FAILED_PRECONDITION
    expect(refused.json.message).toContain("campaigns");
    expect(refused.json.details.map((d: { "@type": string }) => d["@type"])).toEqual(["type.googleapis.com/google.rpc.ErrorInfo", "type.googleapis.com/google.rpc.PreconditionFailure"]);
    expect((await call("DELETE", `/api/${cohort.name}?force=true`)).status).toBe(200);
    expect((await call("GET", `/api/${campaign.name}`)).json.cohorts).toEqual([other.name]);
  });

  it("a campaign with moves and metrics: force keeps the moves (without the campaign) and deletes the metrics; lists filter by reference", async () => {
    const campaign = (await call("POST", "/api/campaigns", { displayName: "Has parts" })).json;
    const move = (await call("POST", "/api/moves", { displayName: "Part", campaign: campaign.name })).json;
    const metric = (await call("POST", "/api/metrics", { displayName: "ctr", subject: campaign.name, value: 1.5 })).json;
    expect((await call("GET", `/api/moves?campaign=${campaign.name}`)).json.moves.map((m: { name: string }) => m.name)).toEqual([move.name]);
    expect((await call("GET", `/api/metrics?subject=${campaign.name}`)).json.metrics.map((m: { name: string }) => m.name)).toEqual([metric.name]);
    expect((await call("DELETE", `/v1/${campaign.name}`)).status).toBe(400);
    expect((await call("DELETE", `/v1/${campaign.name}?force=true`)).status).toBe(200);
    expect((await call("GET", `/api/${move.name}`)).json.campaign).toBeUndefined();
    expect((await call("GET", `/api/${metric.name}`)).status).toBe(404);
  });
});

describe("V1 agent results as records", () => {
  it("a run through the whole mesh keeps the agent's answer as a record, readable on the legacy route, with its origin", async () => {
    const run = await call("POST", "/v3/runs", { input: "Build our ideal customer profile", agents: ["agents/icp_builder"], checks: "CHECKS_OFF" });
    expect(run.status).toBe(201);
    expect(run.json.state).toBe("STATE_SUCCEEDED");
    const [name] = run.json.steps[0].result.records;
    expect(name).toMatch(/^icps\/[0-9a-f-]{36}$/);
    const icp = await call("GET", `/api/${name}`);
    expect(icp.status).toBe(200);
    expect(icp.json.origin).toMatchObject({ agent: "agents/icp_builder", run: run.json.name, provider: "offline" });
    expect(icp.json.attributes.icp).toBeDefined();
  });

  it("POST /api/enrich and /api/radar keep their results; the records are on their /v1 routes", async () => {
    const enriched = await call("POST", "/api/enrich", { domain: "globex.com" });
    const [profile] = enriched.json.result.records;
    const insight = await call("GET", `/v1/${profile}`);
    expect(insight.json).toMatchObject({ kind: "company_profile", origin: { agent: "agents/company_enrich" } });
    const radar = await call("POST", "/api/radar", { topic: "Retail media networks" });
    const [trends, surface] = radar.json.results.map((r: { records: string[] }) => r.records[0]);
    expect((await call("GET", `/v1/${trends}`)).json.kind).toBe("trend_report");
    expect((await call("GET", `/v1/${surface}`)).json.market).toBe("Retail media networks");
    expect((await call("GET", "/v1/insights?kind=trend_report&pageSize=100")).json.insights.map((i: { name: string }) => i.name)).toContain(trends);
  });

  const added = [
    { collection: "competitorSurfaces", create: { displayName: "Analytics rivals", market: "retail analytics", competitors: ["Looker"] }, change: { market: "grocery analytics" } },
    { collection: "strategyProfiles", create: { displayName: "Land and expand", statement: "Win mid-market grocers" }, change: { winningAspiration: "Default choice for grocers" } },
    { collection: "positionings", create: { displayName: "Analytics for grocers", targetCustomer: "grocers", marketCategory: "retail analytics" }, change: { value: "fewer stock-outs" } },
    { collection: "jtbdMaps", create: { displayName: "Restock on time", coreJob: "Know what to reorder" }, change: { customerSegment: "store managers" } },
    { collection: "monetizationModels", create: { displayName: "Seat pricing", pricingTiers: [{ name: "Starter", priceLow: 19, priceHigh: 19, currency: "USD" }] }, change: { unitEconomics: { cacUsd: 300 } } },
    { collection: "plans", create: { displayName: "Spring launch", timelineWeeks: 12, weeks: [{ week: 1, phase: "prepare", objectives: ["brief"] }] }, change: { launchWeek: 5 } },
    { collection: "insights", create: { displayName: "Notes", kind: "trend_report", subject: "retail" }, change: { subject: "grocery" } },
  ];

  describe.each(added)("/v1/$collection (new: no /api route)", ({ collection, create, change }) => {
    it("create, get, list, update with a mask, delete", async () => {
      const created = await call("POST", `/v1/${collection}`, create);
      expect(created.status).toBe(200);
      expect(created.json).toMatchObject(create);
      expect((await call("GET", `/v1/${created.json.name}`)).json).toEqual(created.json);
      expect((await call("GET", `/v1/${collection}?pageSize=100`)).json[collection].map((r: { name: string }) => r.name)).toContain(created.json.name);
      const field = Object.keys(change)[0];
      const updated = await call("PATCH", `/v1/${created.json.name}?updateMask=${field}`, { ...change, displayName: "not in the mask" });
      expect(updated.json).toMatchObject({ ...change, displayName: create.displayName });
      expect((await call("DELETE", `/v1/${created.json.name}`)).status).toBe(200);
      expect((await call("GET", `/v1/${created.json.name}`)).status).toBe(404);
      expect((await call("GET", `/api/${collection}`)).status).toBe(404);
    });
  });
});

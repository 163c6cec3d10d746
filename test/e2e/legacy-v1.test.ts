import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "../support/mesh.js";

// The legacy V1 REST routes, called as an old client would, through the real mesh.
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

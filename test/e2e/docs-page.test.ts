import { chromium, type Browser, type Locator, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AssetService } from "../../gen/raptorflow/v1/asset_pb.js";
import { CampaignService } from "../../gen/raptorflow/v1/campaign_pb.js";
import { CohortService } from "../../gen/raptorflow/v1/cohort_pb.js";
import { IntelligenceService } from "../../gen/raptorflow/v1/intelligence_pb.js";
import { MetricService } from "../../gen/raptorflow/v1/metric_pb.js";
import { MoveService } from "../../gen/raptorflow/v1/move_pb.js";
import { IcpService } from "../../gen/raptorflow/v1/icp_pb.js";
import { OrchestratorService } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { openApiDocument } from "../../services/gateway/openapi.js";
import { gatewayServices } from "../../services/gateway/server.js";
import { startTestMesh, type TestMesh } from "../support/mesh.js";

/** CHROMIUM is Debian's chromium (CI installs it); CHROMIUM_PATH points elsewhere. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

let mesh: TestMesh;
let browser: Browser;

beforeAll(async () => {
  [mesh, browser] = await Promise.all([
    startTestMesh(),
    chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"] }),
  ]);
});
afterAll(async () => {
  await browser?.close();
  await mesh?.stop();
});

/** openOperation loads /docs and expands one operation, found by its tag and operationId. */
async function openOperation(page: Page, tag: string, operationId: string): Promise<Locator> {
  const res = await page.goto(`${mesh.gatewayUrl}/docs`);
  expect(res?.status(), "GET /docs (is docsPlugin registered in the gateway's build()?)").toBe(200);
  const op = page.locator(`#operations-${tag}-${operationId}`);
  await op.locator(".opblock-summary-control").click();
  return op;
}

/** tryItOut puts an expanded operation in try-it-out mode (the docs open in it: Swagger UI then shows "Cancel"). */
async function tryItOut(op: Locator): Promise<void> {
  const button = op.locator(".try-out button");
  await expect.poll(() => button.first().innerText()).toMatch(/^(Try it out|Cancel)$/);
  if ((await button.first().innerText()) === "Try it out") await button.first().click();
  await expect.poll(() => button.first().innerText()).toBe("Cancel");
}

/** execute clicks Execute and returns the live response's status and body text as Swagger UI shows them. */
async function execute(op: Locator): Promise<{ status: string; body: string }> {
  await op.getByRole("button", { name: "Execute" }).click();
  const row = op.locator(".live-responses-table tbody tr.response");
  await row.waitFor({ timeout: 20_000 });
  return {
    status: (await row.locator("td.response-col_status").innerText()).trim(),
    body: await row.locator("td.response-col_description pre.microlight").first().innerText(),
  };
}

describe("the gateway's API docs", () => {
  it("serves the OpenAPI document of its REST routes at /openapi.json", async () => {
    const res = await fetch(`${mesh.gatewayUrl}/openapi.json`);
    expect(res.status, "GET /openapi.json (is docsPlugin registered in the gateway's build()?)").toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const doc = (await res.json()) as { openapi: string; info: { title: string; version: string }; servers?: { url: string }[] };
    expect(doc.openapi).toBe("3.1.0");
    // Exactly what openApiDocument makes of the gateway's services (whatever title, version and server it was given).
    const expected = openApiDocument({
      services: gatewayServices.map((s) => s.service),
      title: doc.info.title,
      version: doc.info.version,
      serverUrl: doc.servers?.[0]?.url,
    });
    expect(doc).toEqual(JSON.parse(JSON.stringify(expected)));
    // Swagger UI reads the same document.
    expect(await (await fetch(`${mesh.gatewayUrl}/docs/json`)).json()).toEqual(doc);
    // The docs did not take over the gateway's other routes.
    expect((await fetch(`${mesh.gatewayUrl}/healthz`)).status).toBe(200);
    const unknown = await fetch(`${mesh.gatewayUrl}/v3/nope`);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { code: number }).code).toBe(5);
  });

  it("runs POST /v3/routes:explain from the docs page in a browser", { timeout: 60_000 }, async () => {
    const page = await browser.newPage();
    try {
      const op = await openOperation(page, "OrchestratorService", "OrchestratorService_ExplainRoute");
      await expect.poll(() => op.locator(".opblock-summary-path").innerText()).toBe("/v3/routes:explain");
      expect((await op.locator(".opblock-summary-method").innerText()).trim()).toBe("POST");
      await tryItOut(op);
      await op.locator("textarea.body-param__text").fill(JSON.stringify({ input: "Write three ad variants for our spring sale" }));
      const { status, body } = await execute(op);
      expect(status).toBe("200");
      expect(body).toContain('"target"');
      expect(JSON.parse(body).target).toMatch(/^TARGET_(V1|V2|HYBRID)$/);
    } finally {
      await page.close();
    }
  });

  it("sends a resource name path parameter (runs/…) with its slashes from the docs page", { timeout: 60_000 }, async () => {
    const created = await fetch(`${mesh.gatewayUrl}/v3/runs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input: "Build an ideal customer profile for our B2B analytics tool" }),
    });
    expect(created.status).toBe(201);
    const { name } = (await created.json()) as { name: string };
    expect(name).toMatch(/^runs\//);

    const page = await browser.newPage();
    try {
      const op = await openOperation(page, "OrchestratorService", "OrchestratorService_GetRun");
      await tryItOut(op);
      await op.locator('tr[data-param-name="name"] input').fill(name);
      const { status, body } = await execute(op);
      expect(status).toBe("200");
      expect(JSON.parse(body).name).toBe(name);
    } finally {
      await page.close();
    }
  });
});

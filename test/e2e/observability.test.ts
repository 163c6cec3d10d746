import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import type { SpanRecord } from "../../mesh/span-file-exporter.js";
import type { ServiceName } from "../../mesh/topology.js";
import { plainUnary } from "../support/grpc-client.js";
import { startTestMesh, type TestMesh } from "../support/mesh.js";

/*
 * The whole mesh as real processes, each writing its finished spans to a
 * file (RAPTORFLOW_TRACE_DIR): one REST request must make one trace across
 * the gateway, the orchestrator and an agent service, down to the model,
 * database and cache calls. Then metrics, status, readiness, the operations
 * page in a real browser, and health when a service goes away (last: it
 * stops v2-agents).
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const traceDir = mkdtempSync(join(tmpdir(), "raptorflow-traces-"));
let mesh: TestMesh;
let browser: Browser;

beforeAll(async () => {
  [mesh, browser] = await Promise.all([
    startTestMesh({ RAPTORFLOW_TRACE_DIR: traceDir, HEALTH_CHECK_INTERVAL_MS: "300" }),
    chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"] }),
  ]);
});
afterAll(async () => {
  await browser?.close();
  await mesh?.stop();
  rmSync(traceDir, { recursive: true, force: true });
});

/** spansOf reads every service's span file and keeps the spans of one trace. */
function spansOf(traceId: string): SpanRecord[] {
  if (!existsSync(traceDir)) return [];
  return readdirSync(traceDir)
    .flatMap((f) => readFileSync(join(traceDir, f), "utf8").split("\n"))
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as SpanRecord)
    .filter((s) => s.traceId === traceId);
}

/** metricsOf scrapes one service's Prometheus endpoint. */
async function metricsOf(name: ServiceName): Promise<string> {
  const s = mesh.services.find((x) => x.name === name)!;
  expect(s.metricsPort, `${name} announced its metrics port`).toBeGreaterThan(0);
  const res = await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/** series are the lines of a metric whose labels include all of `labels`. */
const series = (text: string, name: string, labels: string[] = []) => text.split("\n").filter((l) => l.startsWith(`${name}{`) && labels.every((x) => l.includes(x)));

const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
const callerSpan = "00f067aa0ba902b7";
let runName = "";
let target = "";

describe("one request, one trace", () => {
  it("POST /v3/runs: gateway → orchestrator → step → agent service → model, database and cache, all in the caller's trace", { timeout: 30_000 }, async () => {
    const res = await fetch(`${mesh.gatewayUrl}/v3/runs`, {
      method: "POST",
      headers: { "content-type": "application/json", traceparent: `00-${callerTrace}-${callerSpan}-01`, "x-request-id": "obs-req-1" },
      body: JSON.stringify({ input: "Build an ideal customer profile for our B2B analytics tool" }),
    });
    expect(res.status).toBe(201);
    const run = (await res.json()) as { name: string; route: { target: string }; steps: { agent: string }[] };
    runName = run.name;
    target = run.route.target.replace("TARGET_", "").toLowerCase();
    const answered = res.headers.get("traceparent")!;
    // The caller's trace continues; the span id is now the gateway's.
    expect(answered).toMatch(new RegExp(`^00-${callerTrace}-[0-9a-f]{16}-01$`));
    expect(answered).not.toContain(callerSpan);

    // Spans are written when they end; the last ones may land just after the answer.
    let spans: SpanRecord[] = [];
    for (let i = 0; i < 50; i++) {
      spans = spansOf(callerTrace);
      if (spans.some((s) => s.service === "gateway" && s.kind === "SERVER") && spans.some((s) => s.name.startsWith("chat "))) break;
      await sleep(100);
    }
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const parentOf = (s: SpanRecord) => byId.get(s.parentSpanId);
    const ancestors = (s: SpanRecord): SpanRecord[] => {
      const out: SpanRecord[] = [];
      for (let p = parentOf(s); p; p = parentOf(p)) out.push(p);
      return out;
    };
    const one = (pred: (s: SpanRecord) => boolean, what: string): SpanRecord => {
      const found = spans.filter(pred);
      expect(found.length, `${what} in ${JSON.stringify(spans.map((s) => `${s.service} ${s.kind} ${s.name}`))}`).toBeGreaterThanOrEqual(1);
      return found[0];
    };

    const gateway = one((s) => s.service === "gateway" && s.kind === "SERVER", "the gateway's server span");
    expect(gateway.parentSpanId).toBe(callerSpan);
    expect(answered).toBe(`00-${callerTrace}-${gateway.spanId}-01`);
    expect(gateway.name).toBe("POST /v3/runs");
    expect(gateway.attributes).toMatchObject({ "http.response.status_code": 201, "rpc.method": "CreateRun", "http.route": "/v3/runs" });

    const gatewayCall = one((s) => s.service === "gateway" && s.kind === "CLIENT" && s.name.endsWith("/CreateRun"), "the gateway's call");
    expect(gatewayCall.parentSpanId).toBe(gateway.spanId);

    const orchestrator = one((s) => s.service === "orchestrator" && s.kind === "SERVER" && s.name.endsWith("/CreateRun"), "the orchestrator's server span");
    expect(orchestrator.parentSpanId).toBe(gatewayCall.spanId);
    expect(orchestrator.attributes).toMatchObject({
      "rpc.system": "grpc",
      "rpc.service": "raptorflow.v3.OrchestratorService",
      "rpc.response.status_code": "OK",
      "raptorflow.organization": "default",
      "raptorflow.run": run.name,
      "raptorflow.run.state": "succeeded",
      "raptorflow.route.target": target,
    });

    const steps = spans.filter((s) => s.service === "orchestrator" && s.name.startsWith("step "));
    expect(steps.map((s) => s.name.slice("step ".length))).toEqual(run.steps.map((s) => s.agent));
    for (const step of steps) {
      expect(step.parentSpanId).toBe(orchestrator.spanId);
      expect(step.attributes).toMatchObject({ "raptorflow.agent": expect.stringMatching(/^agents\//), "raptorflow.step.state": "succeeded", "gen_ai.provider.name": "offline" });
    }

    const [first] = steps;
    const agentCall = one((s) => s.service === "orchestrator" && s.kind === "CLIENT" && s.parentSpanId === first.spanId, "the first step's call");
    expect(agentCall.name).toBe("raptorflow.agent.v1.AgentService/RunAgent");
    const agent = one((s) => s.kind === "SERVER" && s.parentSpanId === agentCall.spanId, "the agent service's server span");
    expect(["v1-agents", "v2-agents"]).toContain(agent.service);
    expect(agent.attributes).toMatchObject({
      "raptorflow.agent": first.attributes["raptorflow.agent"],
      "raptorflow.organization": "default",
      "gen_ai.provider.name": "offline",
      "gen_ai.response.model": expect.stringMatching(/^offline-/),
      "gen_ai.usage.input_tokens": expect.any(Number),
      "raptorflow.cost_usd": 0,
    });

    const model = one((s) => s.service === agent.service && s.name.startsWith("chat ") && ancestors(s).includes(agent), "a model call under the agent's span");
    expect(model.kind).toBe("CLIENT");
    expect(model.attributes).toMatchObject({ "gen_ai.provider.name": "offline", "gen_ai.usage.output_tokens": expect.any(Number) });
    const cache = one((s) => s.service === agent.service && s.name === "cache.get agent-result" && ancestors(s).includes(agent), "the result cache read");
    expect(cache.attributes["raptorflow.cache.hit"]).toBe(false);
    // The orchestrator records the run in its database; the V1 service keeps the agent's result as records in its own.
    const orchestratorDb = one((s) => s.service === "orchestrator" && s.attributes["db.system.name"] === "postgresql" && ancestors(s).includes(orchestrator), "a database span of the orchestrator");
    expect(orchestratorDb.kind).toBe("CLIENT");
    expect(orchestratorDb.attributes["db.query.text"]).toEqual(expect.any(String));
    if (agent.service === "v1-agents") one((s) => s.service === "v1-agents" && s.attributes["db.system.name"] === "postgresql" && ancestors(s).includes(agent), "a database span of v1-agents");

    // Nothing of the request left the trace.
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([callerTrace]));
  });
});

describe("metrics", () => {
  it("every service serves Prometheus metrics on its metrics port: RED per RPC, agents, models, cache, routing, database, runtime", async () => {
    const gateway = await metricsOf("gateway");
    expect(series(gateway, "http_server_request_duration_count", ['http_route="/v3/runs"', 'http_response_status_code="201"', 'service_name="gateway"'])).not.toHaveLength(0);
    expect(series(gateway, "rpc_server_call_duration_count", ['rpc_system="http"', 'rpc_method="CreateRun"', 'rpc_response_status_code="OK"'])).not.toHaveLength(0);
    expect(series(gateway, "rpc_client_call_duration_count", ['peer_service="orchestrator"', 'rpc_method="CreateRun"'])).not.toHaveLength(0);

    const orchestrator = await metricsOf("orchestrator");
    expect(series(orchestrator, "rpc_server_call_duration_bucket", ['rpc_method="CreateRun"', 'rpc_response_status_code="OK"', 'service_name="orchestrator"'])).not.toHaveLength(0);
    expect(series(orchestrator, "raptorflow_routing_decisions_total", [`raptorflow_route_target="${target}"`])).not.toHaveLength(0);
    expect(series(orchestrator, "raptorflow_runs_total", ['raptorflow_run_state="succeeded"'])).not.toHaveLength(0);
    expect(series(orchestrator, "db_client_operation_duration_count", ['db_system_name="postgresql"'])).not.toHaveLength(0);
    expect(series(orchestrator, "db_client_connection_count", ['db_client_connection_state="idle"', 'db_client_connection_pool_name="orchestrator"'])).not.toHaveLength(0);

    const agents = (await metricsOf("v1-agents")) + (await metricsOf("v2-agents"));
    expect(series(agents, "raptorflow_agent_calls_total", ['raptorflow_cache_hit="false"'])).not.toHaveLength(0);
    expect(series(agents, "raptorflow_llm_tokens_total", ['gen_ai_token_type="input"', 'gen_ai_provider_name="offline"'])).not.toHaveLength(0);
    expect(series(agents, "gen_ai_client_operation_duration_count")).not.toHaveLength(0);
    expect(series(agents, "raptorflow_cache_requests_total", ['raptorflow_cache_result="miss"'])).not.toHaveLength(0);

    for (const name of ["gateway", "orchestrator", "v1-agents", "v2-agents", "identity"] as const) {
      const text = await metricsOf(name);
      expect(series(text, "nodejs_eventloop_delay_p99"), name).toHaveLength(1);
      expect(series(text, "v8js_memory_heap_used", [`service_name="${name}"`]), name).toHaveLength(1);
    }
  });
});

describe("status and readiness", () => {
  it("GET /v3/status reports every service (version, uptime, health), the routing mix and the caller's recent runs", async () => {
    const res = await fetch(`${mesh.gatewayUrl}/v3/status`);
    expect(res.status).toBe(200);
    const status = (await res.json()) as { state: string; services: { service: string; state: string; version: string; uptime: string; upstreams?: string[]; routing?: { targets: { target: string; runs: string }[] }; recentRuns?: { name: string; target: string; state: string; duration: string }[] }[] };
    expect(status.state).toBe("SERVING_STATE_SERVING");
    expect(status.services.map((s) => s.service)).toEqual(["gateway", "identity", "v1-agents", "v2-agents", "orchestrator"]);
    for (const s of status.services) {
      expect(s.state, s.service).toBe("SERVING_STATE_SERVING");
      expect(s.version).toMatch(/^\d+\.\d+\.\d+/);
      expect(s.uptime).toMatch(/^\d+(\.\d+)?s$/);
    }
    const orchestrator = status.services.find((s) => s.service === "orchestrator")!;
    expect(orchestrator.upstreams).toEqual(["v1-agents", "v2-agents"]);
    expect(Number(orchestrator.routing!.targets.find((t) => t.target === target)?.runs)).toBeGreaterThanOrEqual(1);
    expect(orchestrator.recentRuns!.find((r) => r.name === runName)).toMatchObject({ target, state: "succeeded", duration: expect.stringMatching(/s$/) });
  });

  it("/readyz and /livez answer on the gateway's port and on every service's metrics port", async () => {
    const ready = await fetch(`${mesh.gatewayUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: "serving", service: "gateway", services: expect.arrayContaining([{ service: "orchestrator", status: "serving" }]) });
    expect((await fetch(`${mesh.gatewayUrl}/livez`)).status).toBe(200);
    for (const s of mesh.services) {
      const r = await fetch(`http://127.0.0.1:${s.metricsPort}/readyz`);
      expect(r.status, s.name).toBe(200);
      expect(((await r.json()) as { service: string }).service).toBe(s.name);
    }
  });
});

describe("the operations page", () => {
  it("shows the topology with live health and rates, and the recent runs with route and duration, in a browser", { timeout: 30_000 }, async () => {
    const page = await browser.newPage();
    try {
      const res = await page.goto(`${mesh.gatewayUrl}/ops?every=0.5`);
      expect(res?.status()).toBe(200);
      await page.locator('#mesh-state[data-state="SERVING"]').waitFor({ timeout: 10_000 });
      for (const name of ["gateway", "orchestrator", "v1-agents", "v2-agents", "identity"]) {
        await page.locator(`#layers .node[data-service="${name}"][data-state="SERVING"]`).waitFor();
      }
      // The topology is drawn from the upstreams: the gateway above the orchestrator, above the agents.
      // Read every node's position at once: the page redraws twice a second, and a node looked up
      // on its own can be the one just replaced (no box).
      const y: Record<string, number> = Object.fromEntries(
        await page.locator("#layers .node").evaluateAll((nodes) => nodes.map((n) => [n.getAttribute("data-service"), n.getBoundingClientRect().y])),
      );
      expect(y.gateway).toBeLessThan(y.orchestrator);
      expect(y.orchestrator).toBeLessThan(y["v1-agents"]);
      expect(await page.locator("#topology svg line").count()).toBeGreaterThanOrEqual(6);
      const row = page.locator(`#runs tr[data-run="${runName}"]`);
      await row.waitFor();
      expect(await row.locator(".route").innerText()).toBe(target);
      expect(await row.locator(".duration").innerText()).toMatch(/^\d+ ms$/);
      expect(Number(await page.locator('#services tr[data-service="orchestrator"] .calls').innerText())).toBeGreaterThan(0);
      expect(await page.locator(`#routing .bar [data-target="${target}"]`).count()).toBe(1);
    } finally {
      await page.close();
    }
  });
});

describe("when a service goes away", () => {
  it("health tells: the orchestrator and the gateway turn degraded, the status and the page show v2-agents down", { timeout: 30_000 }, async () => {
    const v2 = mesh.services.find((s) => s.name === "v2-agents")!;
    const exited = new Promise((r) => v2.child.once("exit", r));
    v2.child.kill("SIGTERM");
    await exited;

    await expect
      .poll(async () => ((await (await fetch(`${mesh.gatewayUrl}/readyz`)).json()) as { status: string }).status, { timeout: 10_000 })
      .toBe("degraded");
    const ready = await fetch(`${mesh.gatewayUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ services: expect.arrayContaining([{ service: "v2-agents", status: "not_serving" }]) });

    const orchestrator = mesh.address("orchestrator");
    await expect
      .poll(async () => (await plainUnary(orchestrator, Health.method.check, { service: "raptorflow.dependency.v2-agents" })).message.status, { timeout: 10_000 })
      .toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
    expect((await plainUnary(orchestrator, Health.method.check, { service: "" })).message.status).toBe(HealthCheckResponse_ServingStatus.SERVING);

    const status = (await (await fetch(`${mesh.gatewayUrl}/v3/status`)).json()) as { state: string; services: { service: string; state: string; error?: string }[] };
    expect(status.state).toBe("SERVING_STATE_DEGRADED");
    expect(status.services.find((s) => s.service === "v2-agents")).toMatchObject({ state: "SERVING_STATE_NOT_SERVING", error: expect.any(String) });
    expect(status.services.find((s) => s.service === "orchestrator")!.state).toBe("SERVING_STATE_DEGRADED");

    const page = await browser.newPage();
    try {
      await page.goto(`${mesh.gatewayUrl}/ops?every=0.5`);
      await page.locator('#mesh-state[data-state="DEGRADED"]').waitFor({ timeout: 10_000 });
      await page.locator('#layers .node[data-service="v2-agents"][data-state="NOT_SERVING"]').waitFor();
      await page.locator('#layers .node[data-service="orchestrator"][data-state="DEGRADED"]').waitFor();
    } finally {
      await page.close();
    }
  });
});

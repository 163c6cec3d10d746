import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RouteMode, Target } from "../../../gen/raptorflow/v3/orchestrator_pb.js";
import { createOpenAIProvider } from "../../../platform/llm/openai-provider.js";
import { startLoopbackOpenAI, type LoopbackOpenAI } from "../../../test/support/openai-loopback.js";
import { withModelAssist } from "./model-assist.js";
import { catalogAgents, inProcessOrchestrator } from "./route-eval.js";
import { createSemanticRouter } from "./semantic-router.js";
import { routerConfigFromEnv } from "./router-config.js";

let loop: LoopbackOpenAI;
beforeAll(async () => {
  loop = await startLoopbackOpenAI();
});
afterAll(async () => {
  await loop?.close();
});

const agents = catalogAgents();
const provider = () => createOpenAIProvider({ apiKey: "test", baseURL: loop.baseURL, models: { fast: "gpt-4o-mini", capable: "gpt-4o" }, maxRetries: 0 });
const assisted = (budgetMs = 2000) => withModelAssist(createSemanticRouter(agents), { provider: provider(), threshold: 0.5, budgetMs });

// A request like none of the router's examples: it is unsure of it.
const vague = "hello there";
const clear = "Write a friendly LinkedIn post announcing our new office in Lisbon";
const ask = async (router: ReturnType<typeof assisted>, input: string, mode = RouteMode.UNSPECIFIED) => {
  const req = { input, mode, agents: [] };
  return router.refine!(req, router.route(req));
};

describe("asking a model when the router is unsure", () => {
  it("re-plans for the model's target when the local router is unsure, and says so", async () => {
    const local = createSemanticRouter(agents).route({ input: vague, mode: RouteMode.UNSPECIFIED, agents: [] });
    expect(local.confidence).toBeLessThan(0.5);
    const other = local.target === Target.V1 ? "TARGET_V2" : "TARGET_V1";
    loop.script({ kind: "ok", content: JSON.stringify({ target: other, reason: "a test answer" }) });
    const before = loop.requests.length;
    const d = await ask(assisted(), vague);
    expect(loop.requests.length).toBe(before + 1);
    const sent = loop.requests.at(-1) as { model: string; messages: { role: string; content: string }[] };
    expect(sent.model).toBe("gpt-4o-mini");
    expect(sent.messages.at(-1)?.content).toContain(`<request>${vague}</request>`);
    expect(`TARGET_${Target[d.target]}`).toBe(other);
    expect(d.steps.length).toBeGreaterThan(0);
    expect(d.confidence).toBe(local.confidence);
    expect(d.reasons[0]).toMatch(/^the router was unsure \(confidence 0\.\d\d < 0\.5\) and chose .*; the model \(gpt-4o-mini\) chose .* — a test answer$/);
  });

  it("keeps its decision when the model agrees, answers nonsense, fails or is too slow", async () => {
    const router = assisted(200);
    const local = router.route({ input: vague, mode: RouteMode.UNSPECIFIED, agents: [] });
    loop.script({ kind: "ok", content: JSON.stringify({ target: `TARGET_${Target[local.target]}`, reason: "same" }) });
    expect((await ask(router, vague)).reasons.at(-1)).toContain("agreed");
    loop.script({ kind: "ok", content: "I think it is marketing" });
    expect((await ask(router, vague)).reasons.at(-1)).toContain("gave no usable target: its own decision stands");
    loop.script({ kind: "status", status: 500 });
    expect((await ask(router, vague)).reasons.at(-1)).toContain("failed");
    loop.script({ kind: "delay", ms: 1500 });
    const slow = await ask(router, vague);
    expect(slow.target).toBe(local.target);
    expect(slow.reasons.at(-1)).toContain("did not answer within 200 ms: its own decision stands");
  });

  it("does not ask about confident decisions, forced modes or named agents", async () => {
    const router = assisted();
    const before = loop.requests.length;
    expect((await ask(router, clear)).target).toBe(Target.V2);
    await ask(router, vague, RouteMode.V1);
    const req = { input: vague, mode: RouteMode.UNSPECIFIED, agents: ["agents/copywriter"] };
    await router.refine!(req, router.route(req));
    expect(loop.requests.length).toBe(before);
  });

  it("ExplainRoute takes the model's answer; the orchestrator asks only when a real model is configured", async () => {
    const other = createSemanticRouter(agents).route({ input: vague, mode: RouteMode.UNSPECIFIED, agents: [] }).target === Target.V1 ? Target.V2 : Target.V1;
    loop.script({ kind: "ok", content: JSON.stringify({ target: `TARGET_${Target[other]}`, reason: "via ExplainRoute" }) });
    const d = await inProcessOrchestrator({ router: (a) => withModelAssist(createSemanticRouter(a), { provider: provider(), budgetMs: 2000 }) }).explainRoute({ input: vague });
    expect(d.target).toBe(other);
    expect(routerConfigFromEnv({}).assist).toBeUndefined();
    expect(routerConfigFromEnv({ LLM_PROVIDER: "openai", OPENAI_BASE_URL: loop.baseURL, ROUTER_MODEL_BUDGET_MS: "0" }).assist).toBeUndefined();
    const config = routerConfigFromEnv({ LLM_PROVIDER: "openai", OPENAI_BASE_URL: loop.baseURL, ROUTER_MODEL_THRESHOLD: "40" });
    expect(config.assist?.threshold).toBe(0.4);
    expect(config.pricing.models).toEqual({ fast: "gpt-4o-mini", capable: "gpt-4o" });
    expect(() => routerConfigFromEnv({ ROUTER_MODEL_BUDGET_MS: "soon" })).toThrow("ROUTER_MODEL_BUDGET_MS must be a whole number");
  });
});

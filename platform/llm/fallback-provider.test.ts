import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { startLoopbackOpenAI, type LoopbackOpenAI } from "../../test/support/openai-loopback.js";
import { createAgentServiceImpl } from "../agents/agent-service.js";
import { loadCatalog } from "../agents/catalog.js";
import { createFallbackProvider } from "./fallback-provider.js";
import type { LlmChunk, LlmProvider } from "./llm-provider.js";
import { createOfflineProvider } from "./offline-provider.js";
import { createOpenAIProvider } from "./openai-provider.js";
import { providerFromEnv } from "./provider-from-env.js";

let server: LoopbackOpenAI;
beforeAll(async () => {
  server = await startLoopbackOpenAI();
});
afterAll(async () => {
  await server.close();
});

const chain = (warnings: string[]) =>
  createFallbackProvider(
    [createOpenAIProvider({ apiKey: "k", baseURL: server.baseURL, models: { fast: "m", capable: "m" }, maxRetries: 0 }), createOfflineProvider()],
    (m) => warnings.push(m),
  );
const req = { system: "s", prompt: "## Request\nhello", tier: "fast" as const, outputKeys: ["a"] };

describe("provider fallback", () => {
  it("answers from the first provider while it is up", async () => {
    const res = await chain([]).complete(req);
    expect(res.provider).toBe("openai");
  });

  it("falls through to the next provider when one is down or saturated, saying so, and labels the answer", async () => {
    const warnings: string[] = [];
    server.script({ kind: "status", status: 503 });
    const res = await chain(warnings).complete(req);
    expect(res.provider).toBe("offline");
    expect(JSON.parse(res.text).a).toMatch(/^\[offline\]/);
    expect(warnings[0]).toMatch(/openai failed .* trying offline/);
    server.script({ kind: "status", status: 429 });
    expect((await chain([]).complete(req)).provider).toBe("offline");
  });

  it("does not fall through on a request the provider rejects", async () => {
    server.script({ kind: "status", status: 400 });
    const err = ConnectError.from(await chain([]).complete(req).catch((e: unknown) => e));
    expect(err.code).toBe(Code.InvalidArgument);
  });

  it("an agent's result names the provider that answered", async () => {
    server.script({ kind: "status", status: 503 });
    const impl = createAgentServiceImpl({ catalog: loadCatalog("services/v2-agents"), provider: chain([]) });
    const client = createClient(AgentService, createRouterTransport(({ service }) => service(AgentService, impl)));
    const res = await client.runAgent({ name: "agents/copywriter", input: "Write a tagline" });
    expect(res.provider).toBe("offline");
  });

  it("in a stream, falls through when a provider fails before yielding anything, but not once it has yielded a tool call; tool calls pass through", async () => {
    const tool = { name: "kpi_calculator", arguments: "{}", result: '{"value":1}' };
    const failing = (name: string, before: LlmChunk[]): LlmProvider & { streams: number } => ({
      name,
      streams: 0,
      model: () => "m",
      complete: () => Promise.reject(new Error("unused")),
      async *stream() {
        this.streams++;
        yield* before;
        throw new ConnectError(`${name} went away`, Code.Unavailable);
      },
    });
    const drain = async (p: LlmProvider) => {
      const chunks: LlmChunk[] = [];
      const error = await (async () => {
        for await (const c of p.stream(req)) chunks.push(c);
      })().then(() => undefined, (e: unknown) => ConnectError.from(e));
      return { chunks, error };
    };

    const warnings: string[] = [];
    const down = failing("down", []);
    const fell = await drain(createFallbackProvider([down, createOfflineProvider()], (m) => warnings.push(m)));
    expect(fell.error).toBeUndefined();
    expect(fell.chunks.at(-1)).toMatchObject({ done: { provider: "offline" } });
    expect(warnings[0]).toMatch(/down failed .* trying offline/);

    const spare = failing("spare", []);
    const kept = await drain(createFallbackProvider([failing("halfway", [{ tool }]), spare]));
    expect(kept.chunks).toEqual([{ tool }]);
    expect(kept.error?.code).toBe(Code.Unavailable);
    expect(kept.error?.rawMessage).toBe("halfway went away");
    expect(spare.streams).toBe(0);
  });

  it("LLM_PROVIDER=openai,offline builds the chain from configuration alone", () => {
    const p = providerFromEnv({ LLM_PROVIDER: "openai,offline", OPENAI_BASE_URL: server.baseURL });
    expect(p.name).toBe("openai-compatible>offline");
  });
});

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import type { JsonObject } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { MemoryKind, MemoryService } from "../../gen/raptorflow/v2/memory_pb.js";
import { organizationHeader } from "../../mesh/call-context.js";
import { fillSchema, type JsonSchema } from "../../platform/llm/json-schema.js";
import { plainUnary } from "../../test/support/grpc-client.js";
import { startLoopbackOpenAI, type LoopbackOpenAI } from "../../test/support/openai-loopback.js";
import { build } from "./server.js";

const as = (org: string) => {
  const md = new grpc.Metadata();
  md.set(organizationHeader, org);
  return { metadata: md };
};

/** userTurn is the user message of a Chat Completions request the loopback server received. */
const userTurn = (body: Record<string, unknown>) => ((body.messages as { role: string; content: string }[]).find((m) => m.role === "user")?.content ?? "");

describe("V2 memory agents on the organization's memory (real openai client, loopback model, PGlite)", () => {
  let dir: string;
  let model: LoopbackOpenAI;
  let server: Awaited<ReturnType<typeof build>>;
  let address: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "raptorflow-v2-memory-"));
    model = await startLoopbackOpenAI();
    server = await build({ ...process.env, NODE_ENV: "test", RAPTORFLOW_DATA_DIR: dir, DATABASE_URL: "", DATA_STORE: "postgres", AGENT_CACHE: "off", LLM_PROVIDER: "openai", OPENAI_BASE_URL: model.baseURL });
    address = `127.0.0.1:${await server.listen(0, "127.0.0.1")}`;
    server.setServing(true);
  }, 30_000);
  afterAll(async () => {
    await server?.close();
    await model?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** brandAnswer is a schema-valid brand_memory answer with the given voice rules. */
  const brandAnswer = async (rules: string[]) => {
    const { message } = await plainUnary(address, AgentService.method.getAgent, { name: "agents/brand_memory" });
    const answer = fillSchema(message.outputSchema as unknown as JsonSchema, (label) => `${label} of Velo Bikes`) as JsonObject;
    const template = (answer.voice_rules as JsonObject[])[0];
    answer.voice_rules = rules.map((rule) => ({ ...template, rule }));
    answer.approved_claims = [];
    answer.banned_terms = [];
    return JSON.stringify(answer);
  };

  it("brand_memory writes its voice rules as brand memories, once; a repeat adds nothing", async () => {
    const rules = ["Say 'fair price', never 'cheap'.", "Speak plainly to commuters; no racing jargon."];
    model.script({ kind: "ok", content: await brandAnswer(rules) });
    const first = await plainUnary(address, AgentService.method.runAgent, { name: "agents/brand_memory", input: "Update our brand memory from the new guidelines", run: "runs/0193a0a0-0000-7000-8000-000000000001" }, as("velo"));
    // The brand profile and the two rules (empty claims and terms add nothing).
    expect(first.message.memory?.remembered.length).toBe(2 + 1);
    const listed = await plainUnary(address, MemoryService.method.listMemories, { kind: MemoryKind.BRAND }, as("velo"));
    const contents = listed.message.memories.map((m) => m.content);
    expect(contents.some((c) => c.includes("never 'cheap'"))).toBe(true);
    expect(listed.message.memories.every((m) => m.source === "agents/brand_memory")).toBe(true);
    expect(listed.message.memories.find((m) => m.content.includes("cheap"))?.labels).toMatchObject({ key: "voice_rules", run: "runs/0193a0a0-0000-7000-8000-000000000001" });

    model.script({ kind: "ok", content: await brandAnswer(rules) });
    const again = await plainUnary(address, AgentService.method.runAgent, { name: "agents/brand_memory", input: "Update our brand memory from the new guidelines" }, as("velo"));
    expect(again.message.memory?.remembered).toEqual([]);
    // It read what it had written before.
    expect(again.message.memory?.recalled.length).toBeGreaterThan(0);
    expect(userTurn(model.requests.at(-1)!)).toContain("never 'cheap'");
  });

  it("a creative agent gets the organization's brand voice when the caller gives none, and only that organization's", async () => {
    await plainUnary(address, MemoryService.method.createMemory, { memory: { kind: MemoryKind.BRAND, content: "Our brand voice for social posts: warm, plain, a little playful; never promise speed records." } }, as("velo"));
    const run = await plainUnary(address, AgentService.method.runAgent, { name: "agents/social_content", input: "Write three Instagram posts for our spring test-ride weekend, in our brand voice" }, as("velo"));
    expect(run.message.memory?.recalled.length).toBeGreaterThan(0);
    const prompt = userTurn(model.requests.at(-1)!);
    expect(prompt).toContain("never promise speed records");
    expect(prompt).toMatch(/"brand_voice":"[^"]*never promise speed records/);

    // The caller's own brand voice wins over memory.
    await plainUnary(address, AgentService.method.runAgent, { name: "agents/social_content", input: "Write three Instagram posts in our brand voice", parameters: { brand_voice: "Bold and loud." } }, as("velo"));
    expect(userTurn(model.requests.at(-1)!)).toMatch(/"brand_voice":"Bold and loud\."/);

    // Another organization's call sees none of velo's memories.
    const other = await plainUnary(address, AgentService.method.runAgent, { name: "agents/social_content", input: "Write three Instagram posts for our spring test-ride weekend, in our brand voice" }, as("globex"));
    expect(other.message.memory?.recalled).toEqual([]);
    expect(userTurn(model.requests.at(-1)!)).not.toContain("speed records");
  });

  it("agents without memory in their catalog entry neither read nor write it", async () => {
    const run = await plainUnary(address, AgentService.method.runAgent, { name: "agents/copywriter", input: "A tagline for our spring test-ride weekend, in our brand voice" }, as("velo"));
    expect(run.message.memory).toBeUndefined();
    expect(userTurn(model.requests.at(-1)!)).not.toContain("never promise speed records");
  });
});

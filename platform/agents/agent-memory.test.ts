import { join } from "node:path";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AgentService } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { createOfflineProvider } from "../llm/offline-provider.js";
import { LocalEmbeddings } from "../memory/local-embeddings.js";
import { createInProcessMemoryBank, type MemoryBank } from "../memory/memory-bank.js";
import { createAgentMemory, textOf } from "./agent-memory.js";
import { createAgentServiceImpl } from "./agent-service.js";
import { loadCatalog } from "./catalog.js";

const catalog = loadCatalog(join(import.meta.dirname, "..", "..", "services", "v2-agents"));

function service(bank: MemoryBank) {
  const transport = createRouterTransport((router) => {
    router.service(AgentService, createAgentServiceImpl({ catalog, provider: createOfflineProvider(), memory: createAgentMemory(bank) }));
  });
  return createClient(AgentService, transport);
}

describe("agent memory", () => {
  it("never remembers the offline provider's placeholder answers, but still recalls", async () => {
    const bank = createInProcessMemoryBank(new LocalEmbeddings());
    await bank.add("default", { kind: "brand", content: "We say fair price, never cheap.", source: "user", labels: {} });
    const res = await service(bank).runAgent({ name: "agents/brand_memory", input: "Refresh our brand memory: fair price, never cheap" });
    expect(res.provider).toBe("offline");
    expect(res.memory?.remembered).toEqual([]);
    expect(res.memory?.recalled).toHaveLength(1);
    expect((await bank.list("default", { kind: "brand", pageSize: 10, pageToken: "" })).items).toHaveLength(1);
  });

  it("runs without memory when the memory cannot be read, rather than failing the call", async () => {
    const broken: MemoryBank = {
      ...createInProcessMemoryBank(new LocalEmbeddings()),
      search: () => Promise.reject(new Error("connection refused")),
    };
    const res = await service(broken).runAgent({ name: "agents/social_content", input: "Three posts about our spring sale" });
    expect(res.output).toBeDefined();
    expect(res.memory?.recalled).toEqual([]);
  });

  it("writes an answer's items as text a person can read", () => {
    expect(textOf({ type: "do", rule: "Speak plainly" })).toBe("type: do; rule: Speak plainly");
    expect(textOf({ term: "cheap", why_banned: ["sounds low quality"] })).toBe("term: cheap; why banned: sounds low quality");
    expect(textOf("as is")).toBe("as is");
  });
});

describe("the catalog's memory entries", () => {
  it("give the memory agents reads and writes of real kinds, inputs and output keys", () => {
    const brand = catalog.get("brand_memory")!.memory!;
    expect(brand.writes[0]).toEqual({ kind: "brand", from: ["brand_profile", "voice_rules", "approved_claims", "banned_terms"] });
    expect(catalog.get("user_preference")!.memory!.writes[0].kind).toBe("preference");
    expect(catalog.get("knowledge_base_builder")!.memory!.writes[0].kind).toBe("knowledge");
    expect(catalog.get("lessons_learned")!.memory!.writes[0].kind).toBe("lesson");
    expect(catalog.get("social_content")!.memory!.reads).toEqual([{ kinds: ["brand"], into: "brand_voice" }]);
    expect(catalog.get("copywriter")!.memory).toBeUndefined();
  });
});

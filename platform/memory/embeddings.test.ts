import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { embeddingsFromEnv } from "./embeddings-from-env.js";
import { LocalEmbeddings } from "./local-embeddings.js";
import { createInProcessMemoryBank } from "./memory-bank.js";
import { OpenAIEmbeddings } from "./openai-embeddings.js";

/**
 * A loopback server speaking OpenAI's embeddings endpoint: it embeds with
 * LocalEmbeddings at the length asked for (or a wrong length when told), so
 * the real `openai` client path runs with vectors that mean something.
 */
let server: Server;
let baseURL: string;
const requests: { model: string; input: string[]; dimensions?: number }[] = [];
let wrongLength = false;
beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", async () => {
      const json = JSON.parse(body) as { model: string; input: string[]; dimensions?: number };
      requests.push(json);
      const local = new LocalEmbeddings({ dimensions: wrongLength ? 8 : (json.dimensions ?? 1536) });
      const vectors = await local.embedDocuments(json.input);
      res.writeHead(200, { "content-type": "application/json" }).end(
        JSON.stringify({
          object: "list",
          model: json.model,
          // Out of order on purpose: the client must order by index.
          data: vectors.map((embedding, index) => ({ object: "embedding", index, embedding })).reverse(),
          usage: { prompt_tokens: 5, total_tokens: 5 },
        }),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe("embeddings from the configured provider", () => {
  it("defaults to the local embeddings at the table's length", async () => {
    const e = embeddingsFromEnv(256, {});
    expect(e).toBeInstanceOf(LocalEmbeddings);
    expect((await e.embedQuery("brand voice")).length).toBe(256);
  });

  it("embeds through an OpenAI-compatible server, asking for the table's length, in order", async () => {
    const e = embeddingsFromEnv(256, { EMBEDDINGS_PROVIDER: "openai", OPENAI_BASE_URL: baseURL, EMBEDDINGS_MODEL: "nomic-embed-text" });
    const [a, b] = await e.embedDocuments(["cargo bikes for families", "discount emails on Sunday"]);
    expect(a.length).toBe(256);
    expect(requests.at(-1)).toMatchObject({ model: "nomic-embed-text", dimensions: 256, input: ["cargo bikes for families", "discount emails on Sunday"] });
    const local = new LocalEmbeddings({ dimensions: 256 });
    expect(a).toEqual(await local.embedQuery("cargo bikes for families"));
    expect(b).toEqual(await local.embedQuery("discount emails on Sunday"));
  });

  it("serves a memory bank: search finds by meaning with the provider's vectors", async () => {
    const bank = createInProcessMemoryBank(new OpenAIEmbeddings({ apiKey: "x", baseURL, model: "m", dimensions: 128 }));
    await bank.add("acme", { kind: "knowledge", content: "Families in cities buy electric cargo bikes.", source: "user", labels: {} });
    await bank.add("acme", { kind: "lesson", content: "Sunday discount emails doubled clicks.", source: "user", labels: {} });
    const [top] = await bank.search("acme", "who buys cargo bikes", { k: 1 });
    expect(top.item.kind).toBe("knowledge");
  });

  it("refuses vectors of another length than the table's, naming both", async () => {
    wrongLength = true;
    try {
      const e = new OpenAIEmbeddings({ apiKey: "x", baseURL, model: "fixed-size-model", dimensions: 256 });
      await expect(e.embedQuery("anything")).rejects.toThrow(/fixed-size-model returned 8-dimensional embeddings; the memories table holds 256/);
    } finally {
      wrongLength = false;
    }
  });

  it("fails at start-up on a provider that is named but not configured or unknown", () => {
    expect(() => embeddingsFromEnv(256, { EMBEDDINGS_PROVIDER: "openai" })).toThrow(/OPENAI_API_KEY/);
    expect(() => embeddingsFromEnv(256, { EMBEDDINGS_PROVIDER: "word2vec" })).toThrow(/EMBEDDINGS_PROVIDER="word2vec" is not supported; supported: local, openai/);
  });
});

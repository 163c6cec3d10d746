import { createServer, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { defaultAnswer, readBody } from "./loopback-http.js";

/** VertexBehaviour is what the loopback server does with the next request. */
export type VertexBehaviour =
  | { readonly kind: "ok"; readonly content?: string }
  | { readonly kind: "function_call"; readonly name: string; readonly args: unknown; readonly text?: string }
  | { readonly kind: "error"; readonly status: number; readonly googleStatus: string; readonly message?: string }
  | { readonly kind: "stall" };

/** VertexRequest is one request the loopback server received. */
export interface VertexRequest {
  /** path, for example `/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent`. */
  readonly path: string;
  /** stream tells streamGenerateContent from generateContent. */
  readonly stream: boolean;
  /** apiKey is the `x-goog-api-key` header the client authenticated with. */
  readonly apiKey: string;
  /** body is the JSON request. */
  readonly body: {
    readonly contents: { role: string; parts: Record<string, unknown>[] }[];
    readonly systemInstruction?: { parts: { text?: string }[] };
    readonly tools?: { functionDeclarations?: { name: string; parameters?: unknown }[] }[];
    readonly generationConfig?: { responseMimeType?: string };
  };
}

/** LoopbackVertex is a server on 127.0.0.1 that speaks Vertex AI's Gemini generateContent API. */
export interface LoopbackVertex {
  /** apiEndpoint to give the provider (`127.0.0.1:<port>`). */
  readonly apiEndpoint: string;
  /**
   * authOptions authenticate with a fake API key and carry requests to the
   * server over plain HTTP: ChatVertexAI always builds `https://{endpoint}/…`,
   * and a certificate for 127.0.0.1 would need a tool (openssl) the test
   * machines may lack. Everything else (google-auth-library, gaxios, the
   * request and response formats) is the production path.
   */
  readonly authOptions: { apiKey: string; clientOptions: { transporterOptions: { fetchImplementation: typeof fetch } } };
  /** requests received, in order. */
  readonly requests: VertexRequest[];
  /** script queues behaviours for the next requests; when empty, requests succeed. */
  script(...b: VertexBehaviour[]): void;
  /** nextRequest resolves when the next request has arrived. */
  nextRequest(): Promise<VertexRequest>;
  /** close stops the server. */
  close(): Promise<void>;
}

/**
 * startLoopbackVertex serves `POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent`
 * and `:streamGenerateContent` as Vertex AI does: JSON answers with
 * usageMetadata, function calls, streams as a JSON array of partial answers
 * (usage on the last; a function call as one whole part), and errors in
 * Google's `{error: {code, message, status}}` shape. By default it answers
 * with a JSON object holding every key the system prompt's schema requires.
 */
export async function startLoopbackVertex(): Promise<LoopbackVertex> {
  const queue: VertexBehaviour[] = [];
  const requests: VertexRequest[] = [];
  const waiting: ((r: VertexRequest) => void)[] = [];
  const sockets = new Set<Socket>();
  const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  const server: Server = createServer(async (req, res) => {
    const match = /^\/v1\/projects\/[^/]+\/locations\/[^/]+\/publishers\/google\/models\/[^/:]+:(generateContent|streamGenerateContent)$/.exec(req.url ?? "");
    if (req.method !== "POST" || !match) {
      json(res, 404, { error: { code: 404, message: `no route ${req.url}`, status: "NOT_FOUND" } });
      return;
    }
    const received: VertexRequest = {
      path: req.url ?? "",
      stream: match[1] === "streamGenerateContent",
      apiKey: String(req.headers["x-goog-api-key"] ?? ""),
      body: JSON.parse(await readBody(req)) as VertexRequest["body"],
    };
    requests.push(received);
    waiting.splice(0).forEach((w) => w(received));
    const b = queue.shift() ?? { kind: "ok" };
    if (b.kind === "stall") return;
    if (b.kind === "error") {
      json(res, b.status, { error: { code: b.status, message: b.message ?? `scripted ${b.googleStatus}`, status: b.googleStatus } });
      return;
    }
    if (b.kind === "function_call") {
      const usageMetadata = { promptTokenCount: 30, candidatesTokenCount: 10, totalTokenCount: 40 };
      const call = { functionCall: { name: b.name, args: b.args } };
      if (!received.stream) {
        json(res, 200, { candidates: [{ content: { role: "model", parts: [...(b.text ? [{ text: b.text }] : []), call] }, finishReason: "STOP" }], usageMetadata });
        return;
      }
      // As Gemini streams a call: any text first, then the functionCall part whole, with the usage.
      const pieces = [
        ...(b.text ? [{ candidates: [{ content: { role: "model", parts: [{ text: b.text }] } }] }] : []),
        { candidates: [{ content: { role: "model", parts: [call] }, finishReason: "STOP" }], usageMetadata },
      ];
      res.writeHead(200, { "content-type": "application/json" });
      res.end(`[${pieces.map((p) => JSON.stringify(p)).join(",\r\n")}]`);
      return;
    }
    const system = (received.body.systemInstruction?.parts ?? []).map((p) => p.text ?? "").join("\n");
    const content = b.content ?? defaultAnswer(system);
    const usageMetadata = { promptTokenCount: 42, candidatesTokenCount: Math.ceil(content.length / 4), totalTokenCount: 42 + Math.ceil(content.length / 4) };
    if (!received.stream) {
      json(res, 200, { candidates: [{ content: { role: "model", parts: [{ text: content }] }, finishReason: "STOP" }], usageMetadata });
      return;
    }
    const pieces: unknown[] = [];
    for (let i = 0; i < content.length; i += 10) {
      const last = i + 10 >= content.length;
      pieces.push({
        candidates: [{ content: { role: "model", parts: [{ text: content.slice(i, i + 10) }] }, ...(last ? { finishReason: "STOP" } : {}) }],
        ...(last ? { usageMetadata } : {}),
      });
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.write("[");
    pieces.forEach((p, i) => res.write(`${i ? ",\r\n" : ""}${JSON.stringify(p)}`));
    res.end("]");
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const fetchImplementation: typeof fetch = (input, init) => fetch(String(input instanceof Request ? input.url : input).replace(/^https:/, "http:"), init);
  return {
    apiEndpoint: `127.0.0.1:${port}`,
    authOptions: { apiKey: "loopback-key", clientOptions: { transporterOptions: { fetchImplementation } } },
    requests,
    script: (...b) => void queue.push(...b),
    nextRequest: () => new Promise((r) => waiting.push(r)),
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

import { createServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session } from "node:http2";
import { crc32 } from "node:zlib";
import { defaultAnswer, readBody } from "./loopback-http.js";

/** BedrockBehaviour is what the loopback server does with the next request. */
export type BedrockBehaviour =
  | { readonly kind: "ok"; readonly content?: string }
  | { readonly kind: "tool_use"; readonly calls: readonly { readonly name: string; readonly input: unknown }[]; readonly text?: string }
  | { readonly kind: "error"; readonly status: number; readonly type: string; readonly message?: string }
  | { readonly kind: "stall" };

/** BedrockRequest is one request the loopback server received. */
export interface BedrockRequest {
  /** modelId from the path. */
  readonly modelId: string;
  /** stream tells ConverseStream from Converse. */
  readonly stream: boolean;
  /** authorization is the SigV4 header the client signed with. */
  readonly authorization: string;
  /** body is the JSON request. */
  readonly body: {
    readonly system?: { text?: string }[];
    readonly messages: { role: string; content: Record<string, unknown>[] }[];
    readonly toolConfig?: { tools: { toolSpec: { name: string; inputSchema: { json: unknown } } }[] };
  };
}

/** LoopbackBedrock is a server on 127.0.0.1 that speaks the Bedrock Runtime Converse API. */
export interface LoopbackBedrock {
  /** endpoint to give the provider (`http://127.0.0.1:<port>`). */
  readonly endpoint: string;
  /** requests received, in order. */
  readonly requests: BedrockRequest[];
  /** script queues behaviours for the next requests; when empty, requests succeed. */
  script(...b: BedrockBehaviour[]): void;
  /** nextRequest resolves when the next request has arrived. */
  nextRequest(): Promise<BedrockRequest>;
  /** close stops the server and its sessions. */
  close(): Promise<void>;
}

/**
 * eventMessage frames one event of an `application/vnd.amazon.eventstream`
 * body: total and header lengths, a CRC of that prelude, string headers, the
 * JSON payload and a CRC of the whole message.
 */
export function eventMessage(eventType: string, payload: unknown): Buffer {
  const header = (name: string, value: string) => {
    const n = Buffer.from(name);
    const v = Buffer.from(value);
    const len = Buffer.alloc(2);
    len.writeUInt16BE(v.length);
    return Buffer.concat([Buffer.from([n.length]), n, Buffer.from([7]), len, v]);
  };
  const headers = Buffer.concat([header(":event-type", eventType), header(":content-type", "application/json"), header(":message-type", "event")]);
  const body = Buffer.from(JSON.stringify(payload));
  const prelude = Buffer.alloc(8);
  prelude.writeUInt32BE(12 + headers.length + body.length + 4, 0);
  prelude.writeUInt32BE(headers.length, 4);
  const preludeCrc = Buffer.alloc(4);
  preludeCrc.writeUInt32BE(crc32(prelude));
  const message = Buffer.concat([prelude, preludeCrc, headers, body]);
  const messageCrc = Buffer.alloc(4);
  messageCrc.writeUInt32BE(crc32(message));
  return Buffer.concat([message, messageCrc]);
}

/**
 * startLoopbackBedrock serves `POST /model/{modelId}/converse` and
 * `/converse-stream` over cleartext HTTP/2, as the AWS SDK's Bedrock Runtime
 * client speaks it: JSON answers with usage, tool use, event-stream framed
 * streams ending with a metadata event carrying usage (tool use streamed as
 * ConverseStream does: a toolUse block start, the input in pieces, stop
 * reason `tool_use`), and errors with `x-amzn-errortype`. Like Bedrock, it
 * rejects tool blocks in a request that declares no tools, and a conversation
 * whose roles do not alternate. By default it answers with a JSON object
 * holding every key the system prompt's schema requires.
 */
export async function startLoopbackBedrock(): Promise<LoopbackBedrock> {
  const queue: BedrockBehaviour[] = [];
  const requests: BedrockRequest[] = [];
  const waiting: ((r: BedrockRequest) => void)[] = [];
  const sessions = new Set<ServerHttp2Session>();
  const server: Http2Server = createServer();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  const error = (res: Http2ServerResponse, status: number, type: string, message: string) =>
    res.writeHead(status, { "content-type": "application/json", "x-amzn-errortype": `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/` }).end(JSON.stringify({ message }));
  server.on("request", async (req: Http2ServerRequest, res: Http2ServerResponse) => {
    const match = /^\/model\/([^/]+)\/(converse|converse-stream)$/.exec(req.url ?? "");
    if (req.method !== "POST" || !match) {
      error(res, 404, "UnknownOperationException", "not found");
      return;
    }
    const received: BedrockRequest = {
      modelId: decodeURIComponent(match[1]),
      stream: match[2] === "converse-stream",
      authorization: String(req.headers.authorization ?? ""),
      body: JSON.parse(await readBody(req)) as BedrockRequest["body"],
    };
    requests.push(received);
    waiting.splice(0).forEach((w) => w(received));
    const b = queue.shift() ?? { kind: "ok" };
    if (b.kind === "stall") return;
    if (b.kind === "error") {
      error(res, b.status, b.type, b.message ?? `scripted ${b.type}`);
      return;
    }
    const usesTools = received.body.messages.some((m) => m.content.some((c) => "toolUse" in c || "toolResult" in c));
    if (usesTools && !received.body.toolConfig) {
      error(res, 400, "ValidationException", "The toolConfig field must be defined when using toolUse and toolResult content blocks.");
      return;
    }
    if (received.body.messages.some((m, i, all) => m.role === (i === 0 ? "assistant" : all[i - 1].role))) {
      error(res, 400, "ValidationException", "A conversation must start with a user message and alternate between user and assistant roles.");
      return;
    }
    if (b.kind === "tool_use") {
      const usage = { inputTokens: 30, outputTokens: 10, totalTokens: 40 };
      const toolUses = b.calls.map((c, i) => ({ toolUseId: `tooluse_${requests.length}_${i}`, name: c.name, input: c.input }));
      if (!received.stream) {
        const content = [...(b.text ? [{ text: b.text }] : []), ...toolUses.map((toolUse) => ({ toolUse }))];
        res.writeHead(200, { "content-type": "application/json" }).end(
          JSON.stringify({ output: { message: { role: "assistant", content } }, stopReason: "tool_use", usage, metrics: { latencyMs: 1 } }),
        );
        return;
      }
      // As ConverseStream sends tool use: a block start with the id and name, the input JSON in pieces.
      res.writeHead(200, { "content-type": "application/vnd.amazon.eventstream" });
      res.write(eventMessage("messageStart", { role: "assistant" }));
      const first = b.text ? 1 : 0;
      if (b.text) {
        res.write(eventMessage("contentBlockDelta", { contentBlockIndex: 0, delta: { text: b.text } }));
        res.write(eventMessage("contentBlockStop", { contentBlockIndex: 0 }));
      }
      toolUses.forEach((t, i) => {
        const contentBlockIndex = first + i;
        res.write(eventMessage("contentBlockStart", { contentBlockIndex, start: { toolUse: { toolUseId: t.toolUseId, name: t.name } } }));
        const input = JSON.stringify(t.input);
        for (let j = 0; j < input.length; j += 7) res.write(eventMessage("contentBlockDelta", { contentBlockIndex, delta: { toolUse: { input: input.slice(j, j + 7) } } }));
        res.write(eventMessage("contentBlockStop", { contentBlockIndex }));
      });
      res.write(eventMessage("messageStop", { stopReason: "tool_use" }));
      res.end(eventMessage("metadata", { usage, metrics: { latencyMs: 1 } }));
      return;
    }
    const system = (received.body.system ?? []).map((s) => s.text ?? "").join("\n");
    const content = b.content ?? defaultAnswer(system);
    const usage = { inputTokens: 42, outputTokens: Math.ceil(content.length / 4), totalTokens: 42 + Math.ceil(content.length / 4) };
    if (!received.stream) {
      res.writeHead(200, { "content-type": "application/json" }).end(
        JSON.stringify({ output: { message: { role: "assistant", content: [{ text: content }] } }, stopReason: "end_turn", usage, metrics: { latencyMs: 1 } }),
      );
      return;
    }
    res.writeHead(200, { "content-type": "application/vnd.amazon.eventstream" });
    res.write(eventMessage("messageStart", { role: "assistant" }));
    for (let i = 0; i < content.length; i += 10) {
      res.write(eventMessage("contentBlockDelta", { contentBlockIndex: 0, delta: { text: content.slice(i, i + 10) } }));
    }
    res.write(eventMessage("contentBlockStop", { contentBlockIndex: 0 }));
    res.write(eventMessage("messageStop", { stopReason: "end_turn" }));
    res.end(eventMessage("metadata", { usage, metrics: { latencyMs: 1 } }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    script: (...b) => void queue.push(...b),
    nextRequest: () => new Promise((r) => waiting.push(r)),
    close: () =>
      new Promise((r) => {
        for (const s of sessions) s.destroy();
        server.close(() => r());
      }),
  };
}

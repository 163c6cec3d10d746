import { createServer, type IncomingMessage, type Server } from "node:http";
import { fillSchema, type JsonSchema } from "../../platform/llm/json-schema.js";

/** Behaviour is what the loopback server does with the next request. */
export type Behaviour =
  | { readonly kind: "ok"; readonly content?: string }
  | { readonly kind: "status"; readonly status: number; readonly retryAfter?: string }
  | { readonly kind: "delay"; readonly ms: number }
  | { readonly kind: "tool_call"; readonly name: string; readonly arguments: unknown };

/** LoopbackOpenAI is a server on 127.0.0.1 that speaks OpenAI's Chat Completions wire protocol. */
export interface LoopbackOpenAI {
  /** baseURL to give the `openai` client (`http://127.0.0.1:<port>/v1`). */
  readonly baseURL: string;
  /** requests are the JSON bodies received, in order. */
  readonly requests: Record<string, unknown>[];
  /** script queues behaviours for the next requests; when empty, requests succeed. */
  script(...b: Behaviour[]): void;
  /** close stops the server. */
  close(): Promise<void>;
}

const body = (req: IncomingMessage): Promise<string> =>
  new Promise((resolve) => {
    let s = "";
    req.on("data", (d: Buffer) => (s += d.toString()));
    req.on("end", () => resolve(s));
  });

/**
 * startLoopbackOpenAI serves `POST /v1/chat/completions` as OpenAI does:
 * JSON answers with usage, SSE streams (`data: {chunk}` … `data: [DONE]`) with
 * a final usage chunk when `stream_options.include_usage` is set, and error
 * answers in OpenAI's error shape. By default it answers with a JSON object
 * that conforms to the request's JSON-schema response format (`loopback
 * <key>` strings where the schema names only keys), so the real `openai`
 * client path runs end to end with no network.
 */
export async function startLoopbackOpenAI(): Promise<LoopbackOpenAI> {
  const queue: Behaviour[] = [];
  const requests: Record<string, unknown>[] = [];
  const server: Server = createServer(async (req, res) => {
    if (req.method !== "POST" || !req.url?.endsWith("/chat/completions")) {
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: "not found", type: "invalid_request_error" } }));
      return;
    }
    const json = JSON.parse(await body(req)) as Record<string, unknown> & {
      model: string;
      stream?: boolean;
      stream_options?: { include_usage?: boolean };
      response_format?: { json_schema?: { schema?: JsonSchema } };
    };
    requests.push(json);
    const b = queue.shift() ?? { kind: "ok" };
    if (b.kind === "delay") await new Promise((r) => setTimeout(r, b.ms));
    if (b.kind === "status") {
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (b.retryAfter) headers["retry-after"] = b.retryAfter;
      res.writeHead(b.status, headers).end(JSON.stringify({ error: { message: `scripted ${b.status}`, type: "server_error", code: null } }));
      return;
    }
    if (b.kind === "tool_call") {
      res.writeHead(200, { "content-type": "application/json" }).end(
        JSON.stringify({
          id: `chatcmpl-${requests.length}`,
          object: "chat.completion",
          created: Math.floor(Date.now() / 1000),
          model: json.model,
          choices: [
            {
              index: 0,
              message: { role: "assistant", content: null, tool_calls: [{ id: `call_${requests.length}`, type: "function", function: { name: b.name, arguments: JSON.stringify(b.arguments) } }] },
              finish_reason: "tool_calls",
            },
          ],
          usage: { prompt_tokens: 30, completion_tokens: 10, total_tokens: 40 },
        }),
      );
      return;
    }
    const schema = json.response_format?.json_schema?.schema ?? { type: "object", properties: {} };
    const content = (b.kind === "ok" && b.content) || JSON.stringify(fillSchema(schema, (label) => `loopback ${label}`));
    const usage = { prompt_tokens: 42, completion_tokens: Math.ceil(content.length / 4), total_tokens: 42 + Math.ceil(content.length / 4) };
    const id = `chatcmpl-${requests.length}`;
    if (!json.stream) {
      res.writeHead(200, { "content-type": "application/json" }).end(
        JSON.stringify({
          id,
          object: "chat.completion",
          created: Math.floor(Date.now() / 1000),
          model: json.model,
          choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
          usage,
        }),
      );
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream" });
    const send = (o: unknown) => res.write(`data: ${JSON.stringify(o)}\n\n`);
    const base = { id, object: "chat.completion.chunk", created: Math.floor(Date.now() / 1000), model: json.model };
    for (let i = 0; i < content.length; i += 10) {
      send({ ...base, choices: [{ index: 0, delta: { content: content.slice(i, i + 10) }, finish_reason: null }] });
    }
    send({ ...base, choices: [{ index: 0, delta: {}, finish_reason: "stop" }] });
    if (json.stream_options?.include_usage) send({ ...base, choices: [], usage });
    res.end("data: [DONE]\n\n");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    requests,
    script: (...b) => void queue.push(...b),
    close: () => new Promise((r) => server.close(() => r())),
  };
}

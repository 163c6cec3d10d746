import { createServer, type Server } from "node:http";
import { fillSchema, type JsonSchema } from "../../platform/llm/json-schema.js";
import { readBody } from "./loopback-http.js";

/**
 * Behaviour is what the loopback server does with the next request: answer
 * (the given content, or one that fits the response format), fail with a
 * status, answer late, or call tools (one, or several after some text).
 */
export type Behaviour =
  | { readonly kind: "ok"; readonly content?: string }
  | { readonly kind: "status"; readonly status: number; readonly retryAfter?: string }
  | { readonly kind: "delay"; readonly ms: number }
  | { readonly kind: "tool_call"; readonly name: string; readonly arguments: unknown }
  | { readonly kind: "tool_calls"; readonly calls: readonly { readonly name: string; readonly arguments: unknown }[]; readonly content?: string };

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

/**
 * startLoopbackOpenAI serves `POST /v1/chat/completions` as OpenAI does:
 * JSON answers with usage, SSE streams (`data: {chunk}` … `data: [DONE]`) with
 * a final usage chunk when `stream_options.include_usage` is set, and error
 * answers in OpenAI's error shape. Scripted tool calls are answered whole or,
 * in a stream, as OpenAI streams them: each call's id and name in its first
 * fragment, its arguments in pieces, finish_reason `tool_calls`. By default
 * it answers with a JSON object that conforms to the request's JSON-schema
 * response format (`loopback <key>` strings where the schema names only
 * keys), so the real `openai` client path runs end to end with no network.
 */
export async function startLoopbackOpenAI(): Promise<LoopbackOpenAI> {
  const queue: Behaviour[] = [];
  const requests: Record<string, unknown>[] = [];
  const server: Server = createServer(async (req, res) => {
    if (req.method !== "POST" || !req.url?.endsWith("/chat/completions")) {
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: "not found", type: "invalid_request_error" } }));
      return;
    }
    const json = JSON.parse(await readBody(req)) as Record<string, unknown> & {
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
    if (b.kind === "tool_call" || b.kind === "tool_calls") {
      const calls = (b.kind === "tool_call" ? [{ name: b.name, arguments: b.arguments }] : b.calls).map((c, i) => ({
        id: `call_${requests.length}_${i}`,
        type: "function" as const,
        function: { name: c.name, arguments: JSON.stringify(c.arguments) },
      }));
      const content = b.kind === "tool_calls" ? b.content : undefined;
      const usage = { prompt_tokens: 30, completion_tokens: 10, total_tokens: 40 };
      const id = `chatcmpl-${requests.length}`;
      if (!json.stream) {
        res.writeHead(200, { "content-type": "application/json" }).end(
          JSON.stringify({
            id,
            object: "chat.completion",
            created: Math.floor(Date.now() / 1000),
            model: json.model,
            choices: [{ index: 0, message: { role: "assistant", content: content ?? null, tool_calls: calls }, finish_reason: "tool_calls" }],
            usage,
          }),
        );
        return;
      }
      // As OpenAI streams calls: the id and name in a call's first fragment, then its arguments in pieces.
      res.writeHead(200, { "content-type": "text/event-stream" });
      const send = (o: unknown) => res.write(`data: ${JSON.stringify(o)}\n\n`);
      const base = { id, object: "chat.completion.chunk", created: Math.floor(Date.now() / 1000), model: json.model };
      const delta = (d: Record<string, unknown>, finish: string | null = null) => send({ ...base, choices: [{ index: 0, delta: d, finish_reason: finish }] });
      delta({ role: "assistant", content: content ? null : "" });
      for (let i = 0; content && i < content.length; i += 10) delta({ content: content.slice(i, i + 10) });
      calls.forEach((c, index) => {
        delta({ tool_calls: [{ index, id: c.id, type: "function", function: { name: c.function.name, arguments: "" } }] });
        for (let i = 0; i < c.function.arguments.length; i += 7) delta({ tool_calls: [{ index, function: { arguments: c.function.arguments.slice(i, i + 7) } }] });
      });
      delta({}, "tool_calls");
      if (json.stream_options?.include_usage) send({ ...base, choices: [], usage });
      res.end("data: [DONE]\n\n");
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

import { createServer, type Server } from "node:http";
import type { Socket } from "node:net";
import { readBody } from "./loopback-http.js";

/**
 * StallingLlm is an OpenAI-compatible server on 127.0.0.1 that reads every
 * request and never answers — a model server that hangs — and counts what
 * its clients do about it: requests received, requests whose client gave up
 * (closed the connection), and connections still open.
 */
export interface StallingLlm {
  /** baseURL to give OPENAI_BASE_URL (`http://127.0.0.1:<port>/v1`). */
  readonly baseURL: string;
  /** received is the number of chat completion requests read. */
  received(): number;
  /** abandoned is the number of those whose client closed the connection before an answer. */
  abandoned(): number;
  /** openConnections is the number of TCP connections open now. */
  openConnections(): number;
  /** close drops every connection and stops the server. */
  close(): Promise<void>;
}

/**
 * startStallingOpenAI starts a StallingLlm. test/support/openai-loopback.ts
 * answers (late, when told); this one never does, so only the callers'
 * deadlines end the requests, and what it counts shows whether they let go.
 */
export async function startStallingOpenAI(): Promise<StallingLlm> {
  let received = 0;
  let abandoned = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer(async (req, res) => {
    await readBody(req);
    received++;
    // The response is never written: the request ends only when the client closes it.
    res.on("close", () => abandoned++);
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  // No server-side timeouts: the client alone decides when to give up.
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  server.keepAliveTimeout = 0;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    received: () => received,
    abandoned: () => abandoned,
    openConnections: () => sockets.size,
    close: () =>
      new Promise((resolve) => {
        sockets.forEach((s) => s.destroy());
        server.close(() => resolve());
      }),
  };
}

import { execFile, spawn, type ChildProcessByStdio } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { create, createFileRegistry, fromBinary, toJson, type DescMessage, type DescService, type Message } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMeshServer, type MeshServer } from "../mesh/grpc-server.js";

/*
 * `raptorflow gateway` serves a gRPC service built by someone else: a proto
 * of our own making (package acme.library.v1), compiled with buf into a
 * descriptor set, served by a backend built from that descriptor set alone,
 * and exposed over REST by the real command in a child process.
 */

const root = join(import.meta.dirname, "..");
const bin = join(root, "bin", "raptorflow.js");
const buf = join(root, "node_modules", ".bin", "buf");

const shelfProto = `syntax = "proto3";

package acme.library.v1;

import "google/api/annotations.proto";
import "google/protobuf/timestamp.proto";
import "raptorflow/api/v1/annotations.proto";

// ShelfService keeps shelves.
service ShelfService {
  // GetShelf reads a shelf.
  rpc GetShelf(GetShelfRequest) returns (Shelf) {
    option (google.api.http) = {get: "/v1/{name=shelves/*}"};
  }
  // CreateShelf creates a shelf.
  rpc CreateShelf(CreateShelfRequest) returns (Shelf) {
    option (google.api.http) = {
      post: "/v1/shelves"
      body: "shelf"
      additional_bindings {post: "/v1/shelves:create" body: "shelf"}
    };
    option (raptorflow.api.v1.http_response).success_code = 201;
  }
}

// Shelf is a shelf.
message Shelf {
  string name = 1;
  string theme = 2;
  int64 book_count = 3;
  google.protobuf.Timestamp create_time = 4;
}

// GetShelfRequest names a shelf.
message GetShelfRequest {
  string name = 1;
}

// CreateShelfRequest creates a shelf.
message CreateShelfRequest {
  Shelf shelf = 1;
  string shelf_id = 2;
}
`;

let dir: string;
/** fullSet has every import; leanSet is the same proto built with --exclude-imports. */
let fullSet: string;
let leanSet: string;
let backend: MeshServer;
let backendPort: number;
/** seen are the requests the backend received, as canonical JSON, with the authorization it saw. */
const seen: { method: string; request: unknown; authorization: string | null }[] = [];

/** runBuf runs the buf CLI in the temp workspace. */
function runBuf(args: string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(buf, args, { cwd: dir, timeout: 30_000 }, (err, _stdout, stderr) =>
      err ? reject(new Error(`buf ${args.join(" ")}: ${err.message}\n${stderr}`)) : resolve(),
    ),
  );
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "raptorflow-gateway-cli-"));
  // A buf workspace: the service's module, and a module with the imports it needs.
  const write = (path: string, text: string) => {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  };
  write("src/acme/library/v1/shelf.proto", shelfProto);
  for (const [from, to] of [
    ["proto-deps/google/api/annotations.proto", "deps/google/api/annotations.proto"],
    ["proto-deps/google/api/http.proto", "deps/google/api/http.proto"],
    ["proto/raptorflow/api/v1/annotations.proto", "deps/raptorflow/api/v1/annotations.proto"],
  ]) {
    mkdirSync(dirname(join(dir, to)), { recursive: true });
    copyFileSync(join(root, from), join(dir, to));
  }
  write("buf.yaml", "version: v2\nmodules:\n  - path: src\n  - path: deps\n");
  fullSet = join(dir, "shelf.binpb");
  leanSet = join(dir, "shelf-lean.binpb");
  await Promise.all([
    runBuf(["build", ".", "--path", "src/acme", "-o", fullSet]),
    runBuf(["build", ".", "--path", "src/acme", "--exclude-imports", "-o", leanSet]),
  ]);

  // The backend, from the descriptor set alone.
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(fullSet)));
  const service = registry.getService("acme.library.v1.ShelfService") as DescService;
  expect(service).toBeDefined();
  const shelf = registry.getMessage("acme.library.v1.Shelf") as DescMessage;
  const record = (method: string, req: Message, header: Headers): void => {
    seen.push({ method, request: toJson(service.methods.find((m) => m.name === method)!.input, req), authorization: header.get("authorization") });
  };
  const created = timestampFromMs(Date.UTC(2025, 0, 2, 3, 4, 5));
  const impl = {
    // The messages are dynamic: their fields are read by their local names.
    getShelf(req: Message, ctx: HandlerContext) {
      record("GetShelf", req, ctx.requestHeader);
      const { name } = req as unknown as { name: string };
      return create(shelf, { name, theme: `theme of ${name}`, bookCount: 9007199254740993n, createTime: created });
    },
    createShelf(req: Message, ctx: HandlerContext) {
      record("CreateShelf", req, ctx.requestHeader);
      const { shelf: body, shelfId } = req as unknown as { shelf?: { theme: string }; shelfId: string };
      return create(shelf, { name: `shelves/${shelfId}`, theme: body?.theme ?? "", createTime: created });
    },
  };
  backend = createMeshServer({ services: [{ service, impl }] });
  backendPort = await backend.listen(0, "127.0.0.1");
  backend.setServing(true);
});

afterAll(async () => {
  await backend?.shutdown();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** cleanEnv is the test's environment without the settings the CLI reads, plus NODE_ENV=test. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (/^(GATEWAY_|HOST$|NODE_OPTIONS$)/.test(k)) delete env[k];
  return { ...env, NODE_ENV: "test", HOST: "127.0.0.1" };
}

interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** run runs `raptorflow <args>` to its end. */
function run(args: string[]): Promise<Result> {
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [bin, ...args], { cwd: root, env: cleanEnv(), timeout: 25_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== "number") return reject(new Error(`raptorflow ${args.join(" ")}: ${err.message}\n${stderr}`));
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    }),
  );
}

interface Gateway {
  readonly url: string;
  /** stop sends SIGTERM and resolves with how the process ended. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  kill(): void;
}

/** startGateway runs `raptorflow gateway <args>` and waits for "gateway listening on port N". */
async function startGateway(args: string[]): Promise<Gateway> {
  const child: ChildProcessByStdio<null, Readable, Readable> = spawn(process.execPath, [bin, "gateway", ...args, "--port", "0"], {
    cwd: root,
    env: cleanEnv(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => {
        stdout += d.toString();
        const m = /^gateway listening on port (\d+)$/m.exec(stdout);
        if (m) resolve(Number(m[1]));
      });
      void exited.then(({ code }) => reject(new Error(`gateway exited ${code} before listening:\n${stdout}\n${stderr}`)));
    });
    expect(port).toBeGreaterThan(0);
    return {
      url: `http://127.0.0.1:${port}`,
      kill,
      async stop() {
        child.kill("SIGTERM");
        return { ...(await exited), stderr };
      },
    };
  } catch (e) {
    kill();
    throw e;
  }
}

/** exercise calls the REST surface of ShelfService through a running gateway, as a REST client would. */
async function exercise(url: string): Promise<void> {
  const before = seen.length;
  const health = await fetch(`${url}/healthz`);
  expect(health.status).toBe(200);

  const get = await fetch(`${url}/v1/shelves/fiction%20A`, { headers: { authorization: "Bearer acme-token" } });
  expect(get.status).toBe(200);
  expect(get.headers.get("content-type")).toMatch(/^application\/json/);
  expect(await get.json()).toEqual({
    name: "shelves/fiction A",
    theme: "theme of shelves/fiction A",
    bookCount: "9007199254740993",
    createTime: "2025-01-02T03:04:05Z",
  });

  const post = await fetch(`${url}/v1/shelves?shelfId=poetry`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ theme: "verse" }),
  });
  expect(post.status).toBe(201);
  expect(await post.json()).toEqual({ name: "shelves/poetry", theme: "verse", createTime: "2025-01-02T03:04:05Z" });

  // The success code is the primary binding's only.
  const additional = await fetch(`${url}/v1/shelves:create?shelf_id=drama`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ theme: "plays" }),
  });
  expect(additional.status).toBe(200);
  expect(await additional.json()).toEqual({ name: "shelves/drama", theme: "plays", createTime: "2025-01-02T03:04:05Z" });

  expect(seen.slice(before)).toEqual([
    { method: "GetShelf", request: { name: "shelves/fiction A" }, authorization: "Bearer acme-token" },
    { method: "CreateShelf", request: { shelf: { theme: "verse" }, shelfId: "poetry" }, authorization: null },
    { method: "CreateShelf", request: { shelf: { theme: "plays" }, shelfId: "drama" }, authorization: null },
  ]);

  const strict = await fetch(`${url}/v1/shelves`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"colour":"red"}' });
  expect(strict.status).toBe(400);
  expect(await strict.json()).toMatchObject({ code: 3, message: expect.stringContaining("colour") });

  const missing = await fetch(`${url}/v1/rooms/r1`);
  expect(missing.status).toBe(404);
  expect(await missing.json()).toMatchObject({ code: 5 });

  const wrongMethod = await fetch(`${url}/v1/shelves/s1`, { method: "DELETE" });
  expect(wrongMethod.status).toBe(405);
  expect(wrongMethod.headers.get("allow")).toBe("GET");
}

describe("raptorflow gateway", () => {
  it.each([
    { source: "a descriptor set", args: () => ["--descriptor-set", fullSet, "--upstream", `acme.library.v1.ShelfService=http://127.0.0.1:${backendPort}`] },
    { source: "the backend's server reflection", args: () => ["--upstream", `*=127.0.0.1:${backendPort}`] },
  ])("serves a service built elsewhere from $source, and exits 0 on SIGTERM", async ({ args }) => {
    const gw = await startGateway(args());
    try {
      await exercise(gw.url);
      const { code, signal, stderr } = await gw.stop();
      expect(signal, stderr).toBeNull();
      expect(code, stderr).toBe(0);
    } finally {
      gw.kill();
    }
  });

  it.concurrent.each([
    { name: "no --upstream", args: () => ["--descriptor-set", fullSet], code: 2, mentions: ["--upstream"] },
    { name: "--upstream without a URL", args: () => ["--upstream", "bad"], code: 2, mentions: ['"bad"'] },
    { name: "--upstream with a bad URL", args: () => ["--upstream", "acme.library.v1.ShelfService=not a url"], code: 2, mentions: ['"not a url"'] },
    { name: "an unknown flag", args: () => ["--bogus"], code: 2, mentions: ["--bogus"] },
    { name: "a bad --port", args: () => ["--upstream", "*=127.0.0.1:1", "--port", "http"], code: 2, mentions: ["--port", '"http"'] },
    {
      name: "a descriptor set that lacks its imports",
      args: () => ["--descriptor-set", leanSet, "--upstream", `acme.library.v1.ShelfService=127.0.0.1:${backendPort}`],
      code: 1,
      mentions: ["google/api/annotations.proto"],
    },
    {
      name: "a service that is not in the descriptor set",
      args: () => ["--descriptor-set", fullSet, "--upstream", `acme.library.v1.RoomService=127.0.0.1:${backendPort}`],
      code: 1,
      mentions: ["acme.library.v1.RoomService"],
    },
  ])("$name → exit $code naming the problem", async ({ args, code, mentions }) => {
    const r = await run(["gateway", ...args()]);
    expect(r.code, r.stderr).toBe(code);
    for (const m of mentions) expect(r.stderr).toContain(m);
    expect(r.stdout).not.toMatch(/listening/);
  });
});

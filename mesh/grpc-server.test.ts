import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type ServiceImpl } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import {
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  type ServerReflectionResponse,
} from "../gen/grpc/reflection/v1/reflection_pb.js";
import { AgentResultSchema, AgentService, ModelTier } from "../gen/raptorflow/agent/v1/agent_pb.js";
import { createMeshServer, type MeshServer } from "./grpc-server.js";
import { createGrpcTransport, type GrpcTransport } from "./grpc-transport.js";

// A test implementation of the real contract: each agent name triggers one behaviour.
const seen: { signalAborted?: Promise<void>; timeoutMs?: number; header?: string | null } = {};
const impl: ServiceImpl<typeof AgentService> = {
  listAgents: () => ({ agents: [{ name: "agents/a" }], totalSize: 1 }),
  getAgent(req, ctx) {
    seen.header = ctx.requestHeader.get("x-request-id");
    ctx.responseHeader.set("x-served-by", "test");
    ctx.responseTrailer.set("x-trailer", "t");
    if (req.name === "agents/missing") {
      throw new ConnectError("agent missing", Code.NotFound, undefined, [
        { desc: ErrorInfoSchema, value: { reason: "AGENT_NOT_FOUND", domain: "raptorflow.ai", metadata: { agent: req.name } } },
      ]);
    }
    if (req.name === "agents/crash") throw new Error("secret database password in this message");
    return { name: req.name };
  },
  async runAgent(req, ctx) {
    seen.timeoutMs = ctx.timeoutMs();
    seen.signalAborted = new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
    if (req.input === "hang") await seen.signalAborted;
    return create(AgentResultSchema, { agent: req.name, summary: req.input });
  },
  async *streamAgent(req) {
    for (let i = 0; i < 3; i++) yield { event: { case: "delta", value: `d${i}` } };
    if (req.input === "fail") throw new ConnectError("stream broke", Code.ResourceExhausted);
    yield { event: { case: "result", value: { agent: req.name } } };
  },
};

let server: MeshServer;
let transport: GrpcTransport;
let client: Client<typeof AgentService>;
let address: string;

beforeAll(async () => {
  server = createMeshServer({ services: [{ service: AgentService, impl }], drainTimeoutMs: 2000 });
  const port = await server.listen(0, "127.0.0.1");
  address = `127.0.0.1:${port}`;
  transport = createGrpcTransport({ address });
  client = createClient(AgentService, transport);
});
afterAll(async () => {
  transport.close();
  await server.shutdown();
});

describe("a Connect ServiceImpl served by grpc-js", () => {
  it("answers unary calls and carries request headers, response headers and trailers", async () => {
    let header: Headers | undefined;
    let trailer: Headers | undefined;
    const agent = await client.getAgent(
      { name: "agents/x" },
      { headers: { "x-request-id": "req-1" }, onHeader: (h) => (header = h), onTrailer: (t) => (trailer = t) },
    );
    expect(agent.name).toBe("agents/x");
    expect(seen.header).toBe("req-1");
    expect(header?.get("x-served-by")).toBe("test");
    expect(trailer?.get("x-trailer")).toBe("t");
  });

  it("sends a ConnectError's code, message and typed details", async () => {
    const err = await client.getAgent({ name: "agents/missing" }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.NotFound);
    expect((err as ConnectError).rawMessage).toBe("agent missing");
    const [info] = (err as ConnectError).findDetails(ErrorInfoSchema);
    expect(info.reason).toBe("AGENT_NOT_FOUND");
    expect(info.metadata.agent).toBe("agents/missing");
  });

  it("hides an unexpected exception behind INTERNAL without leaking its message", async () => {
    const err = ConnectError.from(await client.getAgent({ name: "agents/crash" }).catch((e: unknown) => e));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).not.toContain("password");
  });

  it("validates requests against the contract's buf.validate rules, naming the field", async () => {
    const err = ConnectError.from(await client.getAgent({ name: "not-a-name" }).catch((e: unknown) => e));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("name");
    const run = ConnectError.from(await client.runAgent({ name: "agents/a", input: "x", modelTier: 99 as ModelTier }).catch((e: unknown) => e));
    expect(run.code).toBe(Code.InvalidArgument);
    expect(run.rawMessage).toContain("model_tier");
  });

  it("streams server messages in order and ends with the handler's error", async () => {
    const got: string[] = [];
    for await (const ev of client.streamAgent({ name: "agents/a", input: "ok" })) got.push(ev.event.case ?? "");
    expect(got).toEqual(["delta", "delta", "delta", "result"]);
    const partial: string[] = [];
    const err = await (async () => {
      for await (const ev of client.streamAgent({ name: "agents/a", input: "fail" })) partial.push(String(ev.event.value));
    })().catch((e: unknown) => ConnectError.from(e));
    expect(partial).toEqual(["d0", "d1", "d2"]);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
  });

  it("passes the caller's deadline to the handler and cancels it when the deadline passes", async () => {
    const err = ConnectError.from(await client.runAgent({ name: "agents/a", input: "hang" }, { timeoutMs: 200 }).catch((e: unknown) => e));
    expect(err.code).toBe(Code.DeadlineExceeded);
    expect(seen.timeoutMs).toBeGreaterThan(0);
    expect(seen.timeoutMs).toBeLessThanOrEqual(200);
    await expect(seen.signalAborted).resolves.toBeUndefined();
  });

  it("cancels the handler when the client aborts", async () => {
    const ac = new AbortController();
    const call = client.runAgent({ name: "agents/a", input: "hang" }, { signal: ac.signal });
    await new Promise((r) => setTimeout(r, 50));
    ac.abort();
    expect(ConnectError.from(await call.catch((e: unknown) => e)).code).toBe(Code.Canceled);
    await expect(seen.signalAborted).resolves.toBeUndefined();
  });
});

/** reflect sends one reflection request over a raw grpc-js bidi stream and returns the answer. */
function reflect(path: string, request: Parameters<typeof create<typeof ServerReflectionRequestSchema>>[1]): Promise<ServerReflectionResponse> {
  const raw = new grpc.Client(address, grpc.credentials.createInsecure());
  const call = raw.makeBidiStreamRequest(
    path,
    (m: Uint8Array) => Buffer.from(m),
    (b: Buffer) => fromBinary(ServerReflectionResponseSchema, b),
  );
  return new Promise<ServerReflectionResponse>((resolve, reject) => {
    call.once("data", resolve);
    call.once("error", reject);
    call.write(toBinary(ServerReflectionRequestSchema, create(ServerReflectionRequestSchema, request)));
    call.end();
  }).finally(() => raw.close());
}

describe("server reflection", () => {
  for (const version of ["v1", "v1alpha"]) {
    const path = `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`;

    it(`${version}: lists the services, health and reflection included`, async () => {
      const res = await reflect(path, { messageRequest: { case: "listServices", value: "" } });
      expect(res.messageResponse.case).toBe("listServicesResponse");
      const names = res.messageResponse.case === "listServicesResponse" ? res.messageResponse.value.service.map((s) => s.name) : [];
      expect(names).toEqual([
        "raptorflow.agent.v1.AgentService",
        "raptorflow.ops.v1.StatusService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]);
    });

    it(`${version}: returns the file of a method with its imports, and NOT_FOUND for an unknown symbol`, async () => {
      const res = await reflect(path, { messageRequest: { case: "fileContainingSymbol", value: "raptorflow.agent.v1.AgentService.RunAgent" } });
      expect(res.messageResponse.case).toBe("fileDescriptorResponse");
      const files =
        res.messageResponse.case === "fileDescriptorResponse"
          ? res.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name)
          : [];
      expect(files[0]).toBe("raptorflow/agent/v1/agent.proto");
      expect(files).toContain("buf/validate/validate.proto");
      expect(files).toContain("google/api/annotations.proto");
      const missing = await reflect(path, { messageRequest: { case: "fileContainingSymbol", value: "no.such.Thing" } });
      expect(missing.messageResponse.case).toBe("errorResponse");
      expect(missing.messageResponse.case === "errorResponse" && missing.messageResponse.value.errorCode).toBe(5);
    });
  }

  it("answers extension queries from the descriptors", async () => {
    const res = await reflect("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", {
      messageRequest: { case: "allExtensionNumbersOfType", value: "google.protobuf.MethodOptions" },
    });
    expect(res.messageResponse.case).toBe("allExtensionNumbersResponse");
    // google.api.http is extension 72295728 of MethodOptions.
    expect(res.messageResponse.case === "allExtensionNumbersResponse" && res.messageResponse.value.extensionNumber).toContain(72295728);
  });
});

describe("health", () => {
  it("is NOT_SERVING until setServing(true), per service and overall", async () => {
    const health = createClient(Health, transport);
    server.setServing(false);
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
    server.setServing(true);
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect((await health.check({ service: "raptorflow.agent.v1.AgentService" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });
});

describe("server reflection by file name", () => {
  it("answers file_by_filename with the protoc path of the file", async () => {
    const res = await reflect("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", {
      messageRequest: { case: "fileByFilename", value: "raptorflow/agent/v1/agent.proto" },
    });
    expect(res.messageResponse.case).toBe("fileDescriptorResponse");
    const names =
      res.messageResponse.case === "fileDescriptorResponse"
        ? res.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name)
        : [];
    expect(names[0]).toBe("raptorflow/agent/v1/agent.proto");
  });
});

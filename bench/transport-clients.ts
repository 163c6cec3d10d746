import * as grpc from "@grpc/grpc-js";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport as createConnectGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { AgentSchema, AgentService, GetAgentRequestSchema, type Agent, type GetAgentRequest } from "../gen/raptorflow/agent/v1/agent_pb.js";
import { createGrpcTransport as createMeshGrpcTransport } from "../mesh/grpc-transport.js";
import { topology } from "../mesh/topology.js";
import { benchMethod, benchRequest } from "./agent-handler.js";

/** ClientKind names the client stacks the benchmark compares. */
export type ClientKind = "grpc-js" | "connect-grpc" | "mesh-transport";

/** BenchClient issues one `GetAgent` call per `call()` and is closed once done. */
export interface BenchClient {
  /** call sends `benchRequest` and resolves once the answer is decoded. */
  call(): Promise<unknown>;
  /** close releases the connection. */
  close(): void;
}

const path = `/${AgentService.typeName}/${benchMethod.name}`;

/**
 * grpcJsClient is a plain grpc-js client: `makeUnaryRequest` on a
 * `grpc.Client`, protobuf-es for (de)serialisation, no deadline, no
 * interceptors. It is the floor of what any client in Node can cost.
 */
export function grpcJsClient(address: string): BenchClient {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const serialize = (m: GetAgentRequest): Buffer => Buffer.from(toBinary(GetAgentRequestSchema, m));
  const deserialize = (b: Buffer): Agent => fromBinary(AgentSchema, b);
  return {
    call: () =>
      new Promise<Agent>((resolve, reject) => {
        client.makeUnaryRequest(path, serialize, deserialize, benchRequest, (err, res) => (err ? reject(err) : resolve(res!)));
      }),
    close: () => client.close(),
  };
}

/**
 * connectGrpcClient is Connect-ES's own gRPC transport from
 * `@connectrpc/connect-node` (node:http2) with Connect's typed client. It
 * gets the same 30 s default deadline as the mesh transport, so both clients
 * arm one timer per call.
 */
export function connectGrpcClient(address: string): BenchClient {
  const baseUrl = `http://${address}`;
  const sessionManager = new Http2SessionManager(baseUrl);
  const transport = createConnectGrpcTransport({
    baseUrl,
    sessionManager,
    defaultTimeoutMs: topology["v1-agents"].callPolicy.timeoutMs,
  });
  const client = createClient(AgentService, transport);
  return {
    call: () => client.getAgent(benchRequest),
    close: () => sessionManager.abort(),
  };
}

/**
 * meshTransportClient is what the mesh itself uses between services: our
 * `createGrpcTransport` (a Connect `Transport` on a grpc-js channel) with
 * Connect's typed client and the upstream's call policy from the topology
 * (30 s deadline, grpc-js retries of UNAVAILABLE), as `connectUpstream` builds it.
 */
export function meshTransportClient(address: string): BenchClient {
  const transport = createMeshGrpcTransport({ address, policy: topology["v1-agents"].callPolicy });
  const client = createClient(AgentService, transport);
  return {
    call: () => client.getAgent(benchRequest),
    close: () => transport.close(),
  };
}

/** createBenchClient builds a client of the given kind to `host:port`. */
export function createBenchClient(kind: ClientKind, address: string): BenchClient {
  switch (kind) {
    case "grpc-js":
      return grpcJsClient(address);
    case "connect-grpc":
      return connectGrpcClient(address);
    case "mesh-transport":
      return meshTransportClient(address);
  }
}

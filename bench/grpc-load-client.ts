/**
 * The gRPC side of the load benchmark (bench/load.bench.ts): a plain grpc-js
 * client for any unary method of the mesh's services, the cheapest a Node
 * client can be, so the load generator takes as little CPU from the mesh as
 * it can. The request is encoded once; an answer is decoded only when the
 * case checks it.
 */
import * as grpc from "@grpc/grpc-js";
import { fromBinary, fromJson, toBinary, type DescMethod, type DescService, type JsonValue } from "@bufbuild/protobuf";
import { AgentService } from "../gen/raptorflow/agent/v1/agent_pb.js";
import { OrchestratorService } from "../gen/raptorflow/v3/orchestrator_pb.js";

/** The services a load case may call. */
const services: readonly DescService[] = [OrchestratorService, AgentService];

/** GrpcTarget is one unary gRPC call, sent again and again. */
export interface GrpcTarget {
  /** address is `host:port` of the server. */
  readonly address: string;
  /** method is the full method name, for example `raptorflow.v3.OrchestratorService/CreateRun`. */
  readonly method: string;
  /** request is the request message in protobuf JSON. */
  readonly request: JsonValue;
  /** timeoutMs is each call's deadline (default 30 s, the mesh's call policy). */
  readonly timeoutMs?: number;
}

/** GrpcCaller sends the target's call; `call` resolves with the decoded answer when `decode` is on, else with its bytes. */
export interface GrpcCaller {
  /** output is the answer's message type. */
  readonly output: DescMethod["output"];
  call(): Promise<unknown>;
  close(): void;
}

/** findMethod resolves `package.Service/Method` among the services a load case may call. */
export function findMethod(name: string): DescMethod {
  const [serviceName, methodName] = name.split("/");
  const service = services.find((s) => s.typeName === serviceName);
  const method = service?.methods.find((m) => m.name === methodName);
  if (!method) throw new Error(`unknown method ${name}: the load client knows ${services.map((s) => s.typeName).join(", ")}`);
  if (method.methodKind !== "unary") throw new Error(`${name} is not unary`);
  return method;
}

/**
 * createGrpcCaller opens one grpc-js channel to the target (one HTTP/2
 * connection, as the mesh's own clients use) and returns its caller. With
 * `decode`, each answer is decoded with protobuf-es; without, it stays bytes.
 */
export function createGrpcCaller(target: GrpcTarget, decode: boolean): GrpcCaller {
  const method = findMethod(target.method);
  const client = new grpc.Client(target.address, grpc.credentials.createInsecure());
  const path = `/${method.parent.typeName}/${method.name}`;
  const encoded = Buffer.from(toBinary(method.input, fromJson(method.input, target.request)));
  const serialize = (): Buffer => encoded;
  const deserialize = decode ? (b: Buffer): unknown => fromBinary(method.output, b) : (b: Buffer): unknown => b;
  const timeoutMs = target.timeoutMs ?? 30_000;
  return {
    output: method.output,
    call: () =>
      new Promise((resolve, reject) => {
        client.makeUnaryRequest(path, serialize, deserialize, null, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) =>
          err ? reject(err) : resolve(res),
        );
      }),
    close: () => client.close(),
  };
}

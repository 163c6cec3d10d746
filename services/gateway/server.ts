import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import type { ConnectRouter } from "@connectrpc/connect";
import Fastify, { type FastifyInstance } from "fastify";
import { IcpService } from "../../gen/raptorflow/v1/icp_pb.js";
import { OrchestratorService } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { createGrpcTransport, type GrpcTransport } from "../../mesh/grpc-transport.js";
import { topology, upstreamAddress, type ServiceName } from "../../mesh/topology.js";
import { createForwarder } from "./forwarder.js";
import { restTranscoder } from "./transcoder.js";

/** GatewayOptions configure the gateway. */
export interface GatewayOptions {
  /** env gives the upstream addresses; defaults to process.env. */
  readonly env?: Record<string, string | undefined>;
  /** logger turns fastify's request log on (default: on unless NODE_ENV=test). */
  readonly logger?: boolean;
}

/**
 * build assembles the API gateway: REST (`/v3` and the legacy V1 routes)
 * transcoded to gRPC from the contracts' `google.api.http` options, and the
 * Connect and gRPC-Web protocols for browsers, all forwarded to the mesh over
 * grpc-js. It does not listen.
 */
export async function build(options: GatewayOptions = {}): Promise<FastifyInstance> {
  const env = options.env ?? process.env;
  const transports = new Map<ServiceName, GrpcTransport>();
  const transportTo = (name: ServiceName): GrpcTransport => {
    let t = transports.get(name);
    if (!t) {
      t = createGrpcTransport({ address: upstreamAddress(name, env), policy: topology[name].callPolicy });
      transports.set(name, t);
    }
    return t;
  };
  const services = [
    { service: OrchestratorService, transport: transportTo("orchestrator") },
    { service: IcpService, transport: transportTo("v1-agents") },
  ];

  const app = Fastify({ logger: options.logger ?? env.NODE_ENV !== "test", bodyLimit: 1024 * 1024 });
  let draining = false;
  app.addHook("onClose", async () => {
    draining = true;
    for (const t of transports.values()) t.close();
  });
  app.get("/healthz", async (_req, reply) => reply.code(draining ? 503 : 200).send({ status: draining ? "draining" : "serving" }));
  await app.register(fastifyConnectPlugin, {
    routes: (router: ConnectRouter) => {
      for (const { service, transport } of services) router.service(service, createForwarder(service, transport));
    },
  });
  await app.register(restTranscoder({ services, timeoutMs: topology.orchestrator.callPolicy.timeoutMs }));
  return app;
}

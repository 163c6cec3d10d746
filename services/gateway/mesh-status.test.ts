import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ServiceStatusSchema, ServingState, StatusService } from "../../gen/raptorflow/ops/v1/status_pb.js";
import { MeshStatusService } from "../../gen/raptorflow/v3/status_pb.js";
import { createServiceHealth } from "../../mesh/service-health.js";
import type { ServiceName } from "../../mesh/topology.js";
import { createMeshStatusImpl, meshReadiness, meshState, type Upstream } from "./mesh-status.js";

/** upstream answers StatusService as `answer` says. */
function upstream(name: ServiceName, answer: () => ServingState | Error): Upstream {
  return {
    name,
    transport: createRouterTransport(({ service }) =>
      service(StatusService, {
        getServiceStatus() {
          const a = answer();
          if (a instanceof Error) throw a;
          return create(ServiceStatusSchema, { service: name, state: a, version: "1.2.3" });
        },
      }),
    ),
  };
}

describe("the mesh's status", () => {
  it("is SERVING when every service is, DEGRADED when one is not, NOT_SERVING when the gateway or the orchestrator is down", () => {
    const of = (states: Record<string, ServingState>) => meshState(Object.entries(states).map(([service, state]) => create(ServiceStatusSchema, { service, state })));
    const { SERVING, DEGRADED, NOT_SERVING, UNSPECIFIED } = ServingState;
    expect(of({ gateway: SERVING, orchestrator: SERVING, "v1-agents": SERVING })).toBe(SERVING);
    expect(of({ gateway: SERVING, orchestrator: SERVING, "v1-agents": NOT_SERVING })).toBe(DEGRADED);
    expect(of({ gateway: SERVING, orchestrator: DEGRADED })).toBe(DEGRADED);
    expect(of({ gateway: SERVING, orchestrator: NOT_SERVING })).toBe(NOT_SERVING);
    expect(of({ gateway: SERVING, orchestrator: UNSPECIFIED })).toBe(NOT_SERVING);
  });

  it("asks every upstream; one that does not answer is reported with its error and its last health check", async () => {
    const health = createServiceHealth();
    health.setServing(true);
    health.watch({ name: "v2-agents", kind: "upstream", required: false, check: async () => false });
    await health.checkNow();
    const upstreams = [
      upstream("orchestrator", () => ServingState.SERVING),
      upstream("v1-agents", () => ServingState.SERVING),
      upstream("v2-agents", () => new ConnectError("connection refused", Code.Unavailable)),
      upstream("identity", () => ServingState.SERVING),
    ];
    const client = createClient(MeshStatusService, createRouterTransport(({ service }) => service(MeshStatusService, createMeshStatusImpl({ health, upstreams }))));
    const status = await client.getMeshStatus({});
    expect(status.services.map((s) => s.service)).toEqual(["gateway", "identity", "v1-agents", "v2-agents", "orchestrator"]);
    expect(status.services.find((s) => s.service === "v2-agents")).toMatchObject({ state: ServingState.NOT_SERVING, error: "connection refused", upstreams: [] });
    expect(status.state).toBe(ServingState.DEGRADED);
    expect(meshReadiness(health)).toMatchObject({ status: "degraded", services: [{ service: "v2-agents", status: "not_serving" }] });
    health.close();
  });

  it("refuses a caller a service refuses, rather than answering in part", async () => {
    const health = createServiceHealth();
    health.setServing(true);
    const upstreams = [upstream("orchestrator", () => new ConnectError("no access token", Code.Unauthenticated)), upstream("v1-agents", () => ServingState.SERVING)];
    const client = createClient(MeshStatusService, createRouterTransport(({ service }) => service(MeshStatusService, createMeshStatusImpl({ health, upstreams }))));
    await expect(client.getMeshStatus({})).rejects.toMatchObject({ code: Code.Unauthenticated });
    health.close();
  });
});

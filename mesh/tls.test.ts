import * as grpc from "@grpc/grpc-js";
import { Code, ConnectError, createClient, type ServiceImpl } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/raptorflow/agent/v1/agent_pb.js";
import { createTestPki, hasOpenssl, type TestPki } from "../test/support/certificates.js";
import { upstreamTransport } from "./clients.js";
import { createMeshServer, type MeshServer } from "./grpc-server.js";
import { createGrpcTransport } from "./grpc-transport.js";
import { channelCredentials, meshTlsFromEnv } from "./tls.js";

describe("meshTlsFromEnv", () => {
  it("is off without MESH_TLS_*, and refuses a partial setting, naming what is missing", () => {
    expect(meshTlsFromEnv({})).toBeUndefined();
    expect(() => meshTlsFromEnv({ MESH_TLS_CA: "/ca.pem" })).toThrow("mutual TLS needs MESH_TLS_CA, MESH_TLS_CERT and MESH_TLS_KEY together; missing MESH_TLS_CERT, MESH_TLS_KEY");
    expect(() => meshTlsFromEnv({ MESH_TLS_SERVER_NAME: "mesh" })).toThrow(/MESH_TLS_SERVER_NAME is set/);
    expect(() => meshTlsFromEnv({ MESH_TLS_CA: "/nope/ca.pem", MESH_TLS_CERT: "/nope/c.pem", MESH_TLS_KEY: "/nope/k.pem" })).toThrow("MESH_TLS_CA: cannot read /nope/ca.pem: ENOENT");
  });
});

describe.skipIf(!hasOpenssl)("mutual TLS between services", () => {
  let pki: TestPki;
  let other: TestPki;
  let server: MeshServer;
  let address: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    pki = createTestPki();
    other = createTestPki("someone else");
    const serverCert = pki.issue("v1-agents");
    const clientCert = pki.issue("orchestrator");
    const impl: Partial<ServiceImpl<typeof AgentService>> = { getAgent: (req) => ({ name: req.name }) };
    server = createMeshServer({ services: [{ service: AgentService, impl }] });
    const tls = meshTlsFromEnv({ MESH_TLS_CA: pki.ca.certFile, MESH_TLS_CERT: serverCert.certFile, MESH_TLS_KEY: serverCert.keyFile });
    const port = await server.listen(0, "127.0.0.1", tls);
    server.setServing(true);
    address = `127.0.0.1:${port}`;
    // Clients dial an IP address; the certificates name `localhost`, as a deployment's name the services' DNS names.
    env = { V1_AGENTS_ADDR: address, MESH_TLS_CA: pki.ca.certFile, MESH_TLS_CERT: clientCert.certFile, MESH_TLS_KEY: clientCert.keyFile, MESH_TLS_SERVER_NAME: "localhost" };
  });
  afterAll(async () => {
    await server?.shutdown();
    pki?.dispose();
    other?.dispose();
  });

  const getAgent = async (transport: ReturnType<typeof createGrpcTransport>): Promise<string> => {
    try {
      return (await createClient(AgentService, transport).getAgent({ name: "agents/icp_builder" }, { timeoutMs: 5_000 })).name;
    } catch (e) {
      return Code[ConnectError.from(e).code];
    } finally {
      transport.close();
    }
  };

  it("carries calls between services that present certificates of the mesh's authority", async () => {
    expect(await getAgent(upstreamTransport("v1-agents", { env }))).toBe("agents/icp_builder");
  });

  it("refuses a plaintext client, a client without a certificate and one whose certificate another authority signed", async () => {
    expect(await getAgent(createGrpcTransport({ address }))).toBe("Unavailable");
    expect(await getAgent(createGrpcTransport({ address, credentials: grpc.credentials.createSsl(pki.ca.cert) }))).toBe("Unavailable");
    const stranger = other.issue("stranger");
    const foreign = channelCredentials({ ca: pki.ca.cert, cert: stranger.cert, key: stranger.key });
    expect(await getAgent(createGrpcTransport({ address, credentials: foreign.credentials }))).toBe("Unavailable");
  });

  it("refuses a server whose certificate the client's authority did not sign", async () => {
    const impostorPki = createTestPki("impostor");
    try {
      const cert = impostorPki.issue("impostor");
      const stolen: Partial<ServiceImpl<typeof AgentService>> = { getAgent: () => ({ name: "agents/stolen" }) };
      const impostor = createMeshServer({ services: [{ service: AgentService, impl: stolen }] });
      const port = await impostor.listen(0, "127.0.0.1", { ca: impostorPki.ca.cert, cert: cert.cert, key: cert.key });
      expect(await getAgent(upstreamTransport("v1-agents", { env: { ...env, V1_AGENTS_ADDR: `127.0.0.1:${port}` } }))).toBe("Unavailable");
      await impostor.shutdown();
    } finally {
      impostorPki.dispose();
    }
  });
});

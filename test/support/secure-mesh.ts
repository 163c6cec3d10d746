import { createClient, type Client } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { createGrpcTransport, type GrpcTransport } from "../../mesh/grpc-transport.js";
import { createAccessTokenIssuer, type AccessTokenIssuer } from "../../platform/auth/access-tokens.js";
import type { Role } from "../../platform/auth/roles.js";
import { generateSigningKey, parseSigningKeys } from "../../platform/auth/signing-keys.js";

/** InProcessService is one service of the in-process mesh: where it listens and what it serves. */
export interface InProcessService {
  /** name is the service's name in the topology. */
  readonly name: "identity" | "v1-agents" | "v2-agents" | "orchestrator";
  /** address is `127.0.0.1:<port>`. */
  readonly address: string;
  /** serviceNames are the fully-qualified services its server answers. */
  readonly serviceNames: readonly string[];
}

/** SecureMesh is every gRPC service of the mesh built as its server builds it, in this process, with access tokens required. */
export interface SecureMesh {
  /** services are the running servers. */
  readonly services: readonly InProcessService[];
  /** env is the environment they were built with (AUTH=required, the signing keys, the addresses). */
  readonly env: Record<string, string>;
  /** tokens signs access tokens with the mesh's signing key. */
  readonly tokens: AccessTokenIssuer;
  /** token mints an access token for a role of an organization. */
  token(organization: string, role: Role, subject?: string): Promise<string>;
  /** client makes a gRPC client of a service, on the server that serves it. */
  client<S extends DescService>(service: S): Client<S>;
  /** stop closes every client and server. */
  stop(): Promise<void>;
}

/**
 * startSecureMesh builds identity, v1-agents, v2-agents and the
 * orchestrator with their real `build` functions (DATA_STORE=memory, the
 * offline LLM provider), listening on free loopback ports, upstreams first,
 * with `AUTH=required`, a fresh signing key set in IDENTITY_SIGNING_KEYS and
 * every verifier fetching the keys from the identity service over gRPC — as
 * `raptorflow start` wires them, in one process so a test stays fast.
 */
export async function startSecureMesh(extraEnv: Record<string, string> = {}): Promise<SecureMesh> {
  const keySet = JSON.stringify({ keys: [await generateSigningKey()] });
  const env: Record<string, string> = {
    NODE_ENV: "test",
    AUTH: "required",
    DATA_STORE: "memory",
    LLM_PROVIDER: "offline",
    IDENTITY_SIGNING_KEYS: keySet,
    ...extraEnv,
  };
  const keys = await parseSigningKeys(keySet, "test");
  const tokens = createAccessTokenIssuer({ keys, issuer: "raptorflow", audience: "raptorflow", ttlMs: 15 * 60_000 });
  const running: { name: InProcessService["name"]; server: { listen(p: number, h?: string): Promise<number>; setServing(s: boolean): void; close(): Promise<void>; serviceNames: readonly string[] } }[] = [];
  const services: InProcessService[] = [];
  const start = async (name: InProcessService["name"], build: () => Promise<(typeof running)[number]["server"]>, addrVar: string): Promise<void> => {
    const server = await build();
    const port = await server.listen(0, "127.0.0.1");
    server.setServing(true);
    running.push({ name, server });
    services.push({ name, address: `127.0.0.1:${port}`, serviceNames: server.serviceNames });
    env[addrVar] = `127.0.0.1:${port}`;
  };
  try {
    await start("identity", async () => (await import("../../services/identity/server.js")).build(env), "IDENTITY_ADDR");
    await start("v1-agents", async () => (await import("../../services/v1-agents/server.js")).build(env), "V1_AGENTS_ADDR");
    await start("v2-agents", async () => (await import("../../services/v2-agents/server.js")).build(env), "V2_AGENTS_ADDR");
    await start("orchestrator", async () => (await import("../../services/orchestrator/server.js")).build({ env }), "ORCHESTRATOR_ADDR");
  } catch (e) {
    for (const r of running.reverse()) await r.server.close();
    throw e;
  }
  const transports = new Map<string, GrpcTransport>();
  const transportOf = (address: string): GrpcTransport => {
    let t = transports.get(address);
    if (!t) transports.set(address, (t = createGrpcTransport({ address })));
    return t;
  };
  return {
    services,
    env,
    tokens,
    async token(organization, role, subject = `users/${role}-of-${organization}`) {
      return (await tokens.issue({ subject, organization, role })).token;
    },
    client(service) {
      const s = services.find((x) => x.serviceNames.includes(service.typeName));
      if (!s) throw new Error(`no server of the mesh serves ${service.typeName}`);
      return createClient(service, transportOf(s.address));
    },
    async stop() {
      for (const t of transports.values()) t.close();
      for (const r of [...running].reverse()) await r.server.close();
    },
  };
}

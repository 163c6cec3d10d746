import { createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AgentService } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { organizationHeader } from "../../mesh/call-context.js";
import { createAccessTokenIssuer } from "./access-tokens.js";
import { createServiceTokenInterceptor } from "./service-token.js";
import { generateSigningKey, parseSigningKeys } from "./signing-keys.js";
import { createTokenVerifier } from "./token-verifier.js";

/** setup is an AgentService in memory that answers with the authorization it was called with, reached through the service-token interceptor. */
async function setup(always = true) {
  const keys = await parseSigningKeys(JSON.stringify({ keys: [await generateSigningKey()] }), "test");
  let issued = 0;
  const base = createAccessTokenIssuer({ keys, issuer: "raptorflow", audience: "raptorflow", ttlMs: 60_000 });
  const issuer = { issue: (...args: Parameters<typeof base.issue>) => (issued++, base.issue(...args)) };
  const seen: string[] = [];
  const transport = createRouterTransport(({ service }) =>
    service(AgentService, {
      getAgent(_req, ctx) {
        seen.push(ctx.requestHeader.get("authorization") ?? "");
        return { name: "agents/x" };
      },
    }),
  {
    transport: { interceptors: [createServiceTokenInterceptor({ issuer, service: "orchestrator", always })] },
  });
  const verifier = createTokenVerifier({ keys: keys.publicJwks, issuer: "raptorflow", audience: "raptorflow" });
  return { client: createClient(AgentService, transport), seen, verifier, issued: () => issued };
}

describe("service tokens", () => {
  it("authenticate a call as services/<name> with the service role, for the organization the call names, replacing the caller's token", async () => {
    const { client, seen, verifier } = await setup();
    await client.getAgent({ name: "agents/x" }, { headers: { [organizationHeader]: "acme", authorization: "Bearer the-users-own-token" } });
    await client.getAgent({ name: "agents/x" });
    const [forAcme, forNone] = await Promise.all(seen.map((h) => verifier.verify(h.replace(/^Bearer /, ""))));
    expect(forAcme).toMatchObject({ subject: "services/orchestrator", organization: "acme", role: "service" });
    // A call that acts for no organization (the agent catalog) acts for the embedded `default` one.
    expect(forNone).toMatchObject({ subject: "services/orchestrator", organization: "default", role: "service" });
    expect(seen.join()).not.toContain("the-users-own-token");
  });

  it("under AUTH=optional, authenticates only the calls that carry a caller's token: an anonymous call stays anonymous", async () => {
    const { client, seen, verifier } = await setup(false);
    await client.getAgent({ name: "agents/x" }, { headers: { [organizationHeader]: "acme" } });
    await client.getAgent({ name: "agents/x" }, { headers: { [organizationHeader]: "acme", authorization: "Bearer the-users-own-token" } });
    expect(seen[0]).toBe("");
    expect(await verifier.verify(seen[1].replace(/^Bearer /, ""))).toMatchObject({ subject: "services/orchestrator", organization: "acme", role: "service" });
  });

  it("signs once per organization while the token is fresh", async () => {
    const { client, seen, issued } = await setup();
    for (let i = 0; i < 5; i++) await client.getAgent({ name: "agents/x" }, { headers: { [organizationHeader]: "acme" } });
    await client.getAgent({ name: "agents/x" }, { headers: { [organizationHeader]: "globex" } });
    expect(issued()).toBe(2);
    expect(new Set(seen).size).toBe(2);
  });
});

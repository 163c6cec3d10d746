import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { exportJWK, generateKeyPair, generateSecret } from "jose";
import { describe, expect, it } from "vitest";
import { IcpService } from "../gen/raptorflow/v1/icp_pb.js";
import { createGrpcTransport } from "../mesh/grpc-transport.js";
import { generateSigningKey, parseSigningKeys } from "../platform/auth/signing-keys.js";

/**
 * Production mode (NODE_ENV=production, as the Dockerfile sets it): no
 * service starts without a proper signing key where it needs one, and
 * access tokens are required unless AUTH says otherwise.
 */

const production = { NODE_ENV: "production", DATA_STORE: "memory", LLM_PROVIDER: "offline" };

async function keySet(jwk: object): Promise<string> {
  return JSON.stringify({ keys: [jwk] });
}

describe("production mode", () => {
  it("the identity service and the orchestrator refuse to start without a signing key", async () => {
    const identity = await import("../services/identity/server.js");
    const orchestrator = await import("../services/orchestrator/server.js");
    await expect(identity.build(production)).rejects.toThrow(/IDENTITY_SIGNING_KEYS \(or IDENTITY_SIGNING_KEYS_FILE\) is required when NODE_ENV=production/);
    await expect(orchestrator.build({ env: production })).rejects.toThrow(/IDENTITY_SIGNING_KEYS \(or IDENTITY_SIGNING_KEYS_FILE\) is required when NODE_ENV=production/);
  });

  it("they refuse weak keys: symmetric (HMAC) or RSA, a set whose active key cannot sign, a private part that is not the public part's", async () => {
    const identity = await import("../services/identity/server.js");
    const orchestrator = await import("../services/orchestrator/server.js");
    const hmac = { ...(await exportJWK(await generateSecret("HS256", { extractable: true }))), alg: "HS256" };
    const rsa = await exportJWK((await generateKeyPair("RS256", { extractable: true })).privateKey);
    const { d: _d, ...publicOnly } = await generateSigningKey();
    const mismatched = { ...(await generateSigningKey()), d: (await generateSigningKey()).d };
    for (const [what, jwk, why] of [
      ["HMAC", hmac, /not an Ed25519 \(EdDSA\) or P-256 \(ES256\) signing key/],
      ["RSA", rsa, /not an Ed25519 \(EdDSA\) or P-256 \(ES256\) signing key/],
      ["public only", publicOnly, /has no private part/],
      ["mismatched", mismatched, /cannot be imported|private part does not match its public part/],
    ] as const) {
      const env = { ...production, IDENTITY_SIGNING_KEYS: await keySet(jwk) };
      await expect(identity.build(env), what).rejects.toThrow(why);
      await expect(orchestrator.build({ env }), what).rejects.toThrow(why);
    }
  });

  it("verifiers refuse a key set that holds a private key (a secret spread too far)", async () => {
    const v1 = await import("../services/v1-agents/server.js");
    await expect(v1.build({ ...production, AUTH_JWKS: await keySet(await generateSigningKey()) })).rejects.toThrow(/AUTH_JWKS holds a private key/);
  });

  it("requires access tokens by default", async () => {
    const keys = await parseSigningKeys(await keySet(await generateSigningKey()), "test");
    const v1 = await import("../services/v1-agents/server.js");
    const server = await v1.build({ ...production, AUTH_JWKS: JSON.stringify(keys.publicJwks) });
    const port = await server.listen(0, "127.0.0.1");
    server.setServing(true);
    const transport = createGrpcTransport({ address: `127.0.0.1:${port}` });
    try {
      await createClient(IcpService, transport).listIcps({});
      expect.unreachable("a call without a token went through");
    } catch (e) {
      expect(ConnectError.from(e).code).toBe(Code.Unauthenticated);
    } finally {
      transport.close();
      await server.close();
    }
  });
});

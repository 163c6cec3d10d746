import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JSONWebKeySet } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { IdentityService } from "../../gen/raptorflow/identity/v1/identity_pb.js";
import { callerOrganization, organizationHeader, principalKey } from "../../mesh/call-context.js";
import { createAuthInterceptor } from "./auth-interceptor.js";
import { authSettings } from "./auth-from-env.js";
import { createTokenVerifier } from "./token-verifier.js";

let privateKey: CryptoKey;
let kid: string;
let keys: JSONWebKeySet;

beforeAll(async () => {
  const pair = await generateKeyPair("EdDSA");
  privateKey = pair.privateKey;
  const jwk = await exportJWK(pair.publicKey);
  kid = await calculateJwkThumbprint(jwk);
  keys = { keys: [{ ...jwk, kid, alg: "EdDSA", use: "sig" }] };
});

const token = (org = "acme", role = "marketer"): Promise<string> =>
  new SignJWT({ org, role })
    .setProtectedHeader({ alg: "EdDSA", kid, typ: "at+jwt" })
    .setSubject("users/0193")
    .setIssuer("raptorflow")
    .setAudience("raptorflow")
    .setIssuedAt()
    .setExpirationTime("5m")
    .setJti("jti-1")
    .sign(privateKey);

/**
 * clientWith serves a tiny IdentityService in memory behind the interceptor:
 * GetCurrentPrincipal answers what the handler sees (the principal and
 * callerOrganization), CreateToken is anonymous and answers whether it saw a
 * principal.
 */
function clientWith(required: boolean) {
  const transport = createRouterTransport(
    ({ service }) =>
      service(IdentityService, {
        getCurrentPrincipal(_req, ctx) {
          const p = ctx.values.get(principalKey);
          return { subject: p?.subject ?? "", organization: callerOrganization(ctx), roles: p ? [p.role] : [] };
        },
        createToken(_req, ctx) {
          return { accessToken: ctx.values.get(principalKey) ? "had a principal" : "anonymous" };
        },
      }),
    {
      router: {
        interceptors: [
          createAuthInterceptor({
            verifier: createTokenVerifier({ keys, issuer: "raptorflow", audience: "raptorflow" }),
            required,
            anonymous: (m) => m === IdentityService.method.createToken,
          }),
        ],
      },
    },
  );
  return createClient(IdentityService, transport);
}

async function failure(op: Promise<unknown>): Promise<ConnectError> {
  try {
    await op;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("expected a failure");
}

const signIn = { organization: "organizations/acme", credential: { case: "apiKey" as const, value: "rfk_abcdefgh_0123456789012345678901234567890123456789012" } };

describe("the auth interceptor", () => {
  it("optional: a call without a token goes on with no principal, acting for the header's organization", async () => {
    const c = clientWith(false);
    expect(await c.getCurrentPrincipal({})).toMatchObject({ subject: "", organization: "default", roles: [] });
    expect(await c.getCurrentPrincipal({}, { headers: { [organizationHeader]: "globex" } })).toMatchObject({ organization: "globex" });
  });

  it("puts the verified principal in the context; its organization wins, and a header naming another one is refused", async () => {
    const c = clientWith(false);
    const auth = { authorization: `Bearer ${await token("acme", "marketer")}` };
    expect(await c.getCurrentPrincipal({}, { headers: auth })).toMatchObject({ subject: "users/0193", organization: "acme", roles: ["marketer"] });
    expect(await c.getCurrentPrincipal({}, { headers: { ...auth, [organizationHeader]: "acme" } })).toMatchObject({ organization: "acme" });
    const other = await failure(c.getCurrentPrincipal({}, { headers: { ...auth, [organizationHeader]: "globex" } }));
    expect(other.code).toBe(Code.PermissionDenied);
  });

  it("refuses a bad token with UNAUTHENTICATED, saying why and never repeating it", async () => {
    const c = clientWith(false);
    const bad = `${await token()}x`;
    const err = await failure(c.getCurrentPrincipal({}, { headers: { authorization: `Bearer ${bad}` } }));
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toMatch(/^the access token/);
    expect(err.message).not.toContain(bad.split(".")[1]);
    const basic = await failure(c.getCurrentPrincipal({}, { headers: { authorization: "Basic dXNlcjpwYXNz" } }));
    expect(basic.code).toBe(Code.Unauthenticated);
    expect(basic.rawMessage).toBe("the authorization metadata must be `Bearer <token>`");
    expect(basic.message).not.toContain("dXNlcjpwYXNz");
  });

  it("required: a call without a token is UNAUTHENTICATED, except anonymous methods, where a bad token is ignored", async () => {
    const c = clientWith(true);
    const err = await failure(c.getCurrentPrincipal({}));
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toContain("authorization: Bearer <token>");
    expect((await c.createToken(signIn)).accessToken).toBe("anonymous");
    expect((await c.createToken(signIn, { headers: { authorization: "Bearer expired.or.bad" } })).accessToken).toBe("anonymous");
    expect((await c.createToken(signIn, { headers: { authorization: `Bearer ${await token()}` } })).accessToken).toBe("had a principal");
    expect(await c.getCurrentPrincipal({}, { headers: { authorization: `bearer ${await token("acme", "viewer")}` } })).toMatchObject({ roles: ["viewer"] });
  });
});

describe("authSettings", () => {
  it("defaults to optional verification (required in production) with issuer and audience raptorflow, and refuses unknown modes", () => {
    expect(authSettings({})).toEqual({ required: false, issuer: "raptorflow", audience: "raptorflow" });
    expect(authSettings({ NODE_ENV: "production" }).required).toBe(true);
    expect(authSettings({ NODE_ENV: "production", AUTH: "optional" }).required).toBe(false);
    expect(authSettings({ AUTH: "required", AUTH_ISSUER: "https://id.example.com", AUTH_AUDIENCE: "api" })).toEqual({ required: true, issuer: "https://id.example.com", audience: "api" });
    expect(() => authSettings({ AUTH: "off" })).toThrow(/AUTH must be "required" \(the default with NODE_ENV=production\) or "optional" \(the default otherwise\), got "off"/);
  });
});

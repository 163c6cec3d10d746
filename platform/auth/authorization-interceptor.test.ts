import { Code, ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { IdentityService } from "../../gen/raptorflow/identity/v1/identity_pb.js";
import { principalKey, type Principal } from "../../mesh/call-context.js";
import { createAuthorizationInterceptor } from "./authorization-interceptor.js";

/** as puts a principal in the context, as the authentication interceptor does after verifying a token. */
const as =
  (role: string | undefined): Interceptor =>
  (next) =>
  (req) => {
    if (role) req.contextValues.set(principalKey, { subject: "users/u", organization: "acme", role, tokenId: "t", expireTime: new Date() } satisfies Principal);
    return next(req);
  };

/** clients serve IdentityService (and Health, whose contract has no policy) in memory behind the interceptor, for a caller of `role`. */
function clients(role: string | undefined, required = true) {
  const transport = createRouterTransport(
    ({ service }) => {
      service(IdentityService, {
        getCurrentPrincipal: () => ({ subject: "users/u" }),
        listApiKeys: () => ({}),
        getJsonWebKeySet: () => ({}),
      });
      service(Health, { check: () => ({ status: 1 }) });
    },
    { router: { interceptors: [as(role), createAuthorizationInterceptor({ required })] } },
  );
  return { identity: createClient(IdentityService, transport), health: createClient(Health, transport) };
}

async function failure(op: Promise<unknown>): Promise<ConnectError> {
  try {
    await op;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("expected a failure");
}

describe("the authorization interceptor", () => {
  it("lets a role its method's policy lists through", async () => {
    expect(await clients("viewer").identity.getCurrentPrincipal({})).toMatchObject({ subject: "users/u" });
    expect(await clients("admin").identity.listApiKeys({ parent: "organizations/acme" })).toBeDefined();
  });

  it("refuses a role the policy does not list with PERMISSION_DENIED and an ErrorInfo naming the role and the method", async () => {
    const err = await failure(clients("marketer").identity.listApiKeys({ parent: "organizations/acme" }));
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.rawMessage).toBe('the role "marketer" may not call raptorflow.identity.v1.IdentityService/ListApiKeys (allowed: admin)');
    expect(err.findDetails(ErrorInfoSchema)[0]).toMatchObject({ reason: "ROLE_NOT_ALLOWED", domain: "raptorflow.ai", metadata: { role: "marketer", allowed: "admin" } });
  });

  it("lets anyone call a public method, with or without a principal", async () => {
    expect(await clients(undefined).identity.getJsonWebKeySet({})).toBeDefined();
    expect(await clients("viewer").identity.getJsonWebKeySet({})).toBeDefined();
  });

  it("needs a principal when required; lets a call without one through when optional (the embedded default)", async () => {
    expect((await failure(clients(undefined, true).identity.getCurrentPrincipal({}))).code).toBe(Code.Unauthenticated);
    expect(await clients(undefined, false).identity.getCurrentPrincipal({})).toBeDefined();
  });

  it("refuses every call of a method whose contract declares no policy, whoever calls", async () => {
    for (const role of ["admin", undefined]) {
      const err = await failure(clients(role, false).health.check({}));
      expect(err.code).toBe(Code.PermissionDenied);
      expect(err.rawMessage).toBe("grpc.health.v1.Health/Check declares no access policy, so nobody may call it");
    }
  });
});

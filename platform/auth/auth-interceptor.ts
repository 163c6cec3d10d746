import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { principalKey } from "../../mesh/call-context.js";
import type { TokenVerifier } from "./token-verifier.js";

/** AuthInterceptorOptions configure token verification on a server. */
export interface AuthInterceptorOptions {
  /** verifier checks the tokens. */
  readonly verifier: TokenVerifier;
  /**
   * required makes a token necessary on every call but the `anonymous`
   * ones (`AUTH=required`). Otherwise a call without a token goes on with no
   * principal, and a call with one must present a valid one.
   */
  readonly required: boolean;
  /**
   * anonymous tells which methods anyone may call without a token: signing
   * in, refreshing, the public keys. On those a token is not needed, and one
   * that does not verify is ignored rather than refused (a client may send
   * its expired access token along with the refresh). createMeshServer
   * answers it from the contracts: `(raptorflow.api.v1.policy).public`.
   */
  readonly anonymous?: (method: DescMethod) => boolean;
}

const bearer = /^Bearer +([A-Za-z0-9._~+/-]+=*)$/i;

/**
 * createAuthInterceptor verifies the `authorization: Bearer <jwt>` metadata
 * of every call and puts the verified Principal in the call's context values
 * (`principalKey`), where handlers (callerOrganization) and the
 * authorization interceptor, which runs after it, read it. A missing token
 * (when required) or a bad one is UNAUTHENTICATED; the message says why and
 * never repeats the token.
 */
export function createAuthInterceptor(options: AuthInterceptorOptions): Interceptor {
  return (next) => async (req) => {
    const anonymous = options.anonymous?.(req.method) ?? false;
    const header = req.header.get("authorization");
    if (header === null || header === "") {
      if (options.required && !anonymous) {
        throw new ConnectError("this call needs an access token: send the metadata `authorization: Bearer <token>`", Code.Unauthenticated);
      }
      return next(req);
    }
    const m = bearer.exec(header);
    try {
      if (!m) throw new ConnectError("the authorization metadata must be `Bearer <token>`", Code.Unauthenticated);
      req.contextValues.set(principalKey, await options.verifier.verify(m[1]));
    } catch (e) {
      if (!anonymous) throw e;
    }
    return next(req);
  };
}

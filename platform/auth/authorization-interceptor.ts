import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { principalKey } from "../../mesh/call-context.js";
import { accessPolicyOf } from "./access-policy.js";
import type { Role } from "./roles.js";

/** errorDomain is the `domain` of the ErrorInfo details of authorization errors. */
const errorDomain = "raptorflow.ai";

/**
 * createAuthorizationInterceptor enforces each method's access policy as its
 * contract declares it (`(raptorflow.api.v1.policy)`), after the
 * authentication interceptor has put the verified principal in the context:
 *
 * - a method without a policy refuses every call (PERMISSION_DENIED): access
 *   is never granted by omission;
 * - a public method lets every call through;
 * - a principal whose role the policy does not list is PERMISSION_DENIED,
 *   with an ErrorInfo (reason `ROLE_NOT_ALLOWED`, the role and the method);
 * - a call without a principal is UNAUTHENTICATED when `required`, and goes
 *   on otherwise (AUTH=optional: the embedded default's anonymous calls).
 *
 * It runs before request validation, so a caller who may not call a method
 * learns nothing about its request's rules.
 */
export function createAuthorizationInterceptor(options: { readonly required: boolean }): Interceptor {
  return (next) => async (req) => {
    const policy = accessPolicyOf(req.method);
    const path = `${req.service.typeName}/${req.method.name}`;
    if (!policy) throw new ConnectError(`${path} declares no access policy, so nobody may call it`, Code.PermissionDenied);
    if (policy.public) return next(req);
    const principal = req.contextValues.get(principalKey);
    if (!principal) {
      if (options.required) throw new ConnectError("this call needs an access token: send the metadata `authorization: Bearer <token>`", Code.Unauthenticated);
      return next(req);
    }
    if (!policy.roles.has(principal.role as Role)) {
      const allowed = [...policy.roles].join(", ");
      throw new ConnectError(`the role "${principal.role}" may not call ${path} (allowed: ${allowed})`, Code.PermissionDenied, undefined, [
        { desc: ErrorInfoSchema, value: { reason: "ROLE_NOT_ALLOWED", domain: errorDomain, metadata: { role: principal.role, method: path, allowed } } },
      ]);
    }
    return next(req);
  };
}

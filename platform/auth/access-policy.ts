import { getOption, hasOption, type DescMethod } from "@bufbuild/protobuf";
import { policy, Role as RoleOption } from "../../gen/raptorflow/api/v1/annotations_pb.js";
import type { Role } from "./roles.js";

/** AccessPolicy is who may call one method, as its contract declares it with `(raptorflow.api.v1.policy)`. */
export interface AccessPolicy {
  /** public methods need no access token (signing in, refreshing, signing out, the public keys). */
  readonly public: boolean;
  /** roles may call the method; empty for a public one. */
  readonly roles: ReadonlySet<Role>;
}

/** roleNames maps the contract's Role enum to the `role` claim of access tokens. */
const roleNames: Record<RoleOption, Role | undefined> = {
  [RoleOption.UNSPECIFIED]: undefined,
  [RoleOption.ADMIN]: "admin",
  [RoleOption.ANALYST]: "analyst",
  [RoleOption.MARKETER]: "marketer",
  [RoleOption.VIEWER]: "viewer",
  [RoleOption.SERVICE]: "service",
};

const policies = new WeakMap<DescMethod, AccessPolicy | null>();

/**
 * accessPolicyOf reads a method's `(raptorflow.api.v1.policy)` option, once
 * per method; undefined when the contract declares none (such a method
 * refuses every call: access is never granted by omission).
 */
export function accessPolicyOf(method: DescMethod): AccessPolicy | undefined {
  let p = policies.get(method);
  if (p === undefined) {
    p = null;
    if (hasOption(method, policy)) {
      const opt = getOption(method, policy);
      const roles = new Set(opt.roles.map((r) => roleNames[r]).filter((r): r is Role => r !== undefined));
      // A policy that is neither public nor names a role grants nothing: treated as no policy.
      if (opt.public || roles.size > 0) p = { public: opt.public, roles };
    }
    policies.set(method, p);
  }
  return p ?? undefined;
}

/** isPublicMethod tells whether a method's contract lets anyone call it without an access token. */
export function isPublicMethod(method: DescMethod): boolean {
  return accessPolicyOf(method)?.public ?? false;
}

import { createHash } from "node:crypto";
import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type ContextValues } from "@connectrpc/connect";

/**
 * propagatedHeaders are the request headers every hop passes on: the
 * caller's identity, the request id and the W3C trace context. The deadline
 * travels separately, as the gRPC deadline.
 */
export const propagatedHeaders = ["authorization", "x-request-id", "traceparent", "tracestate", "baggage", "x-raptorflow-organization", "cache-control"] as const;

/** forwardHeaders picks the headers of an incoming call that the next hop must see. */
export function forwardHeaders(incoming: Headers): Headers {
  const out = new Headers();
  for (const k of propagatedHeaders) {
    const v = incoming.get(k);
    if (v !== null) out.set(k, v);
  }
  return out;
}


/** organizationHeader carries the caller's organization between hops. */
export const organizationHeader = "x-raptorflow-organization";
const organizationPattern = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * organizationOf is the organization a call acts for; every record is scoped
 * to it. Until the identity service signs it into tokens (the security
 * issue), it comes from the `x-raptorflow-organization` metadata, and a call
 * without one acts for `default`, the embedded single-tenant organization.
 */
export function organizationOf(header: Headers): string {
  const org = header.get(organizationHeader);
  if (org === null || org === "") return "default";
  if (!organizationPattern.test(org)) {
    throw new ConnectError(`${organizationHeader}: "${org}" is not an organization id (lower-case letters, digits, -)`, Code.InvalidArgument);
  }
  return org;
}

/** isOrganizationId tells whether a string is shaped like an organization id (lower-case letters, digits, -; a UUID is one). */
export function isOrganizationId(s: string): boolean {
  return organizationPattern.test(s);
}

/**
 * Principal is who a call acts as, as a verified access token says
 * (platform/auth's interceptor verifies it). It is never read from plain
 * metadata.
 */
export interface Principal {
  /** subject is `users/{user}`, `apiKeys/{api_key}` or `services/{service}`. */
  readonly subject: string;
  /** organization is the organization id the token was issued for. */
  readonly organization: string;
  /** role is what the subject may do there: admin, analyst, marketer, viewer or service. */
  readonly role: string;
  /** tokenId is the token's `jti`, for logs and revocation lists. */
  readonly tokenId: string;
  /** expireTime is when the token stops working. */
  readonly expireTime: Date;
}

/** principalKey carries a call's verified Principal in its context values; undefined when the call presented no token. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "raptorflow principal" });

/**
 * callerOrganization is the organization a call acts for, preferring the
 * verified one: with a principal (a verified access token) it is the
 * token's organization, and an `x-raptorflow-organization` header naming
 * another one is PERMISSION_DENIED rather than silently ignored; without
 * one it is organizationOf(header).
 */
export function callerOrganization(context: { readonly requestHeader: Headers; readonly values: ContextValues }): string {
  const principal = context.values.get(principalKey);
  if (!principal) return organizationOf(context.requestHeader);
  const claimed = context.requestHeader.get(organizationHeader);
  if (claimed !== null && claimed !== "" && claimed !== principal.organization) {
    throw new ConnectError(`${organizationHeader} names another organization than the access token's`, Code.PermissionDenied);
  }
  return principal.organization;
}

/**
 * forwardCall is the metadata a handler's calls to the next service carry:
 * forwardHeaders, with `x-raptorflow-organization` set to the organization
 * the incoming call acts for (callerOrganization: the verified one). The
 * calling service's own credentials then replace `authorization` on the
 * way out (platform/auth's service tokens, minted for that organization).
 */
export function forwardCall(context: { readonly requestHeader: Headers; readonly values: ContextValues }): Headers {
  const out = forwardHeaders(context.requestHeader);
  out.set(organizationHeader, callerOrganization(context));
  return out;
}

/** Idempotency is a create's idempotency key with a digest of its request. */
export interface Idempotency {
  /** key is the client's `Idempotency-Key` (or a request's `request_id`). */
  readonly key: string;
  /** hash is a digest of the request, to tell a retry from a different request reusing the key. */
  readonly hash: string;
}

/**
 * idempotencyOf is a create's idempotency: the call's `idempotency-key`
 * metadata (the gateway fills it from `Idempotency-Key`), or else
 * `fallbackKey`, with a SHA-256 of the request message in its canonical
 * binary form. Undefined when the call has no key.
 */
export function idempotencyOf<S extends DescMessage>(schema: S, request: MessageShape<S>, header: Headers, fallbackKey?: string): Idempotency | undefined {
  const key = idempotencyKeyOf(header) ?? (fallbackKey || undefined);
  if (key === undefined) return undefined;
  const canonical = toBinary(schema, request, { writeUnknownFields: false });
  return { key, hash: createHash("sha256").update(canonical).digest("hex") };
}

/** keyReused is the error for an idempotency key reused with another request. */
export function keyReused(key: string): ConnectError {
  return new ConnectError(`idempotency key "${key}" was already used for a different request`, Code.AlreadyExists);
}

/** idempotencyKeyOf is the call's `idempotency-key` metadata (REST: `Idempotency-Key`), when it has a valid one. */
export function idempotencyKeyOf(header: Headers): string | undefined {
  const key = header.get("idempotency-key");
  if (key === null || key === "") return undefined;
  if (key.length > 200 || !/^[\x21-\x7e]+$/.test(key)) {
    throw new ConnectError("idempotency-key must be 1-200 visible ASCII characters", Code.InvalidArgument);
  }
  return key;
}

/**
 * propagatedHeaders are the request headers every hop passes on: the
 * caller's identity, the request id and the W3C trace context. The deadline
 * travels separately, as the gRPC deadline.
 */
export const propagatedHeaders = ["authorization", "x-request-id", "traceparent", "tracestate", "baggage"] as const;

/** forwardHeaders picks the headers of an incoming call that the next hop must see. */
export function forwardHeaders(incoming: Headers): Headers {
  const out = new Headers();
  for (const k of propagatedHeaders) {
    const v = incoming.get(k);
    if (v !== null) out.set(k, v);
  }
  return out;
}

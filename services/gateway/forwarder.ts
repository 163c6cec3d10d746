import type { DescMethodStreaming, DescMethodUnary, DescService } from "@bufbuild/protobuf";
import type { ServiceImpl, Transport } from "@connectrpc/connect";
import { createAsyncIterable } from "@connectrpc/connect/protocol";
import { forwardHeaders } from "../../mesh/call-context.js";

/**
 * createForwarder implements any service by forwarding each call to an
 * upstream transport, keeping the caller's deadline, cancellation and
 * propagated headers. The gateway uses it to offer the Connect and gRPC-Web
 * protocols (which browsers need) for services that live behind it.
 */
export function createForwarder<S extends DescService>(service: S, transport: Transport): ServiceImpl<S> {
  const impl: Record<string, unknown> = {};
  for (const method of service.methods) {
    switch (method.methodKind) {
      case "unary":
        impl[method.localName] = async (req: never, ctx: { signal: AbortSignal; timeoutMs(): number | undefined; requestHeader: Headers }) =>
          (await transport.unary(method as DescMethodUnary, ctx.signal, ctx.timeoutMs(), forwardHeaders(ctx.requestHeader), req)).message;
        break;
      case "server_streaming":
        impl[method.localName] = async function* (
          req: never,
          ctx: { signal: AbortSignal; timeoutMs(): number | undefined; requestHeader: Headers },
        ) {
          const res = await transport.stream(method as DescMethodStreaming, ctx.signal, ctx.timeoutMs(), forwardHeaders(ctx.requestHeader), createAsyncIterable([req]));
          yield* res.message;
        };
        break;
      default:
        // Client and bidi streams are not forwarded: browsers cannot send them.
        break;
    }
  }
  return impl as ServiceImpl<S>;
}

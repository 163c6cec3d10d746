import { once } from "node:events";
import * as grpc from "@grpc/grpc-js";
import { fromBinary, toBinary, type DescMethod, type DescService } from "@bufbuild/protobuf";
import {
  createContextValues,
  createHandlerContext,
  createServiceImplSpec,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type ServiceImpl,
} from "@connectrpc/connect";
import {
  createAsyncIterable,
  invokeUnaryImplementation,
  transformInvokeImplementation,
} from "@connectrpc/connect/protocol";
import { statusFromError } from "./grpc-errors.js";
import { headersFromMetadata, metadataFromHeaders } from "./metadata.js";

/** GrpcServiceAdapterOptions configures how a Connect ServiceImpl is served by grpc-js. */
export interface GrpcServiceAdapterOptions {
  /** interceptors run around every call, outermost first, exactly as on a Connect server. */
  readonly interceptors?: readonly Interceptor[];
  /** shutdownSignal aborts every in-flight call's context when the server is forced down. */
  readonly shutdownSignal?: AbortSignal;
  /**
   * typeName serves the service under another fully-qualified name with the
   * same messages, for example `grpc.reflection.v1alpha.ServerReflection`
   * with the v1 schema (the two share one wire format).
   */
  readonly typeName?: string;
}

/**
 * grpcServiceAdapter turns a handler written once in Connect-ES's
 * `ServiceImpl` shape into a grpc-js service definition and implementation.
 * protobuf-es does the (de)serialisation; Connect's own invocation code runs
 * the handler and the interceptors, so a handler behaves the same here and on
 * a Connect server (fastify, connect-node).
 */
export function grpcServiceAdapter<S extends DescService>(
  service: S,
  impl: Partial<ServiceImpl<S>>,
  options: GrpcServiceAdapterOptions = {},
): { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation } {
  const spec = createServiceImplSpec(service, impl);
  const typeName = options.typeName ?? service.typeName;
  const interceptors = [...(options.interceptors ?? [])];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const definition: Record<string, grpc.MethodDefinition<any, any>> = {};
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const method of service.methods) {
    const methodSpec = spec.methods[method.localName] as MethodImplSpec;
    definition[method.name] = {
      path: `/${typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: (m) => Buffer.from(toBinary(method.input, m)),
      requestDeserialize: (b: Buffer) => fromBinary(method.input, b),
      responseSerialize: (m) => Buffer.from(toBinary(method.output, m)),
      responseDeserialize: (b: Buffer) => fromBinary(method.output, b),
      originalName: method.localName,
    };
    implementation[method.name] = handlerFor(service, method, methodSpec, typeName, interceptors, options.shutdownSignal);
  }
  return { definition: definition as grpc.ServiceDefinition, implementation };
}

type AnyCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>;

function contextFor(
  service: DescService,
  method: DescMethod,
  typeName: string,
  call: AnyCall | grpc.ServerReadableStream<unknown, unknown>,
  shutdownSignal: AbortSignal | undefined,
): ReturnType<typeof createHandlerContext> {
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  const timeoutMs = Number.isFinite(deadlineMs) ? Math.max(1, deadlineMs - Date.now()) : undefined;
  const controller = new AbortController();
  (call as NodeJS.EventEmitter).once("cancelled", () => controller.abort());
  return createHandlerContext({
    service,
    method,
    protocolName: "grpc",
    requestMethod: "POST",
    url: `/${typeName}/${method.name}`,
    timeoutMs,
    shutdownSignal,
    requestSignal: controller.signal,
    requestHeader: headersFromMetadata(call.metadata),
    contextValues: createContextValues(),
  });
}

function sendHeader(call: AnyCall | grpc.ServerReadableStream<unknown, unknown>, ctx: HandlerContext): void {
  let any = false;
  ctx.responseHeader.forEach(() => (any = true));
  if (any) call.sendMetadata(metadataFromHeaders(ctx.responseHeader));
}

function handlerFor(
  service: DescService,
  method: DescMethod,
  spec: MethodImplSpec,
  typeName: string,
  interceptors: Interceptor[],
  shutdownSignal: AbortSignal | undefined,
): grpc.UntypedHandleCall {
  switch (spec.kind) {
    case "unary":
      return ((call: grpc.ServerUnaryCall<never, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const ctx = contextFor(service, method, typeName, call, shutdownSignal);
        return answer(call, callback, ctx, () => invokeUnaryImplementation(spec, ctx, call.request, interceptors));
      }) as unknown as grpc.UntypedHandleCall;
    case "client_streaming":
      return ((call: grpc.ServerReadableStream<never, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const ctx = contextFor(service, method, typeName, call, shutdownSignal);
        return answer(call, callback, ctx, async () => {
          let res: unknown;
          for await (const m of transformInvokeImplementation(spec, ctx, interceptors)(call as AsyncIterable<never>)) res = m;
          return res;
        });
      }) as unknown as grpc.UntypedHandleCall;
    case "server_streaming":
      return ((call: grpc.ServerWritableStream<never, unknown>) => {
        const ctx = contextFor(service, method, typeName, call, shutdownSignal);
        return writeAll(call, ctx, transformInvokeImplementation(spec, ctx, interceptors)(createAsyncIterable([call.request])));
      }) as unknown as grpc.UntypedHandleCall;
    case "bidi_streaming":
      return ((call: grpc.ServerDuplexStream<never, unknown>) => {
        const ctx = contextFor(service, method, typeName, call, shutdownSignal);
        return writeAll(call, ctx, transformInvokeImplementation(spec, ctx, interceptors)(call as AsyncIterable<never>));
      }) as unknown as grpc.UntypedHandleCall;
  }
}

/** answer sends the single response of a unary or client-streaming call, or its error. */
async function answer(
  call: grpc.ServerUnaryCall<never, unknown> | grpc.ServerReadableStream<never, unknown>,
  callback: grpc.sendUnaryData<unknown>,
  ctx: ReturnType<typeof createHandlerContext>,
  produce: () => Promise<unknown>,
): Promise<void> {
  try {
    const res = await produce();
    sendHeader(call, ctx);
    callback(null, res, metadataFromHeaders(ctx.responseTrailer));
  } catch (e) {
    callback(statusFromError(e, ctx.responseTrailer));
  } finally {
    done(ctx);
  }
}

/**
 * done releases a finished call's context: Connect's handler context arms a
 * timer for the deadline, which would otherwise live (and keep the process
 * alive) until the deadline passes.
 */
function done(ctx: ReturnType<typeof createHandlerContext>): void {
  ctx.abort();
}

async function writeAll(
  call: grpc.ServerWritableStream<never, unknown> | grpc.ServerDuplexStream<never, unknown>,
  ctx: ReturnType<typeof createHandlerContext>,
  output: AsyncIterable<unknown>,
): Promise<void> {
  let headerSent = false;
  try {
    for await (const m of output) {
      if (call.cancelled) return;
      if (!headerSent) {
        sendHeader(call, ctx);
        headerSent = true;
      }
      // Respect backpressure: a slow reader must not make us buffer the whole stream.
      if (!call.write(m)) await once(call, "drain", { signal: ctx.signal });
    }
    if (!headerSent) sendHeader(call, ctx);
    call.end(metadataFromHeaders(ctx.responseTrailer));
  } catch (e) {
    if (!call.cancelled) call.emit("error", statusFromError(e, ctx.responseTrailer));
  } finally {
    done(ctx);
  }
}

import * as grpc from "@grpc/grpc-js";
import {
  fromBinary,
  toBinary,
  create,
  type DescMessage,
  type DescMethodStreaming,
  type DescMethodUnary,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  type ContextValues,
  type Interceptor,
  type StreamResponse,
  type Transport,
  type UnaryResponse,
} from "@connectrpc/connect";
import { runStreamingCall, runUnaryCall } from "@connectrpc/connect/protocol";
import { errorFromStatus } from "./grpc-errors.js";
import { headersFromMetadata, metadataFromHeaders } from "./metadata.js";
import { resiliencePolicyOf, type CallPolicy } from "./topology.js";

type HeadersInit = ConstructorParameters<typeof Headers>[0];

/** GrpcTransportOptions configures a Connect transport that runs on a grpc-js channel. */
export interface GrpcTransportOptions {
  /** address is `host:port` of the upstream. */
  readonly address: string;
  /** policy is the upstream's call policy from the topology: the default deadline, and how often to reconnect. */
  readonly policy?: CallPolicy;
  /** interceptors run around every call, as on any Connect transport. */
  readonly interceptors?: readonly Interceptor[];
  /** credentials of the channel; insecure by default (the mesh's sidecars terminate TLS). */
  readonly credentials?: grpc.ChannelCredentials;
  /** channelOptions are extra grpc-js channel options. */
  readonly channelOptions?: grpc.ChannelOptions;
}

/** GrpcTransport is a Connect Transport that can be closed. */
export interface GrpcTransport extends Transport {
  /** close closes the underlying channel. */
  close(): void;
}

/**
 * createGrpcTransport returns a Connect `Transport` backed by a grpc-js
 * client, so services call each other with Connect's typed `createClient`
 * while the bytes move through grpc-js (about 1.6 times less client CPU per
 * call than Connect's own gRPC transport on our machines; see
 * docs/performance.md).
 * The channel has no service-config retry policy: it would retry UNAVAILABLE
 * for every method, idempotent or not. Retries of calls that are safe to
 * repeat come from the resilience interceptor (mesh/resilience.ts), which
 * mesh/clients.ts puts on every transport to the mesh; grpc-js's transparent
 * retries (of a call that never left this process) stay, being always safe.
 */
export function createGrpcTransport(options: GrpcTransportOptions): GrpcTransport {
  const channelOptions: grpc.ChannelOptions = {
    "grpc.keepalive_time_ms": 30_000,
    // Transparent retries only: without a retry policy in a service config, grpc-js retries nothing else.
    "grpc.enable_retries": 1,
    ...(options.policy ? reconnectOptions(options.policy) : {}),
    ...options.channelOptions,
  };
  const client = new grpc.Client(options.address, options.credentials ?? grpc.credentials.createInsecure(), channelOptions);
  const interceptors = [...(options.interceptors ?? [])];
  const defaultTimeoutMs = options.policy?.timeoutMs;

  function deadlineOf(signalTimeoutMs: number | undefined): grpc.Deadline {
    const t = signalTimeoutMs ?? defaultTimeoutMs;
    return t === undefined || t <= 0 ? Infinity : Date.now() + t;
  }

  function unaryCall<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    message: MessageShape<I>,
    header: Headers,
    deadline: grpc.Deadline,
    signal: AbortSignal | undefined,
  ): Promise<UnaryResponse<I, O>> {
    return new Promise<UnaryResponse<I, O>>((resolve, reject) => {
      const codec = codecOf(method);
      let responseHeader: Headers | undefined;
      // grpc-js runs the callback just before it emits "status" (with the
      // trailers), in the same tick: fill one Headers object in place so
      // the response's trailer is complete by the time a caller reads it.
      const trailer = new Headers();
      const cancel = (): void => call.cancel();
      const call = client.makeUnaryRequest<MessageShape<I>, MessageShape<O>>(
        codec.path,
        codec.serialize as (m: MessageShape<I>) => Buffer,
        codec.deserialize as (b: Buffer) => MessageShape<O>,
        message,
        metadataFromHeaders(header),
        { deadline },
        (err, res) => {
          signal?.removeEventListener("abort", cancel);
          if (err) return reject(errorFromStatus(err));
          resolve({ stream: false, service: method.parent, method, header: responseHeader ?? new Headers(), message: res!, trailer });
        },
      );
      call.on("metadata", (md) => (responseHeader = headersFromMetadata(md)));
      call.on("status", (st) => headersFromMetadata(st.metadata).forEach((v, k) => trailer.set(k, v)));
      if (signal?.aborted) call.cancel();
      else signal?.addEventListener("abort", cancel, { once: true });
    });
  }

  return {
    close: () => client.close(),
    async unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      // The deadline is fixed when the call starts: a retry, or a wait in a bulkhead's queue, spends it, not renews it.
      const deadline = deadlineOf(timeoutMs);
      if (interceptors.length === 0) {
        // No interceptors to run: go straight to grpc-js, which enforces the
        // deadline itself. Connect's runUnaryCall would add a second deadline
        // timer and two linked AbortControllers per call (~7% of the
        // gateway's CPU in a profile), for nothing here.
        return unaryCall(method, create(method.input, input), new Headers(header), deadline, signal);
      }
      return runUnaryCall<I, O>({
        interceptors,
        signal,
        timeoutMs: timeoutMs ?? defaultTimeoutMs,
        req: { stream: false, ...requestOf(method, header, contextValues), message: input },
        next: (req) => unaryCall(method, create(method.input, req.message as MessageInitShape<I>), req.header, deadline, req.signal),
      });
    },
    async stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      const deadline = deadlineOf(timeoutMs);
      return runStreamingCall<I, O>({
        interceptors,
        signal,
        timeoutMs: timeoutMs ?? defaultTimeoutMs,
        req: { stream: true, ...requestOf(method, header, contextValues), message: input },
        next: async (req) => {
          const codec = codecOf(method);
          const path = codec.path;
          const serialize = codec.serialize as (m: MessageShape<I>) => Buffer;
          const deserialize = codec.deserialize as (b: Buffer) => MessageShape<O>;
          const md = metadataFromHeaders(req.header);
          const callOptions = { deadline };
          let call: grpc.ClientReadableStream<MessageShape<O>> | grpc.ClientDuplexStream<MessageShape<I>, MessageShape<O>>;
          if (method.methodKind === "server_streaming") {
            let first: MessageShape<I> | undefined;
            for await (const m of req.message) {
              first = create(method.input, m as MessageInitShape<I>);
              break;
            }
            if (!first) throw new ConnectError("missing request message", Code.Internal);
            call = client.makeServerStreamRequest(path, serialize, deserialize, first, md, callOptions);
          } else if (method.methodKind === "bidi_streaming") {
            const duplex = client.makeBidiStreamRequest(path, serialize, deserialize, md, callOptions);
            void (async () => {
              for await (const m of req.message) duplex.write(create(method.input, m as MessageInitShape<I>));
              duplex.end();
            })().catch(() => duplex.cancel());
            call = duplex;
          } else {
            throw new ConnectError(`client streaming is not supported by the grpc-js transport (${path})`, Code.Unimplemented);
          }
          abortOn(req.signal, () => call.cancel());
          // grpc-js ends the readable side before it emits "error", so an
          // iteration may finish cleanly although the call failed (always so
          // for a trailers-only answer: an error before any message). Keep
          // the error and throw it when the messages run out.
          let failure: grpc.ServiceError | undefined;
          call.on("error", (e: grpc.ServiceError) => (failure ??= e));
          // Listen for the status before waiting for anything: a trailers-only
          // answer emits it right away.
          const trailer = new Headers();
          const ended = new Promise<void>((resolve) =>
            call.once("status", (st) => {
              headersFromMetadata(st.metadata).forEach((v, k) => trailer.set(k, v));
              resolve();
            }),
          );
          const header = await new Promise<Headers>((resolve) => {
            call.once("metadata", (m) => resolve(headersFromMetadata(m)));
            void ended.then(() => resolve(new Headers()));
          });
          async function* messages(): AsyncIterable<MessageShape<O>> {
            try {
              for await (const m of call as AsyncIterable<MessageShape<O>>) yield m;
              // The status (and with it any error) may come just after the last message.
              await ended;
              if (failure) throw failure;
            } catch (e) {
              throw errorFromStatus(e as grpc.ServiceError);
            } finally {
              // A consumer that stops early must not leave the call open.
              call.cancel();
            }
          }
          return { stream: true, service: method.parent, method, header, trailer, message: messages() };
        },
      });
    },
  };
}

interface Codec {
  readonly path: string;
  readonly serialize: (m: never) => Buffer;
  readonly deserialize: (b: Buffer) => unknown;
}

const codecs = new WeakMap<DescMethodUnary | DescMethodStreaming, Codec>();

/** codecOf gives a method's path and (de)serialisers, made once per method instead of per call. */
function codecOf(method: DescMethodUnary | DescMethodStreaming): Codec {
  let c = codecs.get(method);
  if (!c) {
    c = {
      path: `/${method.parent.typeName}/${method.name}`,
      serialize: (m: never) => Buffer.from(toBinary(method.input, m)),
      deserialize: (b: Buffer) => fromBinary(method.output, b),
    };
    codecs.set(method, c);
  }
  return c;
}

/** requestOf is what every request of a call carries besides its message, as Connect's transports fill it. */
function requestOf<M extends DescMethodUnary | DescMethodStreaming>(method: M, header: HeadersInit | undefined, contextValues: ContextValues | undefined) {
  return {
    service: method.parent,
    method,
    requestMethod: "POST",
    url: `/${method.parent.typeName}/${method.name}`,
    header: new Headers(header),
    contextValues: contextValues ?? createContextValues(),
  };
}

function abortOn(signal: AbortSignal, fn: () => void): void {
  if (signal.aborted) fn();
  else signal.addEventListener("abort", fn, { once: true });
}

/** grpcInitialReconnectBackoffMs is grpc-js's own first reconnect backoff. */
const grpcInitialReconnectBackoffMs = 1_000;

/**
 * reconnectOptions bound how long a channel waits between attempts to
 * reconnect to a lost upstream by the breaker's half-open delay: grpc-js's
 * default backoff grows to two minutes, and a circuit's probe after the
 * upstream is back would fail on a channel still waiting to reconnect.
 */
function reconnectOptions(policy: CallPolicy): grpc.ChannelOptions {
  const { halfOpenAfterMs } = resiliencePolicyOf(policy).breaker;
  return {
    "grpc.initial_reconnect_backoff_ms": Math.min(grpcInitialReconnectBackoffMs, halfOpenAfterMs),
    "grpc.max_reconnect_backoff_ms": halfOpenAfterMs,
  };
}

import * as grpc from "@grpc/grpc-js";
import { fromBinary, toBinary, type DescMessage, type DescMethodServerStreaming, type DescMethodUnary, type MessageShape } from "@bufbuild/protobuf";
import { create, type MessageInitShape } from "@bufbuild/protobuf";

/**
 * plainUnary calls a unary RPC with nothing but @grpc/grpc-js and the
 * protobuf-es generated schemas, as an internal team's client would: no mesh
 * code is involved, so the test sees exactly what the wire carries.
 */
export function plainUnary<I extends DescMessage, O extends DescMessage>(
  address: string,
  method: DescMethodUnary<I, O>,
  input: MessageInitShape<I>,
  options: { metadata?: grpc.Metadata; deadlineMs?: number } = {},
): Promise<{ message: MessageShape<O>; metadata: grpc.Metadata }> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  return new Promise<{ message: MessageShape<O>; metadata: grpc.Metadata }>((resolve, reject) => {
    let metadata = new grpc.Metadata();
    const call = client.makeUnaryRequest<MessageShape<I>, MessageShape<O>>(
      `/${method.parent.typeName}/${method.name}`,
      (m) => Buffer.from(toBinary(method.input, m)),
      (b) => fromBinary(method.output, b),
      create(method.input, input),
      options.metadata ?? new grpc.Metadata(),
      { deadline: options.deadlineMs === undefined ? Infinity : Date.now() + options.deadlineMs },
      (err, res) => (err ? reject(err) : resolve({ message: res!, metadata })),
    );
    call.on("metadata", (md) => (metadata = md));
  }).finally(() => client.close());
}

/** plainServerStream opens a server-streaming RPC with plain grpc-js; the caller iterates and cancels. */
export function plainServerStream<I extends DescMessage, O extends DescMessage>(
  address: string,
  method: DescMethodServerStreaming<I, O>,
  input: MessageInitShape<I>,
): { call: grpc.ClientReadableStream<MessageShape<O>>; close(): void } {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const call = client.makeServerStreamRequest<MessageShape<I>, MessageShape<O>>(
    `/${method.parent.typeName}/${method.name}`,
    (m) => Buffer.from(toBinary(method.input, m)),
    (b) => fromBinary(method.output, b),
    create(method.input, input),
  );
  return {
    call,
    close: () => {
      call.cancel();
      client.close();
    },
  };
}

import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { create, createFileRegistry, fromBinary, type DescService, type FileRegistry } from "@bufbuild/protobuf";
import {
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  file_google_protobuf_any,
  file_google_protobuf_api,
  file_google_protobuf_descriptor,
  file_google_protobuf_duration,
  file_google_protobuf_empty,
  file_google_protobuf_field_mask,
  file_google_protobuf_source_context,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_type,
  file_google_protobuf_wrappers,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createWritableIterable } from "@connectrpc/connect/protocol";
import { ServerReflection, type ServerReflectionRequestSchema } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createGrpcTransport } from "../../mesh/grpc-transport.js";

/** Upstream is where a gateway sends a service's calls, parsed from `http://host:port`, `https://host:port` or `host:port`. */
export interface Upstream {
  /** address is `host:port` for grpc-js. */
  readonly address: string;
  /** tls says whether to use TLS. */
  readonly tls: boolean;
}

/** parseUpstream reads an upstream URL; anything else is an error naming it. */
export function parseUpstream(url: string): Upstream {
  const m = /^(?:(https?):\/\/)?([^/\s]+:\d+)\/?$/.exec(url);
  if (!m) throw new Error(`upstream "${url}" must be http://host:port, https://host:port or host:port`);
  return { address: m[2], tls: m[1] === "https" };
}

/** credentialsOf gives the channel credentials of an upstream. */
export function credentialsOf(u: Upstream): grpc.ChannelCredentials {
  return u.tls ? grpc.credentials.createSsl() : grpc.credentials.createInsecure();
}

/**
 * loadDescriptorSet reads a binary FileDescriptorSet (`buf build -o x.binpb`
 * or `protoc --include_imports --descriptor_set_out`). It must hold every
 * import; a missing one is an error naming it.
 */
export function loadDescriptorSet(file: string): FileRegistry {
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(file));
  return registryOf(set.file, `descriptor set ${file}`);
}

const wellKnown = [
  file_google_protobuf_any,
  file_google_protobuf_api,
  file_google_protobuf_descriptor,
  file_google_protobuf_duration,
  file_google_protobuf_empty,
  file_google_protobuf_field_mask,
  file_google_protobuf_source_context,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_type,
  file_google_protobuf_wrappers,
];

/** registryOf builds a registry from file descriptors, filling in the well-known types when a source left them out. */
function registryOf(files: readonly FileDescriptorProto[], source: string): FileRegistry {
  const byName = new Map(files.map((f) => [f.name, f]));
  for (const wkt of wellKnown) if (!byName.has(wkt.proto.name)) byName.set(wkt.proto.name, wkt.proto);
  for (const f of byName.values()) {
    for (const dep of f.dependency) {
      if (!byName.has(dep)) throw new Error(`${source}: ${f.name} imports ${dep}, which is not in it (build the set with its imports)`);
    }
  }
  // createFileRegistry wants every file after its imports.
  const ordered: FileDescriptorProto[] = [];
  const done = new Set<string>();
  const visit = (f: FileDescriptorProto): void => {
    if (done.has(f.name)) return;
    done.add(f.name);
    for (const dep of f.dependency) visit(byName.get(dep)!);
    ordered.push(f);
  };
  byName.forEach(visit);
  return createFileRegistry(create(FileDescriptorSetSchema, { file: ordered }));
}

/**
 * loadFromReflection asks an upstream's gRPC server reflection (v1) for
 * every service it serves and the files that describe them, so a gateway can
 * run with no descriptor file at all.
 */
export async function loadFromReflection(upstream: Upstream, timeoutMs = 10_000): Promise<FileRegistry> {
  const transport = createGrpcTransport({ address: upstream.address, credentials: credentialsOf(upstream) });
  try {
    const client = createClient(ServerReflection, transport);
    const requests = createWritableIterable<MessageInitShape<typeof ServerReflectionRequestSchema>>();
    const stop = new AbortController();
    const responses = client.serverReflectionInfo(requests, { timeoutMs, signal: stop.signal })[Symbol.asyncIterator]();
    const ask = async (req: MessageInitShape<typeof ServerReflectionRequestSchema>) => {
      await requests.write(req);
      const next = await responses.next();
      if (next.done) throw new Error(`reflection at ${upstream.address} ended the stream early`);
      const res = next.value.messageResponse;
      if (res.case === "errorResponse") throw new Error(`reflection at ${upstream.address}: ${res.value.errorMessage}`);
      return res;
    };
    const listed = await ask({ messageRequest: { case: "listServices", value: "" } });
    const services = listed.case === "listServicesResponse" ? listed.value.service.map((s) => s.name) : [];
    const files = new Map<string, FileDescriptorProto>();
    const take = (res: Awaited<ReturnType<typeof ask>>): void => {
      if (res.case !== "fileDescriptorResponse") return;
      for (const bytes of res.value.fileDescriptorProto) {
        const f = fromBinary(FileDescriptorProtoSchema, bytes);
        files.set(f.name, f);
      }
    };
    for (const name of services) take(await ask({ messageRequest: { case: "fileContainingSymbol", value: name } }));
    // Servers may send only files we do not have yet; ask for any import still missing.
    const wkt = new Set(wellKnown.map((f) => f.proto.name));
    for (let missing = missingImports(files, wkt); missing.length; missing = missingImports(files, wkt)) {
      for (const name of missing) take(await ask({ messageRequest: { case: "fileByFilename", value: name } }));
    }
    requests.close();
    // Cancel the call, and read once more: Connect's stream wrapper releases
    // its deadline timer only on a read (it has no return()), and that timer
    // would otherwise keep the process alive until the deadline.
    stop.abort();
    await responses.next().catch(() => undefined);
    return registryOf([...files.values()], `reflection at ${upstream.address}`);
  } finally {
    transport.close();
  }
}

function missingImports(files: ReadonlyMap<string, FileDescriptorProto>, known: ReadonlySet<string>): string[] {
  const out = new Set<string>();
  for (const f of files.values()) for (const d of f.dependency) if (!files.has(d) && !known.has(d)) out.add(d);
  return [...out];
}

/**
 * selectServices picks services by full name from a registry; `*` means
 * every service in it except gRPC's own (health, reflection).
 */
export function selectServices(registry: FileRegistry, name: string): DescService[] {
  if (name === "*") {
    const all: DescService[] = [];
    for (const t of registry) if (t.kind === "service" && !t.typeName.startsWith("grpc.")) all.push(t);
    return all;
  }
  const s = registry.getService(name);
  if (!s) throw new Error(`service "${name}" is not in the descriptors`);
  return [s];
}

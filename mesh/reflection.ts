import { create, createRegistry, toBinary, type DescFile, type DescService, type MessageInitShape, type Registry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  ServerReflection,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "../gen/grpc/reflection/v1/reflection_pb.js";

/** reflectionTypeNames are the two reflection services we serve: v1 and the v1alpha that older grpcurl and buf curl ask for. */
export const reflectionTypeNames = ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"] as const;

/** reflectionService is the v1 descriptor; v1alpha is served with it under its own name (same wire format). */
export const reflectionService = ServerReflection;

type Answer = MessageInitShape<typeof ServerReflectionResponseSchema>["messageResponse"];

/**
 * createReflectionImpl answers gRPC server reflection from protobuf-es
 * descriptors: the files of the services we serve and everything they import.
 * `serviceNames` lists what `list_services` answers (including health and
 * reflection themselves).
 */
export function createReflectionImpl(
  services: readonly DescService[],
  extraFiles: readonly DescFile[],
  serviceNames: readonly string[],
): ServiceImpl<typeof ServerReflection> {
  const files = new Map<string, DescFile>();
  const add = (f: DescFile): void => {
    // Keyed by the file's path as protoc names it (`a/b.proto`): the form
    // `file_by_filename` asks for. DescFile.name drops the ".proto".
    if (files.has(f.proto.name)) return;
    files.set(f.proto.name, f);
    f.dependencies.forEach(add);
  };
  services.forEach((s) => add(s.file));
  extraFiles.forEach(add);
  const registry = createRegistry(...files.values());
  return {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        yield create(ServerReflectionResponseSchema, {
          validHost: req.host,
          originalRequest: req,
          messageResponse: answer(req, files, registry, serviceNames),
        });
      }
    },
  };
}

function notFound(what: string): Answer {
  // 5 is NOT_FOUND: reflection reports errors in-band, with gRPC codes.
  return { case: "errorResponse", value: { errorCode: 5, errorMessage: `${what} not found` } };
}

function fileAnswer(file: DescFile | undefined, what: string): Answer {
  if (!file) return notFound(what);
  return { case: "fileDescriptorResponse", value: { fileDescriptorProto: withDependencies(file) } };
}

function answer(
  req: ServerReflectionRequest,
  files: ReadonlyMap<string, DescFile>,
  registry: Registry,
  serviceNames: readonly string[],
): Answer {
  const m = req.messageRequest;
  switch (m.case) {
    case "listServices":
      return { case: "listServicesResponse", value: { service: serviceNames.map((name) => ({ name })) } };
    case "fileByFilename":
      return fileAnswer(files.get(m.value), `file ${m.value}`);
    case "fileContainingSymbol":
      return fileAnswer(fileOfSymbol(registry, m.value), `symbol ${m.value}`);
    case "fileContainingExtension": {
      const message = registry.getMessage(m.value.containingType);
      const ext = message ? registry.getExtensionFor(message, m.value.extensionNumber) : undefined;
      return fileAnswer(ext?.file, `extension ${m.value.containingType}(${m.value.extensionNumber})`);
    }
    case "allExtensionNumbersOfType": {
      if (!registry.getMessage(m.value)) return notFound(`type ${m.value}`);
      const numbers: number[] = [];
      for (const t of registry) {
        if (t.kind === "extension" && t.extendee.typeName === m.value) numbers.push(t.number);
      }
      return { case: "allExtensionNumbersResponse", value: { baseTypeName: m.value, extensionNumber: numbers } };
    }
    default:
      // 3 is INVALID_ARGUMENT.
      return { case: "errorResponse", value: { errorCode: 3, errorMessage: "the request names no reflection query" } };
  }
}

/** fileOfSymbol finds the file declaring a service, method, message, field, enum, enum value or extension by full name. */
function fileOfSymbol(registry: Registry, symbol: string): DescFile | undefined {
  const direct = registry.get(symbol);
  if (direct) return direct.file;
  // Methods, fields and enum values are not registry entries: look their parent up.
  const dot = symbol.lastIndexOf(".");
  if (dot < 0) return undefined;
  const parent = registry.get(symbol.slice(0, dot));
  const member = symbol.slice(dot + 1);
  switch (parent?.kind) {
    case "service":
      return parent.methods.some((x) => x.name === member) ? parent.file : undefined;
    case "message":
      return parent.fields.some((x) => x.name === member) ? parent.file : undefined;
    case "enum":
      return parent.values.some((x) => x.name === member) ? parent.file : undefined;
    default:
      return undefined;
  }
}

/** withDependencies serialises a file and, after it, every file it imports transitively. */
function withDependencies(file: DescFile): Uint8Array[] {
  const seen = new Set<string>();
  const out: Uint8Array[] = [];
  const visit = (f: DescFile): void => {
    if (seen.has(f.name)) return;
    seen.add(f.name);
    out.push(toBinary(FileDescriptorProtoSchema, f.proto));
    f.dependencies.forEach(visit);
  };
  visit(file);
  return out;
}

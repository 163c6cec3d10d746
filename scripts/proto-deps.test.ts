// Verifies scripts/proto-deps.mjs the only way that matters: buf compiles what
// it writes, and the buf/validate/validate.proto it prints from the descriptor
// embedded in @bufbuild/protovalidate compiles back to that very descriptor,
// custom option values included.
//
// Two buf flags keep the comparison free of normalisation:
// - --exclude-source-info: the embedded descriptor has no source_code_info
//   (protoc-gen-es strips it), so the rebuilt one must not have it either.
// - --as-file-descriptor-set: without it buf writes a buf Image, which adds
//   buf's own extension (field 8042) to every FileDescriptorProto.
// Everything else, json_name included, is compared as is.

import { spawnSync, execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createFileRegistry,
  createRegistry,
  equals,
  fromBinary,
  hasExtension,
  toBinary,
  toJson,
  type DescFile,
  type FileRegistry,
  type Registry,
} from "@bufbuild/protobuf";
import {
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  file_google_protobuf_descriptor,
  type DescriptorProto,
  type FileDescriptorProto,
  type FileDescriptorSet,
} from "@bufbuild/protobuf/wkt";
import {
  file_buf_validate_validate,
  field,
  predefined,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

const ROOT = path.resolve(import.meta.dirname, "..");
const SCRIPT = path.join(ROOT, "scripts", "proto-deps.mjs");
const BUF = path.join(ROOT, "node_modules", ".bin", "buf");
const VALIDATE = "buf/validate/validate.proto";
const GOOGLE_FILES = [
  "google/api/annotations.proto",
  "google/api/client.proto",
  "google/api/field_behavior.proto",
  "google/api/http.proto",
  "google/api/launch_stage.proto",
  "google/api/resource.proto",
  "google/rpc/code.proto",
  "google/rpc/error_details.proto",
  "google/rpc/status.proto",
];
const GRPC_FILES = ["grpc/health/v1/health.proto", "grpc/reflection/v1/reflection.proto", "grpc/reflection/v1alpha/reflection.proto"];

interface ProtoDepsModule {
  printProtoFile(file: DescFile, opts?: { header?: string; files?: FileRegistry }): string;
}

/** runScript runs the CLI as postinstall does, into `outDir`. */
function runScript(outDir: string) {
  const started = performance.now();
  const r = spawnSync(process.execPath, [SCRIPT, outDir], { encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - started };
}

/** listFiles lists a folder recursively as sorted forward-slash relative paths. */
function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join("/"))
    .sort();
}

/**
 * bufBuild compiles `dir` (optionally only `paths` and their imports) with a
 * throwaway buf.yaml, since the generated folder itself must not carry one
 * (the repository's buf.yaml lists proto-deps as a module).
 */
function bufBuild(dir: string, paths: string[] = []): FileDescriptorSet {
  const config = path.join(dir, "buf.yaml");
  const out = path.join(path.dirname(dir), `${path.basename(dir)}.binpb`);
  writeFileSync(config, "version: v2\n");
  try {
    execFileSync(
      BUF,
      [
        "build",
        dir,
        ...paths.flatMap((p) => ["--path", path.join(dir, p)]),
        "--exclude-source-info",
        "--as-file-descriptor-set",
        "-o",
        out,
      ],
      { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
    );
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`buf build ${dir} failed:\n${e.stderr ?? e.message}`);
  } finally {
    rmSync(config);
  }
  return fromBinary(FileDescriptorSetSchema, readFileSync(out));
}

/** fileOf picks one file out of a FileDescriptorSet. */
function fileOf(set: FileDescriptorSet, name: string): FileDescriptorProto {
  const f = set.file.find((x) => x.name === name);
  if (!f) throw new Error(`${name} missing from buf output (got ${set.file.map((x) => x.name).join(", ")})`);
  return f;
}

/**
 * expectSameDescriptor asserts two FileDescriptorProtos are equal including
 * extension values inside options (which protobuf-es keeps as unknown fields
 * and `equals` ignores unless asked). The JSON comparison comes first because
 * it prints a readable diff, with extensions spelled out via the registry.
 */
function expectSameDescriptor(actual: FileDescriptorProto, expected: FileDescriptorProto, registry: Registry) {
  expect(toJson(FileDescriptorProtoSchema, actual, { registry })).toEqual(
    toJson(FileDescriptorProtoSchema, expected, { registry }),
  );
  expect(
    equals(FileDescriptorProtoSchema, actual, expected, { registry, extensions: true, unknown: true }),
  ).toBe(true);
}

/** countFieldsWith counts fields carrying an option extension, so comparisons cannot pass vacuously. */
function countFieldsWith(file: FileDescriptorProto, ext: typeof field | typeof predefined): number {
  const walk = (m: DescriptorProto): number =>
    m.field.filter((f) => f.options && hasExtension(f.options, ext)).length +
    m.nestedType.reduce((n, x) => n + walk(x), 0);
  return file.messageType.reduce((n, m) => n + walk(m), 0);
}

let tmp: string;
let out: string;
let first: ReturnType<typeof runScript>;

beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), "proto-deps-test-"));
  out = path.join(tmp, "proto-deps");
  first = runScript(out);
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe("scripts/proto-deps.mjs", () => {
  it("writes the google files and validate.proto, printing one line, fast", () => {
    expect(first.stderr).toBe("");
    expect(first.status).toBe(0);
    expect(first.stdout.trimEnd().split("\n")).toHaveLength(1);
    expect(first.stdout).toMatch(/^proto-deps: 13 files in .* \(14 written, 0 removed\) in \d+ ms\n$/);
    expect(first.ms).toBeLessThan(2000);
    expect(listFiles(out)).toEqual([".proto-deps", VALIDATE, ...GOOGLE_FILES, ...GRPC_FILES].sort());
  });

  it("copies the google files verbatim from google-proto-files", () => {
    // Resolved from the script's location, exactly as the script does.
    const pkg = path.dirname(createRequire(SCRIPT).resolve("google-proto-files/package.json"));
    for (const f of GOOGLE_FILES) {
      expect(readFileSync(path.join(out, f)), f).toEqual(readFileSync(path.join(pkg, f)));
    }
  });

  it("writes a folder buf compiles, every file included", () => {
    const set = bufBuild(out);
    const names = set.file.map((f) => f.name);
    for (const f of [...GOOGLE_FILES, VALIDATE]) expect(names).toContain(f);
  });

  it("prints validate.proto that compiles back to the embedded descriptor, options included", () => {
    const set = bufBuild(out, [VALIDATE]);
    const rebuilt = fileOf(set, VALIDATE);
    const original = file_buf_validate_validate.proto;
    const registry = createRegistry(file_buf_validate_validate, file_google_protobuf_descriptor);

    expectSameDescriptor(rebuilt, original, registry);

    // The equality above covers the CEL rules only if they are there at all.
    const rules = countFieldsWith(original, predefined);
    expect(rules).toBeGreaterThan(100);
    expect(countFieldsWith(rebuilt, predefined)).toBe(rules);
  });

  it("is idempotent: a second run changes nothing and leaves mtimes alone", () => {
    const before = new Map(listFiles(out).map((f) => [f, statSync(path.join(out, f)).mtimeMs]));
    const again = runScript(out);
    expect(again.status).toBe(0);
    expect(again.stdout).toMatch(/\(0 written, 0 removed\)/);
    const after = new Map(listFiles(out).map((f) => [f, statSync(path.join(out, f)).mtimeMs]));
    expect(after).toEqual(before);
  });

  it("removes stale files and folders, restores edited ones", () => {
    writeFileSync(path.join(out, "google", "api", "stale.proto"), "syntax = \"proto3\";\n");
    mkdirSync(path.join(out, "old", "pkg"), { recursive: true });
    writeFileSync(path.join(out, "old", "pkg", "gone.proto"), "syntax = \"proto3\";\n");
    writeFileSync(path.join(out, VALIDATE), "// hand edit\n");

    const r = runScript(out);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/\(1 written, 2 removed\)/);
    expect(existsSync(path.join(out, "google", "api", "stale.proto"))).toBe(false);
    expect(existsSync(path.join(out, "old"))).toBe(false);
    expect(readFileSync(path.join(out, VALIDATE), "utf8")).toMatch(/^\/\/ Code generated/);
  });

  it("refuses to wipe a non-empty folder it did not create", () => {
    const foreign = path.join(tmp, "foreign");
    mkdirSync(foreign);
    writeFileSync(path.join(foreign, "keep.txt"), "mine\n");

    const r = runScript(foreign);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^proto-deps: failed: .*refusing to overwrite it\n$/);
    expect(listFiles(foreign)).toEqual(["keep.txt"]);
  });

  it("prints other syntax features faithfully (proto2, proto3, editions 2023/2024)", async () => {
    const { printProtoFile }: ProtoDepsModule = await import(pathToFileURL(SCRIPT).href);
    const srcDir = path.join(tmp, "fixture-src");
    const printedDir = path.join(tmp, "fixture-printed");
    for (const [name, text] of Object.entries(FIXTURE)) {
      mkdirSync(path.dirname(path.join(srcDir, name)), { recursive: true });
      writeFileSync(path.join(srcDir, name), text);
    }
    const compiled = bufBuild(srcDir);
    const registry = createFileRegistry(compiled);

    for (const name of Object.keys(FIXTURE)) {
      const desc = registry.getFile(name);
      if (!desc) throw new Error(`${name} not compiled`);
      mkdirSync(path.dirname(path.join(printedDir, name)), { recursive: true });
      writeFileSync(path.join(printedDir, name), printProtoFile(desc, { files: registry }));
    }
    const recompiled = bufBuild(printedDir);

    for (const name of Object.keys(FIXTURE)) {
      const original = fileOf(compiled, name);
      const rebuilt = fileOf(recompiled, name);
      expectSameDescriptor(rebuilt, original, registry);
      // Same compiler on both sides, so even the bytes must match; this also
      // catches what `equals` forgives (-0 vs 0, NaN payloads).
      expect(toBinary(FileDescriptorProtoSchema, rebuilt), name).toEqual(
        toBinary(FileDescriptorProtoSchema, original),
      );
    }
  });
});

/**
 * Sources exercising what validate.proto does not use: groups, maps, defaults,
 * json_name, proto3 optional, services, enum aliases and value options,
 * extension range options, nested extensions, `import public`/`import option`,
 * shadowed type names, editions features and edition 2024 visibility, plus
 * custom option values of every scalar kind (escapes, -0, inf, 64-bit limits),
 * repeated and map fields and an extension inside a message literal.
 */
const FIXTURE: Record<string, string> = {
  "fixture/opts.proto": String.raw`syntax = "proto2";
package fx.opts;
import "google/protobuf/descriptor.proto";
message Scalars {
  optional double d = 1;
  optional float f = 2;
  optional int64 i64 = 3;
  optional uint64 u64 = 4;
  optional sint32 s32 = 5;
  optional bytes b = 6;
  optional string s = 7;
  optional bool ok = 8;
  optional Kind kind = 9;
  repeated int32 nums = 10;
  repeated Scalars children = 11;
  map<string, int32> counts = 12;
  optional group Grp = 13 { optional int32 x = 1; }
  extensions 100 to 200;
}
enum Kind { KIND_UNSPECIFIED = 0; KIND_A = 1; KIND_B = -2; }
extend Scalars { optional string ext_note = 100; }
extend google.protobuf.FieldOptions {
  optional Scalars rich = 50001;
  repeated int64 many = 50002;
  optional double num = 50003;
  optional bytes raw = 50004;
  optional Kind kind = 50005;
}
extend google.protobuf.FileOptions { optional Scalars file_rich = 50001; }
extend google.protobuf.MessageOptions { optional string label = 50001; }
extend google.protobuf.OneofOptions { optional int32 weight = 50001; }
extend google.protobuf.EnumOptions { optional string prefix = 50001; }
extend google.protobuf.EnumValueOptions { optional bool hidden = 50001; }
extend google.protobuf.ServiceOptions { optional string svc = 50001; }
extend google.protobuf.MethodOptions { optional string route = 50001; }
extend google.protobuf.ExtensionRangeOptions { optional string why = 50001; }
`,
  "fixture/p2.proto": String.raw`syntax = "proto2";
package fx.p2;
import "fixture/opts.proto";
option java_package = "fx.p2";
option optimize_for = CODE_SIZE;
option (fx.opts.file_rich) = { s: "file \"x\"" };
message Outer {
  option (fx.opts.label) = "outer";
  message Inner { optional int32 a = 1; }
  required string id = 1 [default = "a\"b\\c\n", json_name = "ID"];
  optional int32 n = 2 [default = -5, deprecated = true];
  optional double d = 3 [default = inf];
  optional float f = 4 [default = nan];
  optional bytes raw = 5 [default = "\000\001\377x"];
  optional fx.opts.Kind k = 6 [default = KIND_B];
  repeated int32 packed = 7 [packed = true];
  optional group Result = 8 { optional string url = 1; }
  map<string, Inner> inners = 9;
  message After { optional string empty = 1 [default = ""]; }
  oneof choice {
    option (fx.opts.weight) = 3;
    string s = 10;
    Inner i = 11;
  }
  optional string rich = 12 [
    (fx.opts.rich) = {
      d: -0.0 f: 1.5 i64: -9223372036854775808 u64: 18446744073709551615 s32: -1
      b: "\x00\xff\"" s: "tab\there \u2603 \\ 'q'" ok: true kind: KIND_B nums: [1, 2, 3]
      children: [{ s: "a" }, { s: "b" }] counts: [{ key: "x" value: 1 }] grp { x: 7 }
      [fx.opts.ext_note]: "nested ext"
    },
    (fx.opts.many) = 1, (fx.opts.many) = -2,
    (fx.opts.num) = -inf,
    (fx.opts.raw) = "\001\002",
    (fx.opts.kind) = KIND_A
  ];
  extensions 1000 to 1999 [(fx.opts.why) = "plugins"];
  extensions 500, 600 to 700;
  reserved 20, 30 to 40, 10000 to max;
  reserved "old", "older";
  extend Outer { optional int32 self_ext = 1000; }
}
enum Color {
  option allow_alias = true;
  option (fx.opts.prefix) = "COLOR_";
  COLOR_UNSPECIFIED = 0;
  COLOR_RED = 1 [(fx.opts.hidden) = true, deprecated = true];
  COLOR_CRIMSON = 1;
  reserved 5, 10 to max;
  reserved "COLOR_BLUE";
}
service Painter {
  option (fx.opts.svc) = "paint";
  rpc Paint(Outer) returns (Outer);
  rpc Stream(stream Outer) returns (stream Outer.Inner) {
    option (fx.opts.route) = "/x";
    option idempotency_level = NO_SIDE_EFFECTS;
  }
}
extend Outer { optional string top_ext = 1001; }
`,
  "fixture/p3.proto": String.raw`syntax = "proto3";
package fx.p3;
import "google/protobuf/timestamp.proto";
import public "fixture/opts.proto";
message Timestamp { int64 s = 1; }
message Item {
  string name = 1;
  optional int32 count = 2;
  repeated string tags = 3;
  map<int64, google.protobuf.Timestamp> at = 4;
  oneof kind { string a = 5; int32 b = 6; }
  optional string note = 7 [json_name = "memo"];
  Nested nested = 8;
  message Nested { bool flag = 1; Item.Nested self = 2; }
  enum State { STATE_UNSPECIFIED = 0; STATE_ON = 1; }
  State state = 9;
  Timestamp local = 10;
  google.protobuf.Timestamp global = 11;
  reserved 100 to 200;
  reserved "legacy";
}
`,
  "fixture/ed.proto": String.raw`edition = "2023";
package fx.ed;
option features.field_presence = IMPLICIT;
option features.enum_type = CLOSED;
message Msg {
  int32 a = 1;
  int32 b = 2 [features.field_presence = EXPLICIT];
  string c = 3 [features.field_presence = LEGACY_REQUIRED];
  repeated int32 d = 4 [features.repeated_field_encoding = EXPANDED];
  Sub sub = 5 [features.message_encoding = DELIMITED];
  message Sub { int32 x = 1; }
  map<string, Sub> m = 6;
  reserved foo, bar;
  reserved 10 to 20;
}
enum E { option features.enum_type = OPEN; E_ZERO = 0; E_ONE = 1; }
`,
  "fixture/e24.proto": String.raw`edition = "2024";
package fx.e24;
import option "fixture/opts.proto";
export message Pub { local message Priv { int32 x = 1; } Priv p = 1 [(fx.opts.num) = 2.5]; }
local enum Hidden { HIDDEN_UNSPECIFIED = 0; }
`,
};

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, createFileRegistry, fromBinary, protoInt64, toJson, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Transport } from "@connectrpc/connect";
// ajv comes with fastify (its schema compiler); the OpenAPI 3.1 schema dialect is JSON Schema 2020-12.
import Ajv2020Module from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { describe, expect, it } from "vitest";
import { AgentSystem } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { EchoService, Kind, KitchenSchema } from "../../gen/raptorflow/conformance/v1/conformance_pb.js";
import { IcpService } from "../../gen/raptorflow/v1/icp_pb.js";
import { IdentityService } from "../../gen/raptorflow/identity/v1/identity_pb.js";
import { OrchestratorService, RunEventSchema, RunSchema, Run_State, Target } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { openApiDocument } from "./openapi.js";
import { bindingsOf } from "./transcoder.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

const HTTP_METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

const ourDoc: Doc = openApiDocument({ services: [OrchestratorService, IcpService], title: "RaptorFlow API", version: "test" });
const echoDoc: Doc = openApiDocument({ services: [EchoService], title: "Conformance", version: "test", serverUrl: "http://localhost:8080" });

/** operations lists every operation of a document with its path and method. */
function operations(doc: Doc): { path: string; method: string; op: Doc }[] {
  return Object.entries<Doc>(doc.paths).flatMap(([path, item]) =>
    Object.entries<Doc>(item)
      .filter(([m]) => HTTP_METHODS.includes(m))
      .map(([method, op]) => ({ path, method, op })),
  );
}

function op(doc: Doc, method: string, path: string): Doc {
  const o = doc.paths[path]?.[method];
  if (!o) throw new Error(`no ${method.toUpperCase()} ${path} in the document; paths: ${Object.keys(doc.paths).join(" ")}`);
  return o;
}

/** deref follows a local `$ref` (JSON pointer) in the document. */
function deref(doc: Doc, node: Doc): Doc {
  if (!node || typeof node.$ref !== "string") return node;
  const ref: string = node.$ref;
  expect(ref.startsWith("#/")).toBe(true);
  let at = doc;
  for (const raw of ref.slice(2).split("/")) {
    at = at?.[raw.replace(/~1/g, "/").replace(/~0/g, "~")];
  }
  if (at === undefined) throw new Error(`$ref ${ref} does not resolve`);
  return deref(doc, at);
}

function schemaOf(doc: Doc, name: string): Doc {
  const s = doc.components.schemas[name];
  if (!s) throw new Error(`no schema ${name}`);
  return s;
}

function param(o: Doc, name: string): Doc {
  return o.parameters?.find((p: Doc) => p.name === name);
}

/** allNodes walks every object of a JSON tree. */
function* allNodes(node: unknown, path = "#"): Generator<[string, Doc]> {
  if (node === null || typeof node !== "object") return;
  yield [path, node];
  for (const [k, v] of Object.entries(node)) yield* allNodes(v, `${path}/${k}`);
}

/** schemasIn lists every Schema Object of a document: components, parameters, media types (not subschemas). */
function schemasIn(doc: Doc): [string, Doc][] {
  const out: [string, Doc][] = Object.entries<Doc>(doc.components?.schemas ?? {}).map(([k, v]) => [`components/schemas/${k}`, v]);
  for (const [where, node] of allNodes({ paths: doc.paths, responses: doc.components?.responses })) {
    if (node.schema && (node.in || where.includes("/content/"))) out.push([where, node.schema]);
  }
  return out;
}

const Ajv2020 = (Ajv2020Module as unknown as { default: typeof Ajv2020Module }).default ?? Ajv2020Module;
const addFormats = (addFormatsModule as unknown as { default: typeof addFormatsModule }).default ?? addFormatsModule;

/** validatorFor compiles a document's schemas (OpenAPI 3.1 is JSON Schema 2020-12) to check JSON against them. */
function validatorFor(doc: Doc) {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const ajv = new (Ajv2020 as any)({ strict: true, strictTypes: false, allErrors: true });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  (addFormats as any)(ajv);
  // OpenAPI's format registry names unsigned integers too; ajv-formats does not know them.
  ajv.addFormat("uint32", true);
  ajv.addFormat("uint64", true);
  const defs = JSON.parse(JSON.stringify(doc.components.schemas).replaceAll("#/components/schemas/", "#/$defs/"));
  ajv.addSchema({ $id: "https://raptorflow.invalid/openapi", $defs: defs });
  return {
    ajv,
    check(typeName: string, json: unknown): void {
      const validate = ajv.getSchema(`https://raptorflow.invalid/openapi#/$defs/${typeName}`);
      if (!validate) throw new Error(`no schema ${typeName}`);
      if (!validate(json)) throw new Error(`${typeName}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(json)}`);
    },
  };
}

/**
 * expectValidOpenApi31 checks what an OpenAPI 3.1 validator would (no such
 * validator is installed): the required fields, path templating (each `{x}`
 * exactly one required path parameter, no two paths the same up to variable
 * names), unique operationIds, response codes, every `$ref` resolving, and
 * every schema valid JSON Schema 2020-12 (ajv, strict).
 */
function expectValidOpenApi31(doc: Doc): void {
  expect(doc.openapi).toBe("3.1.0");
  expect(typeof doc.info.title).toBe("string");
  expect(typeof doc.info.version).toBe("string");
  const shapes = new Map<string, string>();
  for (const path of Object.keys(doc.paths)) {
    expect(path.startsWith("/"), path).toBe(true);
    const shape = path.replace(/\{[^}]*\}/g, "{}");
    expect(shapes.get(shape), `${path} and ${shapes.get(shape)} are the same path to OpenAPI`).toBeUndefined();
    shapes.set(shape, path);
  }
  const ids = new Set<string>();
  for (const { path, method, op: o } of operations(doc)) {
    const where = `${method.toUpperCase()} ${path}`;
    expect(typeof o.operationId, where).toBe("string");
    expect(ids.has(o.operationId), `duplicate operationId ${o.operationId}`).toBe(false);
    ids.add(o.operationId);
    const vars = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
    const params: Doc[] = o.parameters ?? [];
    const pathParams = params.filter((p) => p.in === "path");
    expect(pathParams.map((p) => p.name).sort(), where).toEqual(vars);
    for (const p of pathParams) expect(p.required, `${where} ${p.name}`).toBe(true);
    for (const p of params) {
      expect(["query", "header", "path", "cookie"]).toContain(p.in);
      expect(p.schema, `${where} ${p.name}`).toBeDefined();
    }
    const keys = new Set(params.map((p) => `${p.in}:${p.name}`));
    expect(keys.size, `${where} repeats a parameter`).toBe(params.length);
    expect(Object.keys(o.responses).length, where).toBeGreaterThan(0);
    for (const code of Object.keys(o.responses)) expect(code, where).toMatch(/^(default|[1-5](\d\d|XX))$/);
    for (const r of Object.values<Doc>(o.responses)) expect(typeof deref(doc, r).description, where).toBe("string");
    if (o.requestBody) expect(Object.keys(o.requestBody.content).length, where).toBeGreaterThan(0);
  }
  for (const [where, node] of allNodes(doc)) {
    if (typeof node.$ref === "string") expect(() => deref(doc, node), where).not.toThrow();
  }
  for (const tag of operations(doc).flatMap(({ op: o }) => o.tags ?? [])) {
    expect(doc.tags.map((t: Doc) => t.name)).toContain(tag);
  }
  const { ajv } = validatorFor(doc);
  for (const [where, schema] of schemasIn(doc)) {
    const local = JSON.parse(JSON.stringify(schema).replaceAll("#/components/schemas/", "https://raptorflow.invalid/openapi#/$defs/"));
    expect(() => ajv.compile(local), where).not.toThrow();
  }
}

/** sampleValue makes a path parameter value its schema's pattern accepts (`^runs/[^/]+$` → `runs/x1`). */
function sampleValue(schema: Doc): string {
  if (schema.type === "integer") return "7";
  const pattern: string = schema.pattern ?? "^[^/]+$";
  return pattern
    .replace(/^\^|\$$/g, "")
    .replaceAll("(?:/.*)?", "/a/b")
    .replaceAll("[^/]+", "x1")
    .replaceAll(".*", "a/b")
    .replace(/\\(.)/g, "$1");
}

/**
 * expectRoutesMatchTranscoder checks that the document and the transcoder
 * agree: each binding is one operation, and a URL made from an operation's
 * path and parameter patterns reaches that operation's RPC through the
 * transcoder's own matching (first binding of the method whose template matches).
 */
function expectRoutesMatchTranscoder(doc: Doc, services: readonly DescService[]): void {
  const bindings = bindingsOf(services.map((service) => ({ service, transport: {} as Transport })));
  const ops = operations(doc);
  expect(ops.length).toBe(bindings.length);
  for (const { path, method, op: o } of ops) {
    const url = path.replace(/\{([^}]+)\}/g, (_, name: string) => sampleValue(param(o, name).schema));
    const hit = bindings.find((b) => b.httpMethod === method.toUpperCase() && b.template.match(url));
    expect(hit, `${method.toUpperCase()} ${url} (${path}) reaches no binding`).toBeDefined();
    expect(o.operationId.startsWith(`${hit!.method.parent.name}_${hit!.method.name}`), `${method.toUpperCase()} ${url} is ${o.operationId}, the transcoder calls ${hit!.method.name}`).toBe(true);
  }
}

describe("openApiDocument for OrchestratorService and IcpService", () => {
  it("is an OpenAPI 3.1 document whose references resolve and whose schemas compile", () => {
    expectValidOpenApi31(ourDoc);
    expect(ourDoc.info).toEqual({ title: "RaptorFlow API", version: "test" });
    expect(ourDoc.servers).toBeUndefined();
    expect(ourDoc.tags.map((t: Doc) => t.name)).toEqual(["OrchestratorService", "IcpService"]);
  });

  it("has every REST binding, additional bindings included, with its HTTP method", () => {
    const table = operations(ourDoc).map(({ path, method, op: o }) => `${method.toUpperCase()} ${path} ${o.operationId}`);
    expect(table.sort()).toEqual(
      [
        "POST /v3/runs OrchestratorService_CreateRun",
        "POST /api/v3/execute OrchestratorService_CreateRun_1",
        "POST /v3/runs:stream OrchestratorService_StreamRun",
        "GET /v3/{name} OrchestratorService_GetRun",
        "GET /v3/{name}:watch OrchestratorService_WatchRun",
        // `{name=runs/*/context}` and `{name=contexts/*}` would be the same OpenAPI path as GetRun's `/v3/{name}`: their literal segments are spelled out.
        "GET /v3/runs/{name_1}/context OrchestratorService_GetContext",
        "GET /v3/contexts/{name_1} OrchestratorService_GetContext_1",
        "GET /v3/runs OrchestratorService_ListRuns",
        "POST /v3/routes:explain OrchestratorService_ExplainRoute",
        "GET /v3/agents OrchestratorService_ListAgents",
        "GET /api/v3/agents OrchestratorService_ListAgents_1",
        "GET /api/v3/status/{run_id} OrchestratorService_GetRunStatus",
        "GET /api/v3/result/{run_id} OrchestratorService_GetRunResult",
        "GET /v3/capabilities OrchestratorService_GetCapabilities",
        "GET /api/v3/capabilities OrchestratorService_GetCapabilities_1",
        "POST /v3/runs:batchCreate OrchestratorService_BatchCreateRuns",
        "POST /api/v3/batch OrchestratorService_BatchCreateRuns_1",
        "POST /v3/{parent}/feedback OrchestratorService_CreateFeedback",
        "POST /api/v3/feedback OrchestratorService_CreateFeedback_1",
        "POST /api/icps IcpService_CreateIcp",
        "POST /v1/icps IcpService_CreateIcp_1",
        "GET /api/{name} IcpService_GetIcp",
        "GET /v1/{name} IcpService_GetIcp_1",
        "GET /api/icps IcpService_ListIcps",
        "GET /v1/icps IcpService_ListIcps_1",
        // `{icp.name=icps/*}`: OpenAPI holds /api/{icp.name} and /api/{name} to be one path, so it shares GetIcp's name.
        "PATCH /api/{name} IcpService_UpdateIcp",
        "PATCH /v1/{name} IcpService_UpdateIcp_1",
        "DELETE /api/{name} IcpService_DeleteIcp",
        "DELETE /v1/{name} IcpService_DeleteIcp_1",
      ].sort(),
    );
    expectRoutesMatchTranscoder(ourDoc, [OrchestratorService, IcpService]);
    expect(op(ourDoc, "post", "/v3/runs")).toMatchObject({ summary: "CreateRun", tags: ["OrchestratorService"] });
    expect(op(ourDoc, "post", "/v3/runs").description).toContain("/raptorflow.v3.OrchestratorService/CreateRun");
  });

  it("answers POST /v3/runs with 201 and a Run, the legacy /api/v3/execute with 200, errors with google.rpc.Status", () => {
    const create = op(ourDoc, "post", "/v3/runs");
    expect(Object.keys(create.responses).sort()).toEqual(["201", "default"]);
    expect(create.responses["201"].content["application/json"].schema).toEqual({ $ref: "#/components/schemas/raptorflow.v3.Run" });
    expect(create.requestBody).toEqual({
      required: true,
      content: { "application/json": { schema: { $ref: "#/components/schemas/raptorflow.v3.CreateRunRequest" } } },
    });
    // The transcoder gives the contract's success code to the primary binding only.
    expect(Object.keys(op(ourDoc, "post", "/api/v3/execute").responses).sort()).toEqual(["200", "default"]);
    expect(Object.keys(op(ourDoc, "post", "/v3/{parent}/feedback").responses).sort()).toEqual(["201", "default"]);

    const error = deref(ourDoc, create.responses.default);
    const status = deref(ourDoc, error.content["application/json"].schema);
    expect(status.properties.code.type).toBe("integer");
    expect(status.properties.message.type).toBe("string");
    expect(status.properties.details).toMatchObject({ type: "array", items: { type: "object", required: ["@type"] } });
  });

  it("documents a resource name path variable as one parameter with the template's pattern", () => {
    const get = op(ourDoc, "get", "/v3/{name}");
    expect(get.parameters).toHaveLength(1);
    const name = param(get, "name");
    expect(name).toMatchObject({ in: "path", required: true, schema: { type: "string", pattern: "^runs/[^/]+$" } });
    expect(name.description).toMatch(/slashes are part of the value/i);
    // The field's own buf.validate pattern holds too.
    expect(name.schema.allOf).toEqual([{ pattern: "^runs/[a-z0-9-]{1,64}$" }]);
    expect(new RegExp(name.schema.pattern).test("runs/0193abc")).toBe(true);
    expect(new RegExp(name.schema.pattern).test("runs/a/b")).toBe(false);
    expect(get.responses["200"].content["application/json"].schema).toEqual({ $ref: "#/components/schemas/raptorflow.v3.Run" });

    const feedback = op(ourDoc, "post", "/v3/{parent}/feedback");
    expect(param(feedback, "parent").schema.pattern).toBe("^runs/[^/]+$");
    // body: "feedback" — the body is that field, and the path fills `parent`.
    expect(feedback.requestBody.content["application/json"].schema).toEqual({ $ref: "#/components/schemas/raptorflow.v3.Feedback" });
    expect(feedback.requestBody.required).toBe(true);

    const status = op(ourDoc, "get", "/api/v3/status/{run_id}");
    expect(param(status, "run_id").schema).toMatchObject({ type: "string", pattern: "^[^/]+$", allOf: [{ pattern: "^[a-z0-9-]{1,64}$" }] });
  });

  it("maps buf.validate and field_behavior onto the CreateRunRequest schema", () => {
    const req = schemaOf(ourDoc, "raptorflow.v3.CreateRunRequest");
    expect(req.type).toBe("object");
    expect(req.required).toEqual(["input"]);
    expect(req.properties.input).toEqual({ type: "string", minLength: 1, maxLength: 20000 });
    expect(req.properties.agents).toEqual({ type: "array", maxItems: 16, items: { type: "string", pattern: "^agents/[a-z][a-z0-9_]{0,63}$" } });
    expect(req.properties.requestId).toMatchObject({ type: "string", maxLength: 64 });
    expect(req.properties.parameters).toMatchObject({ type: "object" });
    expect(deref(ourDoc, req.properties.mode).enum).toEqual(["ROUTE_MODE_UNSPECIFIED", "ROUTE_MODE_V1", "ROUTE_MODE_V2", "ROUTE_MODE_HYBRID"]);
    expect(schemaOf(ourDoc, "raptorflow.v3.Feedback").properties.rating).toMatchObject({ type: "integer", minimum: 1, maximum: 5 });
    expect(schemaOf(ourDoc, "raptorflow.v3.BatchCreateRunsRequest").properties.requests).toMatchObject({ minItems: 1, maxItems: 20 });
    // (buf.validate.field).required
    expect(schemaOf(ourDoc, "raptorflow.v3.CreateFeedbackRequest").required).toEqual(["parent", "feedback"]);
  });

  it("follows the proto3 JSON mapping: lowerCamelCase names, int64 as strings, enums by name, Timestamps as date-times", () => {
    const run = schemaOf(ourDoc, "raptorflow.v3.Run");
    expect(Object.keys(run.properties)).toEqual(
      ["name", "input", "route", "state", "steps", "output", "summary", "usage", "error", "createTime", "updateTime", "requestId", "contextId"],
    );
    expect(run.properties.createTime).toMatchObject({ type: "string", format: "date-time", readOnly: true });
    expect(run.properties.steps).toMatchObject({ type: "array", items: { $ref: "#/components/schemas/raptorflow.v3.RunStep" } });
    expect(deref(ourDoc, run.properties.state).enum).toEqual([
      "STATE_UNSPECIFIED",
      "STATE_PENDING",
      "STATE_RUNNING",
      "STATE_SUCCEEDED",
      "STATE_FAILED",
      "STATE_CANCELLED",
      "STATE_BUDGET_EXCEEDED",
      "STATE_PARTIAL",
      "STATE_SKIPPED",
    ]);
    const usage = schemaOf(ourDoc, "raptorflow.agent.v1.Usage");
    expect(usage.properties.inputTokens).toMatchObject({ type: "string", format: "int64" });
    expect(usage.properties.outputTokens).toMatchObject({ type: "string", format: "int64" });
    expect(usage.properties.calls).toMatchObject({ type: "integer", format: "int32" });
    expect(usage.properties.costUsd).toMatchObject({ type: "number", format: "double" });
    expect(schemaOf(ourDoc, "raptorflow.v3.Target").enum).toEqual(["TARGET_UNSPECIFIED", "TARGET_V1", "TARGET_V2", "TARGET_HYBRID"]);
    const event = schemaOf(ourDoc, "raptorflow.v3.RunEvent");
    expect(event.description).toContain("Oneof `event`");
    expect(event.properties.stepStarted.description).toMatch(/at most one of `routed`, `stepStarted`/);

    // What the gateway really writes (protobuf-es toJson, as the transcoder) validates against the schemas.
    const { check } = validatorFor(ourDoc);
    const run1 = create(RunSchema, {
      name: "runs/0193",
      input: "Write three ad variants",
      state: Run_State.SUCCEEDED,
      route: { target: Target.HYBRID, steps: [{ agent: "agents/icp_builder", system: AgentSystem.V1, reason: "icp" }], complexity: 0.5, confidence: 1 },
      steps: [{ agent: "agents/icp_builder", state: Run_State.SUCCEEDED, startTime: timestampFromMs(0), result: { duration: durationFromMs(1500), usage: { inputTokens: protoInt64.parse(12) } } }],
      output: { icp_builder: { segments: ["smb", 3, true, null, { nested: [] }] } },
      usage: { inputTokens: protoInt64.parse("9007199254740993"), outputTokens: protoInt64.parse(7), calls: 2, costUsd: 0.25 },
      createTime: timestampFromMs(Date.UTC(2026, 0, 2, 3, 4, 5, 678)),
    });
    check("raptorflow.v3.Run", toJson(RunSchema, run1));
    check("raptorflow.v3.RunEvent", toJson(RunEventSchema, create(RunEventSchema, { event: { case: "run", value: run1 } })));
    expect(() => check("raptorflow.v3.Run", { usage: { inputTokens: 12 } })).toThrow(/inputTokens/);
    expect(() => check("raptorflow.v3.Run", { state: "RUNNING" })).toThrow(/state/);
  });

  it("documents server streaming as NDJSON of {result} lines and as Server-Sent Events", () => {
    const stream = op(ourDoc, "post", "/v3/runs:stream");
    const content = stream.responses["200"].content;
    expect(Object.keys(content).sort()).toEqual(["application/x-ndjson", "text/event-stream"]);
    const line = content["application/x-ndjson"].schema;
    expect(line.properties.result).toEqual({ $ref: "#/components/schemas/raptorflow.v3.RunEvent" });
    expect(line.properties.error).toEqual({ $ref: "#/components/schemas/google.rpc.Status" });
    expect(stream.requestBody.content["application/json"].schema).toEqual({ $ref: "#/components/schemas/raptorflow.v3.CreateRunRequest" });
  });

  it("gives GET /v3/agents its query parameters, the enum by name; body '*' routes take none", () => {
    const list = op(ourDoc, "get", "/v3/agents");
    expect(list.parameters.map((p: Doc) => `${p.in}:${p.name}`)).toEqual(["query:pageSize", "query:pageToken", "query:system", "query:department", "query:view"]);
    expect(param(list, "pageSize").schema).toMatchObject({ type: "integer", minimum: 0, maximum: 1000 });
    expect(param(list, "pageToken").schema).toMatchObject({ type: "string", maxLength: 512 });
    expect(deref(ourDoc, param(list, "system").schema)).toMatchObject({
      type: "string",
      enum: ["AGENT_SYSTEM_UNSPECIFIED", "AGENT_SYSTEM_V1", "AGENT_SYSTEM_V2"],
    });
    expect(param(list, "department").schema).toMatchObject({ type: "string", pattern: "^([a-z][a-z0-9_]*)?$" });
    expect(deref(ourDoc, param(list, "view").schema)).toMatchObject({ type: "string", enum: ["AGENT_VIEW_UNSPECIFIED", "AGENT_VIEW_BASIC", "AGENT_VIEW_FULL"] });
    expect(op(ourDoc, "get", "/v3/runs").parameters.map((p: Doc) => p.name)).toEqual(["pageSize", "pageToken"]);
    // The transcoder refuses query parameters on a body "*" route.
    expect(op(ourDoc, "post", "/v3/routes:explain").parameters).toBeUndefined();
    expect(op(ourDoc, "post", "/v3/routes:explain").requestBody.content["application/json"].schema).toEqual({
      $ref: "#/components/schemas/raptorflow.v3.ExplainRouteRequest",
    });
  });

  it("documents a nested path field (icp.name) on the path it shares, and leaves it out of the body", () => {
    const update = op(ourDoc, "patch", "/api/{name}");
    const name = param(update, "name");
    expect(name.schema.pattern).toBe("^icps/[^/]+$");
    expect(name.description).toContain("`icp.name`");
    // body: "icp" — the body is the Icp without the name the path gives; the rest of the request comes from the query.
    const body = update.requestBody.content["application/json"].schema;
    expect(body.type).toBe("object");
    expect(Object.keys(body.properties)).not.toContain("name");
    // Required on create by a message-level CEL rule (CreateIcpRequest), so an update may leave it out.
    expect(body.properties.displayName).toMatchObject({ maxLength: 200 });
    expect(update.parameters.map((p: Doc) => `${p.in}:${p.name}`)).toEqual(["path:name", "query:updateMask"]);
    expect(param(update, "updateMask").schema.type).toBe("string");
    expect(op(ourDoc, "delete", "/api/{name}").responses["200"].content["application/json"].schema).toEqual({ type: "object" });
  });
});

describe("openApiDocument for the conformance EchoService", () => {
  it("is valid, lists its server and agrees with the transcoder's routing", () => {
    expectValidOpenApi31(echoDoc);
    expect(echoDoc.servers).toEqual([{ url: "http://localhost:8080" }]);
    expectRoutesMatchTranscoder(echoDoc, [EchoService]);
  });

  it("maps every kind of field of Kitchen", () => {
    const k = schemaOf(echoDoc, "raptorflow.conformance.v1.Kitchen").properties;
    expect(k.stringValue).toEqual({ type: "string" });
    expect(k.int32Value).toEqual({ type: "integer", format: "int32" });
    expect(k.int64Value).toMatchObject({ type: "string", format: "int64" });
    expect(k.uint64Value).toMatchObject({ type: "string", format: "uint64" });
    expect(k.doubleValue).toEqual({ type: "number", format: "double" });
    expect(k.floatValue).toEqual({ type: "number", format: "float" });
    expect(k.boolValue).toEqual({ type: "boolean" });
    expect(k.bytesValue).toEqual({ type: "string", contentEncoding: "base64" });
    expect(deref(echoDoc, k.kind).enum).toEqual(["KIND_UNSPECIFIED", "KIND_ALPHA", "KIND_BETA"]);
    expect(k.tags).toEqual({ type: "array", items: { type: "string" } });
    expect(k.kinds).toEqual({ type: "array", items: { $ref: "#/components/schemas/raptorflow.conformance.v1.Kind" } });
    expect(k.nested).toEqual({ $ref: "#/components/schemas/raptorflow.conformance.v1.Nested" });
    expect(k.timestamp).toEqual({ type: "string", format: "date-time" });
    expect(k.duration).toEqual({ type: "string", pattern: "^-?\\d+(\\.\\d+)?s$" });
    expect(k.fieldMask.type).toBe("string");
    expect(k.wrappedInt32).toEqual({ type: "integer", format: "int32" });
    expect(k.wrappedBool).toEqual({ type: "boolean" });
    expect(k.wrappedString).toEqual({ type: "string" });
    expect(k.structValue).toEqual({ type: "object", additionalProperties: true });
    expect(k.labels).toEqual({ type: "object", additionalProperties: { type: "string" } });
    expect(k.choiceText.description).toContain("oneof `choice`");
    expect(k.choiceNumber).toMatchObject({ type: "integer" });
    expect(k.optionalInt32).toEqual({ type: "integer", format: "int32" });
    expect(k.validated).toEqual({ type: "string", maxLength: 5 });
    expect(schemaOf(echoDoc, "raptorflow.conformance.v1.EchoMetadataResponse").properties.timeoutMs).toMatchObject({ type: "string", format: "int64" });

    const { check } = validatorFor(echoDoc);
    const kitchen = create(KitchenSchema, {
      stringValue: "s",
      int32Value: -3,
      int64Value: protoInt64.parse("-9007199254740993"),
      uint64Value: protoInt64.uParse("18446744073709551615"),
      doubleValue: 1.5,
      floatValue: 2,
      boolValue: true,
      bytesValue: new Uint8Array([0, 255, 7]),
      kind: Kind.BETA,
      tags: ["a", "b"],
      kinds: [Kind.ALPHA],
      nested: { text: "t", number: 4, deeper: { text: "d" } },
      timestamp: timestampFromMs(1),
      duration: durationFromMs(1500),
      fieldMask: { paths: ["string_value", "nested.text"] },
      wrappedInt32: 5,
      wrappedBool: false,
      wrappedString: "w",
      structValue: { a: 1, b: [true, null, "x"] },
      labels: { k: "v" },
      choice: { case: "choiceNumber", value: 9 },
      optionalInt32: 0,
      validated: "ok",
    });
    const json = toJson(KitchenSchema, kitchen);
    expect(Object.keys(json as object).length).toBeGreaterThan(20);
    check("raptorflow.conformance.v1.Kitchen", json);
    expect(() => check("raptorflow.conformance.v1.Kitchen", { int64Value: 5 })).toThrow(/int64Value/);
    expect(() => check("raptorflow.conformance.v1.Kitchen", { validated: "too long" })).toThrow(/validated/);
  });

  it("documents body field, response_body, verbs, ** and streaming GETs as the transcoder serves them", () => {
    // body: "nested" with a path variable: the body is Nested; every other field is a query parameter.
    const put = op(echoDoc, "put", "/v1/echo/{string_value}");
    expect(put.requestBody.content["application/json"].schema).toEqual({ $ref: "#/components/schemas/raptorflow.conformance.v1.Nested" });
    expect(param(put, "string_value").schema).toEqual({ type: "string", pattern: "^[^/]+$" });
    const names = put.parameters.map((p: Doc) => p.name);
    expect(names).toContain("int64Value");
    expect(names).not.toContain("nested.text");
    expect(names).not.toContain("labels");
    expect(names).not.toContain("structValue");
    expect(param(put, "tags")).toMatchObject({ in: "query", style: "form", explode: true, schema: { type: "array" } });
    expect(deref(echoDoc, param(put, "kind").schema).enum).toContain("KIND_ALPHA");
    // GET /v1/echo (no body): nested message fields one level deep.
    const names2 = op(echoDoc, "get", "/v1/echo").parameters.map((p: Doc) => p.name);
    expect(names2).toEqual(expect.arrayContaining(["nested.text", "nested.number", "timestamp", "duration", "wrappedBool"]));
    expect(names2).not.toContain("nested.deeper");

    // response_body: "text" answers the string itself.
    expect(op(echoDoc, "get", "/v1/{name}/text").responses["200"].content["application/json"].schema).toEqual({ type: "string" });
    // Multi-segment variable and a custom verb kept literally.
    const archive = op(echoDoc, "post", "/v1/{name}:archive");
    expect(param(archive, "name").schema.pattern).toBe("^shelves/[^/]+/books/[^/]+$");
    // `**`
    const file = param(op(echoDoc, "get", "/v1/files/{path}"), "path");
    expect(file.schema.pattern).toBe("^.*$");
    expect(file.description).toContain("`**`");
    // CreateBook: body "book", 201, the rest from the query.
    const createBook = op(echoDoc, "post", "/v1/{parent}/books");
    expect(Object.keys(createBook.responses)).toContain("201");
    expect(createBook.parameters.map((p: Doc) => `${p.in}:${p.name}`)).toEqual(["path:parent", "query:bookId"]);
    // UpdateBook: `{book.name=shelves/*/books/*}` shares GetBook's path; the body is Book without its name.
    const update = op(echoDoc, "patch", "/v1/{name}");
    expect(param(update, "name").description).toContain("`book.name`");
    expect(Object.keys(update.requestBody.content["application/json"].schema.properties)).toEqual(["title", "text", "archived"]);
    // A streaming GET.
    const stream = op(echoDoc, "get", "/v1/{parent}/books:stream");
    expect(stream.responses["200"].content["application/x-ndjson"].schema.properties.result).toEqual({ $ref: "#/components/schemas/raptorflow.conformance.v1.Book" });
    expect(stream.parameters.map((p: Doc) => p.name)).toEqual(["parent", "count", "failAfter", "interval", "textBytes"]);
    expect(op(echoDoc, "post", "/v1/fail").responses["200"].content["application/json"].schema).toEqual({ type: "object" });
  });
});

describe("openApiDocument across services", () => {
  it("stays valid with the gateway's identity routes beside /v3, the JWKS at its well-known path", () => {
    const doc: Doc = openApiDocument({ services: [OrchestratorService, IdentityService], title: "with identity", version: "1" });
    expectValidOpenApi31(doc);
    expectRoutesMatchTranscoder(doc, [OrchestratorService, IdentityService]);
    expect(op(doc, "get", "/.well-known/jwks.json").operationId).toBe("IdentityService_GetJsonWebKeySet");
    expect(Object.keys(op(doc, "post", "/v3/{parent}/apiKeys").responses).sort()).toEqual(["201", "default"]);
  });

  it("stays valid when two services' routes are the same OpenAPI operation (their variables spelled out)", () => {
    // IcpService's GET /v1/{name=icps/*} and EchoService's GET /v1/{name=shelves/*/books/*} are both GET /v1/{name}.
    const doc: Doc = openApiDocument({ services: [IcpService, EchoService], title: "both", version: "1" });
    expectValidOpenApi31(doc);
    expectRoutesMatchTranscoder(doc, [IcpService, EchoService]);
    const book = op(doc, "get", "/v1/shelves/{name_1}/books/{name_2}");
    expect(book.operationId).toBe("EchoService_GetBook");
    expect(param(book, "name_1").description).toContain("`name`");
    expect(op(doc, "get", "/v1/{name}").operationId).toBe("IcpService_GetIcp_1");
  });

  it("takes summaries and descriptions from proto comments when the descriptors kept them (a buf image)", () => {
    // protoc-gen-es embeds descriptors without comments; `buf build` keeps them.
    const dir = mkdtempSync(join(tmpdir(), "openapi-test-"));
    try {
      const image = join(dir, "image.binpb");
      execFileSync(join(process.cwd(), "node_modules/.bin/buf"), ["build", "-o", image], { cwd: process.cwd() });
      const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(image)));
      const service = registry.getService("raptorflow.v3.OrchestratorService");
      expect(service).toBeDefined();
      const doc: Doc = openApiDocument({ services: [service!], title: "commented", version: "1" });
      expectValidOpenApi31(doc);
      const createRun = op(doc, "post", "/v3/runs");
      expect(createRun.summary).toBe("CreateRun routes a request, runs the planned agents and returns the finished run.");
      expect(createRun.description).toContain("/raptorflow.v3.OrchestratorService/CreateRun");
      expect(doc.tags[0].description).toMatch(/^OrchestratorService is the unified API/);
      const req = schemaOf(doc, "raptorflow.v3.CreateRunRequest");
      expect(req.description).toBe("CreateRunRequest is the request of CreateRun and StreamRun.");
      expect(req.properties.input).toMatchObject({ description: "The user's request in natural language.", minLength: 1 });
      expect(schemaOf(doc, "raptorflow.v3.Target").description).toContain("- `TARGET_V1`: The V1 business-intelligence agents.");
      expect(param(op(doc, "get", "/v3/agents"), "pageSize").description).toBe("The maximum number of agents to return; 0 means the default (100).");
      // Same document otherwise as from the embedded descriptors.
      const plain: Doc = openApiDocument({ services: [OrchestratorService], title: "commented", version: "1" });
      const strip = (d: Doc): Doc => JSON.parse(JSON.stringify(d, (k, v) => (k === "description" || k === "summary" ? undefined : v)));
      expect(strip(doc)).toEqual(strip(plain));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("is deterministic", () => {
    const again = openApiDocument({ services: [OrchestratorService, IcpService], title: "RaptorFlow API", version: "test" });
    expect(JSON.stringify(again)).toBe(JSON.stringify(ourDoc));
  });
});

import { create, getOption, hasOption, type DescService } from "@bufbuild/protobuf";
import { EmptySchema, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { http } from "../../gen/google/api/annotations_pb.js";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { AgentSystem } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import {
  IcpSchema,
  IcpService,
  ListIcpsResponseSchema,
  type CreateIcpRequest,
  type DeleteIcpRequest,
  type GetIcpRequest,
  type ListIcpsRequest,
  type UpdateIcpRequest,
} from "../../gen/raptorflow/v1/icp_pb.js";
import {
  ListAgentsResponseSchema,
  ListRunsResponseSchema,
  OrchestratorService,
  RouteDecisionSchema,
  RouteMode,
  RunEventSchema,
  RunSchema,
  Run_State,
  Target,
  type CreateRunRequest,
  type ExplainRouteRequest,
  type GetRunRequest,
  type ListAgentsRequest,
  type ListRunsRequest,
  type RunEvent,
} from "../../gen/raptorflow/v3/orchestrator_pb.js";
import { build } from "./server.js";
import { bindingsOf, restTranscoder } from "./transcoder.js";

/** Call is one request the fake upstream received. */
interface Call {
  readonly rpc: string;
  readonly request: unknown;
  readonly headers: Headers;
}

/** The fake upstreams record every call and can be told to fail or to stream a script. */
const calls: Call[] = [];
let failWith: Error | undefined;
let streamScript: Array<RunEvent | Error> = [];

function record(rpc: string, request: unknown, headers: Headers): void {
  calls.push({ rpc, request, headers });
  if (failWith) throw failWith;
}

/** only returns the single recorded call, checking it went to the expected RPC. */
function only<T>(rpc: string): T {
  expect(calls.map((c) => c.rpc)).toEqual([rpc]);
  return calls[0].request as T;
}

const orchestratorTransport = createRouterTransport(({ service }) =>
  service(OrchestratorService, {
    createRun(req, ctx) {
      record("CreateRun", req, ctx.requestHeader);
      return create(RunSchema, {
        name: "runs/r1",
        input: req.input,
        state: Run_State.SUCCEEDED,
        requestId: req.requestId,
        createTime: timestampFromMs(Date.UTC(2025, 0, 2, 3, 4, 5)),
      });
    },
    async *streamRun(req, ctx) {
      record("StreamRun", req, ctx.requestHeader);
      for (const step of streamScript) {
        if (step instanceof Error) throw step;
        yield step;
      }
    },
    getRun(req, ctx) {
      record("GetRun", req, ctx.requestHeader);
      return create(RunSchema, { name: req.name, state: Run_State.RUNNING });
    },
    listRuns(req, ctx) {
      record("ListRuns", req, ctx.requestHeader);
      return create(ListRunsResponseSchema, { runs: [{ name: "runs/a" }, { name: "runs/b" }], nextPageToken: "next" });
    },
    explainRoute(req, ctx) {
      record("ExplainRoute", req, ctx.requestHeader);
      return create(RouteDecisionSchema, { target: Target.HYBRID, confidence: 0.5, router: "fake" });
    },
    listAgents(req, ctx) {
      record("ListAgents", req, ctx.requestHeader);
      return create(ListAgentsResponseSchema, { totalSize: 0 });
    },
  }),
);

const icpTransport = createRouterTransport(({ service }) =>
  service(IcpService, {
    createIcp(req, ctx) {
      record("CreateIcp", req, ctx.requestHeader);
      return create(IcpSchema, { displayName: req.icp?.displayName, companySize: req.icp?.companySize, name: "icps/new" });
    },
    getIcp(req, ctx) {
      record("GetIcp", req, ctx.requestHeader);
      return create(IcpSchema, { name: req.name, displayName: "Acme" });
    },
    listIcps(req, ctx) {
      record("ListIcps", req, ctx.requestHeader);
      return create(ListIcpsResponseSchema, { icps: [{ name: "icps/1" }] });
    },
    updateIcp(req, ctx) {
      record("UpdateIcp", req, ctx.requestHeader);
      return create(IcpSchema, req.icp);
    },
    deleteIcp(req, ctx) {
      record("DeleteIcp", req, ctx.requestHeader);
      return create(EmptySchema);
    },
  }),
);

const services = [
  { service: OrchestratorService, transport: orchestratorTransport },
  { service: IcpService, transport: icpTransport },
];

let app: FastifyInstance;

beforeAll(async () => {
  app = Fastify({ logger: false });
  await app.register(restTranscoder({ services, timeoutMs: 5000 }));
  await app.ready();
});

afterAll(async () => {
  await app.close();
});

beforeEach(() => {
  calls.length = 0;
  failWith = undefined;
  streamScript = [];
});

/** expectStatus checks a google.rpc.Status JSON error answer and returns its body. */
function expectStatus(res: { statusCode: number; headers: Record<string, unknown>; json(): unknown }, httpStatus: number, code: Code) {
  expect(res.statusCode).toBe(httpStatus);
  expect(String(res.headers["content-type"])).toMatch(/^application\/json/);
  const body = res.json() as { code: number; message: string; details: unknown[] };
  expect(Object.keys(body).sort()).toEqual(["code", "details", "message"]);
  expect(body.code).toBe(code);
  expect(typeof body.message).toBe("string");
  expect(Array.isArray(body.details)).toBe(true);
  return body;
}

describe("bindings come from the contracts' google.api.http options", () => {
  it("lists every binding of OrchestratorService and IcpService, additional_bindings included", () => {
    const routes = bindingsOf(services).map((b) => `${b.httpMethod} ${b.template.source} -> ${b.method.parent.name}.${b.method.name} body=${b.body}`);
    expect(routes.sort()).toEqual(
      [
        "POST /v3/runs -> OrchestratorService.CreateRun body=*",
        "GET /v3/{name=runs/*/context} -> OrchestratorService.GetContext body=",
        "GET /v3/{name=contexts/*} -> OrchestratorService.GetContext body=",
        "POST /v3/runs:stream -> OrchestratorService.StreamRun body=*",
        "GET /v3/{name=runs/*} -> OrchestratorService.GetRun body=",
        "GET /v3/{name=runs/*}:watch -> OrchestratorService.WatchRun body=",
        "GET /v3/runs -> OrchestratorService.ListRuns body=",
        "POST /v3/routes:explain -> OrchestratorService.ExplainRoute body=*",
        "GET /v3/agents -> OrchestratorService.ListAgents body=",
        "POST /api/v3/execute -> OrchestratorService.CreateRun body=*",
        "GET /api/v3/agents -> OrchestratorService.ListAgents body=",
        "GET /api/v3/status/{run_id} -> OrchestratorService.GetRunStatus body=",
        "GET /api/v3/result/{run_id} -> OrchestratorService.GetRunResult body=",
        "GET /v3/capabilities -> OrchestratorService.GetCapabilities body=",
        "GET /api/v3/capabilities -> OrchestratorService.GetCapabilities body=",
        "POST /v3/runs:batchCreate -> OrchestratorService.BatchCreateRuns body=*",
        "POST /api/v3/batch -> OrchestratorService.BatchCreateRuns body=*",
        "POST /v3/{parent=runs/*}/feedback -> OrchestratorService.CreateFeedback body=feedback",
        "POST /api/v3/feedback -> OrchestratorService.CreateFeedback body=*",
        "POST /api/icps -> IcpService.CreateIcp body=icp",
        "POST /v1/icps -> IcpService.CreateIcp body=icp",
        "GET /api/{name=icps/*} -> IcpService.GetIcp body=",
        "GET /v1/{name=icps/*} -> IcpService.GetIcp body=",
        "GET /api/icps -> IcpService.ListIcps body=",
        "GET /v1/icps -> IcpService.ListIcps body=",
        "PATCH /api/{icp.name=icps/*} -> IcpService.UpdateIcp body=icp",
        "PATCH /v1/{icp.name=icps/*} -> IcpService.UpdateIcp body=icp",
        "DELETE /api/{name=icps/*} -> IcpService.DeleteIcp body=",
        "DELETE /v1/{name=icps/*} -> IcpService.DeleteIcp body=",
      ].sort(),
    );
  });

  it("has one binding per google.api.http rule of each service's descriptor", () => {
    const rulesOf = (s: DescService) =>
      s.methods.reduce((n, m) => n + (hasOption(m, http) ? 1 + getOption(m, http).additionalBindings.length : 0), 0);
    const orchestrator = bindingsOf([services[0]]);
    const icp = bindingsOf([services[1]]);
    expect(orchestrator).toHaveLength(rulesOf(OrchestratorService));
    expect(orchestrator).toHaveLength(19);
    expect(icp).toHaveLength(rulesOf(IcpService));
    expect(icp).toHaveLength(10);
    // Every RPC of both services is reachable over REST.
    expect(new Set(orchestrator.map((b) => b.method.name))).toEqual(new Set(OrchestratorService.methods.map((m) => m.name)));
    expect(new Set(icp.map((b) => b.method.name))).toEqual(new Set(IcpService.methods.map((m) => m.name)));
    // Each binding calls its own service's transport.
    expect(orchestrator.every((b) => b.transport === orchestratorTransport)).toBe(true);
    expect(icp.every((b) => b.transport === icpTransport)).toBe(true);
  });
});

describe("body \"*\"", () => {
  it("POST /v3/runs maps the JSON body (camelCase names) to the request and answers the Run as JSON", async () => {
    const res = await app.inject({
      method: "POST",
      url: "/v3/runs",
      payload: {
        input: "grow revenue",
        mode: "ROUTE_MODE_HYBRID",
        agents: ["agents/icp_builder", "agents/seo"],
        parameters: { region: "EU", budget: 10 },
        requestId: "req-1",
      },
    });
    // CreateRun's contract says 201 (raptorflow.api.v1.http_response).
    expect(res.statusCode).toBe(201);
    expect(res.headers["content-type"]).toMatch(/^application\/json/);
    expect(res.json()).toEqual({
      name: "runs/r1",
      input: "grow revenue",
      state: "STATE_SUCCEEDED",
      requestId: "req-1",
      createTime: "2025-01-02T03:04:05Z",
    });
    const req = only<CreateRunRequest>("CreateRun");
    expect(req.input).toBe("grow revenue");
    expect(req.mode).toBe(RouteMode.HYBRID);
    expect(req.agents).toEqual(["agents/icp_builder", "agents/seo"]);
    expect(req.requestId).toBe("req-1");
    // protobuf-es represents a google.protobuf.Struct field as its JSON object.
    expect(req.parameters).toEqual({ region: "EU", budget: 10 });
  });

  it("accepts proto field names and enum numbers in the body", async () => {
    const res = await app.inject({ method: "POST", url: "/v3/runs", payload: { input: "x", request_id: "req-2", mode: 1 } });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ requestId: "req-2" });
    const req = only<CreateRunRequest>("CreateRun");
    expect(req.requestId).toBe("req-2");
    expect(req.mode).toBe(RouteMode.V1);
  });

  it("POST /v3/routes:explain (custom verb) reaches ExplainRoute with the body", async () => {
    const res = await app.inject({ method: "POST", url: "/v3/routes:explain", payload: { input: "plan a launch", agents: ["agents/seo"] } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ target: "TARGET_HYBRID", confidence: 0.5, router: "fake" });
    const req = only<ExplainRouteRequest>("ExplainRoute");
    expect(req.input).toBe("plan a launch");
    expect(req.agents).toEqual(["agents/seo"]);
  });

  it("an unknown body field is a 400 naming it, and the upstream is not called", async () => {
    const res = await app.inject({ method: "POST", url: "/v3/runs", payload: { input: "x", colour: "red" } });
    const body = expectStatus(res, 400, Code.InvalidArgument);
    expect(body.message).toContain("colour");
    expect(calls).toEqual([]);
  });

  it("a JSON body that is not an object is a 400", async () => {
    const res = await app.inject({ method: "POST", url: "/v3/runs", payload: "[1,2]", headers: { "content-type": "application/json" } });
    expectStatus(res, 400, Code.InvalidArgument);
    expect(calls).toEqual([]);
  });

  it("a body value of the wrong JSON type is a 400 naming the field", async () => {
    const res = await app.inject({ method: "POST", url: "/v3/runs", payload: { input: "x", agents: "agents/seo" } });
    const body = expectStatus(res, 400, Code.InvalidArgument);
    expect(body.message).toContain("agents");
    expect(calls).toEqual([]);
  });
});

describe("path variables", () => {
  it("GET /v3/runs/abc sets name to runs/abc", async () => {
    const res = await app.inject({ method: "GET", url: "/v3/runs/abc" });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ name: "runs/abc", state: "STATE_RUNNING" });
    expect(only<GetRunRequest>("GetRun").name).toBe("runs/abc");
  });

  it("percent-escapes in a multi-segment variable are decoded except %2F", async () => {
    const res = await app.inject({ method: "GET", url: "/v3/runs/a%20b%2Fc" });
    expect(res.statusCode).toBe(200);
    expect(only<GetRunRequest>("GetRun").name).toBe("runs/a b%2Fc");
  });

  it("the query string is not part of the path variable", async () => {
    const res = await app.inject({ method: "GET", url: "/v3/runs/abc?" });
    expect(res.statusCode).toBe(200);
    expect(only<GetRunRequest>("GetRun").name).toBe("runs/abc");
  });
});

describe("query parameters", () => {
  it("GET /v3/runs?pageSize=5&pageToken=t converts the number and sets the string", async () => {
    const res = await app.inject({ method: "GET", url: "/v3/runs?pageSize=5&pageToken=t" });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ runs: [{ name: "runs/a" }, { name: "runs/b" }], nextPageToken: "next" });
    const req = only<ListRunsRequest>("ListRuns");
    expect(req.pageSize).toBe(5);
    expect(req.pageToken).toBe("t");
  });

  it("accepts proto field names as query parameters", async () => {
    const res = await app.inject({ method: "GET", url: "/v3/runs?page_size=7&page_token=abc" });
    expect(res.statusCode).toBe(200);
    const req = only<ListRunsRequest>("ListRuns");
    expect(req.pageSize).toBe(7);
    expect(req.pageToken).toBe("abc");
  });

  it("decodes percent-escapes in query values", async () => {
    const res = await app.inject({ method: "GET", url: "/v3/runs?pageToken=a%2Bb%20c%2Fd" });
    expect(res.statusCode).toBe(200);
    expect(only<ListRunsRequest>("ListRuns").pageToken).toBe("a+b c/d");
  });

  it("a number parameter that is not a number is a 400 naming the field", async () => {
    const res = await app.inject({ method: "GET", url: "/v3/runs?pageSize=five" });
    const body = expectStatus(res, 400, Code.InvalidArgument);
    expect(body.message).toContain("page_size");
    expect(calls).toEqual([]);
  });

  it("an enum parameter is accepted by name", async () => {
    const res = await app.inject({ method: "GET", url: "/v3/agents?system=AGENT_SYSTEM_V1&department=growth" });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({});
    const req = only<ListAgentsRequest>("ListAgents");
    expect(req.system).toBe(AgentSystem.V1);
    expect(req.department).toBe("growth");
  });

  it("an enum parameter is accepted by number", async () => {
    const res = await app.inject({ method: "GET", url: "/v3/agents?system=2" });
    expect(res.statusCode).toBe(200);
    expect(only<ListAgentsRequest>("ListAgents").system).toBe(AgentSystem.V2);
  });

  it("an unknown enum name is a 400 naming the value", async () => {
    const res = await app.inject({ method: "GET", url: "/v3/agents?system=AGENT_SYSTEM_V9" });
    const body = expectStatus(res, 400, Code.InvalidArgument);
    expect(body.message).toContain("AGENT_SYSTEM_V9");
    expect(calls).toEqual([]);
  });

  it("an unknown query parameter is a 400 naming it", async () => {
    const res = await app.inject({ method: "GET", url: "/v3/runs?pageSize=5&colour=red" });
    const body = expectStatus(res, 400, Code.InvalidArgument);
    expect(body.message).toContain("colour");
    expect(calls).toEqual([]);
  });

  it("a singular field given twice is a 400", async () => {
    const res = await app.inject({ method: "GET", url: "/v3/runs?pageSize=1&pageSize=2" });
    const body = expectStatus(res, 400, Code.InvalidArgument);
    expect(body.message).toContain("pageSize");
    expect(calls).toEqual([]);
  });
});

describe("body \"icp\" with a nested path variable (IcpService)", () => {
  it("PATCH /api/icps/123?updateMask=displayName sets icp from the body, icp.name from the path and the FieldMask from the query", async () => {
    const res = await app.inject({ method: "PATCH", url: "/api/icps/123?updateMask=displayName", payload: { displayName: "Acme" } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ name: "icps/123", displayName: "Acme" });
    const req = only<UpdateIcpRequest>("UpdateIcp");
    expect(req.icp?.name).toBe("icps/123");
    expect(req.icp?.displayName).toBe("Acme");
    expect(req.updateMask?.paths).toEqual(["display_name"]);
  });

  it("accepts proto names in the body and a comma-separated FieldMask under its proto name", async () => {
    const res = await app.inject({
      method: "PATCH",
      url: "/api/icps/123?update_mask=displayName,painPoints",
      payload: { display_name: "Acme", pain_points: ["churn", "cost"] },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ name: "icps/123", displayName: "Acme", painPoints: ["churn", "cost"] });
    const req = only<UpdateIcpRequest>("UpdateIcp");
    expect(req.icp?.displayName).toBe("Acme");
    expect(req.icp?.painPoints).toEqual(["churn", "cost"]);
    expect(req.updateMask?.paths).toEqual(["display_name", "pain_points"]);
  });

  it("the name from the path wins over a name in the body", async () => {
    const res = await app.inject({ method: "PATCH", url: "/api/icps/123", payload: { name: "icps/999", industry: "retail" } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ name: "icps/123", industry: "retail" });
    expect(only<UpdateIcpRequest>("UpdateIcp").icp?.name).toBe("icps/123");
  });

  it("POST /api/icps puts the whole body into icp", async () => {
    const res = await app.inject({ method: "POST", url: "/api/icps", payload: { displayName: "Acme", companySize: "50-200" } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ name: "icps/new", displayName: "Acme", companySize: "50-200" });
    const req = only<CreateIcpRequest>("CreateIcp");
    expect(req.icp?.displayName).toBe("Acme");
    expect(req.icp?.companySize).toBe("50-200");
  });

  it("an unknown field in the icp body is a 400 naming it", async () => {
    const res = await app.inject({ method: "PATCH", url: "/api/icps/123", payload: { displayName: "Acme", colour: "red" } });
    const body = expectStatus(res, 400, Code.InvalidArgument);
    expect(body.message).toContain("colour");
    expect(calls).toEqual([]);
  });
});

describe("additional_bindings", () => {
  it("POST /v1/icps works like POST /api/icps", async () => {
    const v1 = await app.inject({ method: "POST", url: "/v1/icps", payload: { displayName: "Acme" } });
    const api = await app.inject({ method: "POST", url: "/api/icps", payload: { displayName: "Acme" } });
    expect(v1.statusCode).toBe(200);
    expect(v1.json()).toEqual(api.json());
    expect(calls.map((c) => c.rpc)).toEqual(["CreateIcp", "CreateIcp"]);
    expect((calls[0].request as CreateIcpRequest).icp?.displayName).toBe("Acme");
  });

  it("PATCH /v1/icps/123 sets icp.name like the /api route", async () => {
    const res = await app.inject({ method: "PATCH", url: "/v1/icps/123?updateMask=industry", payload: { industry: "retail" } });
    expect(res.statusCode).toBe(200);
    const req = only<UpdateIcpRequest>("UpdateIcp");
    expect(req.icp?.name).toBe("icps/123");
    expect(req.icp?.industry).toBe("retail");
    expect(req.updateMask?.paths).toEqual(["industry"]);
  });

  it("GET /v1/icps/7 and GET /api/icps/7 both reach GetIcp with name icps/7", async () => {
    for (const url of ["/v1/icps/7", "/api/icps/7"]) {
      const res = await app.inject({ method: "GET", url });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ name: "icps/7", displayName: "Acme" });
    }
    expect(calls.map((c) => (c.request as GetIcpRequest).name)).toEqual(["icps/7", "icps/7"]);
  });

  it("GET /v1/icps?pageSize=2 reaches ListIcps", async () => {
    const res = await app.inject({ method: "GET", url: "/v1/icps?pageSize=2" });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ icps: [{ name: "icps/1" }] });
    expect(only<ListIcpsRequest>("ListIcps").pageSize).toBe(2);
  });

  it("DELETE /v1/icps/7 reaches DeleteIcp and answers google.protobuf.Empty as {}", async () => {
    const res = await app.inject({ method: "DELETE", url: "/v1/icps/7" });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({});
    expect(only<DeleteIcpRequest>("DeleteIcp").name).toBe("icps/7");
  });
});

describe("routing errors", () => {
  it("a wrong HTTP method on an existing path is a 405", async () => {
    for (const [method, url] of [
      ["DELETE", "/v3/runs"],
      ["PUT", "/v3/runs/abc"],
      ["GET", "/v3/runs:stream"],
      ["POST", "/v3/agents"],
    ] as const) {
      const res = await app.inject({ method, url, ...(method === "POST" ? { payload: {} } : {}) });
      const body = expectStatus(res, 405, Code.Unimplemented);
      expect(body.message).toContain(method);
    }
    expect(calls).toEqual([]);
  });

  it("an unknown path is a 404", async () => {
    for (const url of ["/v3/nothing", "/v3/runs/abc/def", "/v3/runs/", "/v3/runs:cancel", "/v2/runs"]) {
      const res = await app.inject({ method: "GET", url });
      const body = expectStatus(res, 404, Code.NotFound);
      expect(body.message).toContain(url.split("?")[0]);
    }
    expect(calls).toEqual([]);
  });
});

describe("upstream errors", () => {
  it("NotFound is a 404 with {code: 5, message}", async () => {
    failWith = new ConnectError("run runs/missing not found", Code.NotFound);
    const res = await app.inject({ method: "GET", url: "/v3/runs/missing" });
    const body = expectStatus(res, 404, Code.NotFound);
    expect(body).toEqual({ code: 5, message: "run runs/missing not found", details: [] });
  });

  it("InvalidArgument is a 400 and its details are typed Any values", async () => {
    failWith = new ConnectError("input is empty", Code.InvalidArgument, undefined, [
      { desc: BadRequestSchema, value: { fieldViolations: [{ field: "input", description: "must not be empty" }] } },
    ]);
    const res = await app.inject({ method: "POST", url: "/v3/routes:explain", payload: { input: "" } });
    const body = expectStatus(res, 400, Code.InvalidArgument);
    expect(body).toEqual({
      code: 3,
      message: "input is empty",
      details: [
        {
          "@type": "type.googleapis.com/google.rpc.BadRequest",
          fieldViolations: [{ field: "input", description: "must not be empty" }],
        },
      ],
    });
  });

  const mapped: Array<[Code, number]> = [
    [Code.Unauthenticated, 401],
    [Code.PermissionDenied, 403],
    [Code.AlreadyExists, 409],
    [Code.Aborted, 409],
    [Code.FailedPrecondition, 400],
    [Code.OutOfRange, 400],
    [Code.ResourceExhausted, 429],
    [Code.Unimplemented, 501],
    [Code.Unavailable, 503],
    [Code.DeadlineExceeded, 504],
    [Code.Internal, 500],
  ];
  for (const [code, status] of mapped) {
    it(`${Code[code]} is a ${status}`, async () => {
      failWith = new ConnectError("upstream says no", code);
      const res = await app.inject({ method: "GET", url: "/v3/runs" });
      const body = expectStatus(res, status, code);
      expect(body.message).toBe("upstream says no");
    });
  }

  it("an unexpected upstream exception is a 500 Internal", async () => {
    failWith = new Error("database password is hunter2");
    const res = await app.inject({ method: "GET", url: "/v1/icps/7" });
    expectStatus(res, 500, Code.Internal);
  });
});

describe("request headers", () => {
  it("forwards x-request-id and authorization to the upstream, not other headers", async () => {
    const res = await app.inject({
      method: "GET",
      url: "/v3/runs",
      headers: { "x-request-id": "rid-42", authorization: "Bearer t", cookie: "session=1" },
    });
    expect(res.statusCode).toBe(200);
    expect(calls).toHaveLength(1);
    expect(calls[0].headers.get("x-request-id")).toBe("rid-42");
    expect(calls[0].headers.get("authorization")).toBe("Bearer t");
    expect(calls[0].headers.get("cookie")).toBeNull();
  });
});

describe("server streaming: POST /v3/runs:stream", () => {
  const events = () => [
    create(RunEventSchema, { event: { case: "routed", value: { target: Target.V1, router: "fake" } } }),
    create(RunEventSchema, { event: { case: "progress", value: { run: "runs/r1", completedSteps: 1, totalSteps: 2 } } }),
    create(RunEventSchema, { event: { case: "run", value: { name: "runs/r1", state: Run_State.SUCCEEDED } } }),
  ];
  const lines = (payload: string) => {
    expect(payload.endsWith("\n")).toBe(true);
    return payload.trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  };

  it("answers application/x-ndjson with one {\"result\": …} line per message", async () => {
    streamScript = events();
    const res = await app.inject({ method: "POST", url: "/v3/runs:stream", payload: { input: "grow revenue", request_id: "s-1" } });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("application/x-ndjson");
    expect(lines(res.payload)).toEqual([
      { result: { routed: { target: "TARGET_V1", router: "fake" } } },
      { result: { progress: { run: "runs/r1", completedSteps: 1, totalSteps: 2 } } },
      { result: { run: { name: "runs/r1", state: "STATE_SUCCEEDED" } } },
    ]);
    const req = only<CreateRunRequest>("StreamRun");
    expect(req.input).toBe("grow revenue");
    expect(req.requestId).toBe("s-1");
  });

  it("an empty stream answers 200 with no lines", async () => {
    streamScript = [];
    const res = await app.inject({ method: "POST", url: "/v3/runs:stream", payload: { input: "x" } });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("application/x-ndjson");
    expect(res.payload).toBe("");
  });

  it("an error mid-stream ends the stream with an {\"error\": Status} line", async () => {
    const [routed, progress] = events();
    streamScript = [routed, progress, new ConnectError("agent quota used up", Code.ResourceExhausted)];
    const res = await app.inject({ method: "POST", url: "/v3/runs:stream", payload: { input: "x" } });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("application/x-ndjson");
    const got = lines(res.payload);
    expect(got).toHaveLength(3);
    expect(got.slice(0, 2)).toEqual([
      { result: { routed: { target: "TARGET_V1", router: "fake" } } },
      { result: { progress: { run: "runs/r1", completedSteps: 1, totalSteps: 2 } } },
    ]);
    expect(got[2]).toEqual({ error: { code: Code.ResourceExhausted, message: "agent quota used up", details: [] } });
  });

  it("a bad request body is a plain 400 Status, not a stream", async () => {
    const res = await app.inject({ method: "POST", url: "/v3/runs:stream", payload: { input: "x", colour: "red" } });
    const body = expectStatus(res, 400, Code.InvalidArgument);
    expect(body.message).toContain("colour");
    expect(calls).toEqual([]);
  });
});

describe("malformed JSON bodies in the gateway assembled by build()", () => {
  let gateway: FastifyInstance;
  beforeAll(async () => {
    // Upstream channels are lazy: a request rejected before the handler never dials them.
    gateway = await build({ env: { NODE_ENV: "test" }, logger: false });
    await gateway.ready();
  });
  afterAll(async () => {
    await gateway.close();
  });

  it("a body that is not JSON is a 400 with google.rpc.Status JSON", async () => {
    const res = await gateway.inject({ method: "POST", url: "/v3/runs", payload: "{\"input\": ", headers: { "content-type": "application/json" } });
    expectStatus(res, 400, Code.InvalidArgument);
  });

  it("an empty JSON body is a 400 with google.rpc.Status JSON", async () => {
    const res = await gateway.inject({ method: "PATCH", url: "/api/icps/1", payload: "", headers: { "content-type": "application/json" } });
    expectStatus(res, 400, Code.InvalidArgument);
  });
});

describe("HTTP corner cases", () => {
  it("a malformed body answers google.rpc.Status even when the plugin is mounted on a bare fastify app", async () => {
    const res = await app.inject({ method: "POST", url: "/v3/runs", headers: { "content-type": "application/json" }, payload: "{not json" });
    expectStatus(res, 400, Code.InvalidArgument);
    expect(calls).toHaveLength(0);
  });

  it("405 names the allowed methods in Allow", async () => {
    const res = await app.inject({ method: "DELETE", url: "/v3/runs" });
    expectStatus(res, 405, Code.Unimplemented);
    expect(res.headers.allow).toBe("GET, POST");
  });

  it("HEAD is answered like GET, without a body", async () => {
    const res = await app.inject({ method: "HEAD", url: "/v3/runs" });
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe("");
    expect(calls.map((c) => c.rpc)).toEqual(["ListRuns"]);
  });

  it("a stream that fails before its first message gets the error's own HTTP status", async () => {
    streamScript = [new ConnectError("denied", Code.PermissionDenied)];
    const res = await app.inject({ method: "POST", url: "/v3/runs:stream", payload: { input: "x" } });
    expectStatus(res, 403, Code.PermissionDenied);
  });
});

import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IdentityService } from "../gen/raptorflow/identity/v1/identity_pb.js";
import { OrchestratorService, Run_State } from "../gen/raptorflow/v3/orchestrator_pb.js";
import { IcpService } from "../gen/raptorflow/v1/icp_pb.js";
import { AgentService } from "../gen/raptorflow/agent/v1/agent_pb.js";
import { accessPolicyOf } from "../platform/auth/access-policy.js";
import { contractServices, isTestContract } from "../platform/auth/policy-table.js";
import { roles, type Role } from "../platform/auth/roles.js";
import { startSecureMesh, type SecureMesh } from "./support/secure-mesh.js";

/**
 * The authorization matrix: every RPC of every service of the contracts,
 * served by the real servers (each built by its own `build`, AUTH=required),
 * called with a token of every role, with no token, and with another
 * organization's token, each outcome checked against the policy the
 * contract declares — not against a list written here.
 */

const org = "acme";
const otherOrg = "globex";

/** Outcome is how a call ended: OK, or the gRPC code it failed with. */
type Outcome = "OK" | Code;

/** call runs any method of a service with a request and headers and returns how it ended (a stream: its first message or its error). */
async function call(mesh: SecureMesh, service: DescService, method: DescMethod, request: object, token?: string): Promise<Outcome> {
  const client = mesh.client(service) as unknown as Record<string, (req: object, opts: object) => unknown>;
  const options = { headers: token ? { authorization: `Bearer ${token}` } : {}, timeoutMs: 20_000 };
  try {
    const res = client[method.localName](request, options);
    if (method.methodKind === "server_streaming") {
      for await (const _ of res as AsyncIterable<unknown>) break;
    } else {
      await res;
    }
    return "OK";
  } catch (e) {
    return ConnectError.from(e).code;
  }
}

const show = (o: Outcome): string => (o === "OK" ? "OK" : Code[o]);

describe("the authorization matrix", () => {
  let mesh: SecureMesh;
  let services: DescService[];
  const tokens = new Map<Role, string>();
  let otherAdmin: string;

  beforeAll(async () => {
    mesh = await startSecureMesh();
    services = (await contractServices()).filter((s) => !isTestContract(s));
    for (const r of roles) tokens.set(r, await mesh.token(org, r));
    otherAdmin = await mesh.token(otherOrg, "admin");
  }, 60_000);
  afterAll(async () => {
    await mesh?.stop();
  });

  it("serves every service of the contracts on one server of the mesh (the gateway's own MeshStatusService aside)", () => {
    const served = new Set(mesh.services.flatMap((s) => s.serviceNames));
    const missing = services.filter((s) => !served.has(s.typeName) && s.typeName !== "raptorflow.v3.MeshStatusService").map((s) => s.typeName);
    expect(missing).toEqual([]);
  });

  it("answers every RPC, for every role and without a token, as its declared policy says", async () => {
    const served = new Set(mesh.services.flatMap((s) => s.serviceNames));
    const mismatches: string[] = [];
    let calls = 0;
    for (const service of services.filter((s) => served.has(s.typeName))) {
      for (const method of service.methods) {
        const policy = accessPolicyOf(method);
        const path = `${service.typeName}/${method.name}`;
        if (!policy) {
          mismatches.push(`${path}: declares no policy`);
          continue;
        }
        // An empty request: what it would do is not the point, whether the caller gets past the policy is.
        const outcomes = await Promise.all([...roles.map((r) => call(mesh, service, method, {}, tokens.get(r))), call(mesh, service, method, {})]);
        calls += outcomes.length;
        roles.forEach((role, i) => {
          const o = outcomes[i];
          const allowed = policy.public || policy.roles.has(role);
          const ok = allowed ? o !== Code.PermissionDenied && o !== Code.Unauthenticated : o === Code.PermissionDenied;
          if (!ok) mismatches.push(`${path} as ${role}: ${show(o)}, expected ${allowed ? "to get past the policy" : "PERMISSION_DENIED"}`);
        });
        const anonymous = outcomes[roles.length];
        const ok = policy.public ? anonymous !== Code.Unauthenticated && anonymous !== Code.PermissionDenied : anonymous === Code.Unauthenticated;
        if (!ok) mismatches.push(`${path} without a token: ${show(anonymous)}, expected ${policy.public ? "to get through" : "UNAUTHENTICATED"}`);
      }
    }
    expect(mismatches).toEqual([]);
    expect(calls).toBeGreaterThan(500);
  }, 120_000);

  it("refuses a token that does not verify, on every service", async () => {
    const forged = `${tokens.get("admin")!.slice(0, -4)}AAAA`;
    for (const service of [OrchestratorService, AgentService, IcpService, IdentityService]) {
      const method = service.methods.find((m) => !accessPolicyOf(m)?.public)!;
      expect(show(await call(mesh, service, method, {}, forged)), service.typeName).toBe("Unauthenticated");
    }
  });

  describe("another organization's records", () => {
    /** records are one record of `org` per resource service (those with a Create and a Get), by service. */
    const records = new Map<DescService, string>();
    let run: string;

    beforeAll(async () => {
      const admin = tokens.get("admin")!;
      const resourceServices = services.filter((s) => s.methods.some((m) => m.name.startsWith("Create")) && s.methods.some((m) => m.name.startsWith("Get")) && /^raptorflow\.v[12]\./.test(s.typeName));
      for (const s of resourceServices) {
        const create = s.methods.find((m) => m.name.startsWith("Create"))!;
        const field = create.input.fields[0].localName;
        const sample = s.typeName.endsWith(".MemoryService") ? { kind: 1, content: "our launch date is a secret" } : s.typeName === "raptorflow.v2.AssetService" ? { displayName: "a", kind: 1 } : { displayName: "a" };
        const client = mesh.client(s) as unknown as Record<string, (req: object, opts: object) => Promise<{ name: string }>>;
        const created = await client[create.localName]({ [field]: sample }, { headers: { authorization: `Bearer ${admin}` } });
        records.set(s, created.name);
      }
      const orchestrator = mesh.client(OrchestratorService);
      const finished = await orchestrator.createRun({ input: "Write a welcome email for new trial users" }, { headers: { authorization: `Bearer ${tokens.get("marketer")}` } });
      expect(finished.state).toBe(Run_State.SUCCEEDED);
      run = finished.name;
    }, 60_000);

    it("are NOT_FOUND for another organization's admin on every method that names one, and found by their own", async () => {
      const mismatches: string[] = [];
      let checked = 0;
      for (const [service, name] of records) {
        for (const method of service.methods) {
          const field = method.input.fields[0];
          const request =
            method.name.startsWith("Get") || method.name.startsWith("Delete")
              ? { name }
              : method.name.startsWith("Update")
                ? { [field.localName]: { name, displayName: "b" }, updateMask: { paths: ["display_name"] } }
                : undefined;
          if (!request) continue;
          checked++;
          const other = await call(mesh, service, method, request, otherAdmin);
          if (other !== Code.NotFound) mismatches.push(`${service.typeName}/${method.name} of ${name} by ${otherOrg}: ${show(other)}`);
        }
        const get = service.methods.find((m) => m.name.startsWith("Get"))!;
        const own = await call(mesh, service, get, { name }, tokens.get("viewer"));
        if (own !== "OK") mismatches.push(`${service.typeName}/${get.name} of ${name} by its own organization's viewer: ${show(own)}`);
      }
      expect(mismatches).toEqual([]);
      expect(checked).toBe(records.size * 3 - [...records.keys()].filter((s) => !s.methods.some((m) => m.name.startsWith("Update"))).length);
    });

    it("never appear in another organization's lists", async () => {
      for (const [service, name] of records) {
        const list = service.methods.find((m) => m.name.startsWith("List"))!;
        const client = mesh.client(service) as unknown as Record<string, (req: object, opts: object) => Promise<Record<string, unknown>>>;
        const names = async (token: string): Promise<string[]> => {
          const page = await client[list.localName]({ pageSize: 1000 }, { headers: { authorization: `Bearer ${token}` } });
          return (Object.values(page).find(Array.isArray) as { name: string }[]).map((r) => r.name);
        };
        expect(await names(otherAdmin), service.typeName).not.toContain(name);
        expect(await names(tokens.get("viewer")!), service.typeName).toContain(name);
      }
    });

    it("runs are NOT_FOUND for another organization: GetRun, WatchRun, GetRunStatus, GetRunResult, CreateFeedback", async () => {
      const runId = run.slice("runs/".length);
      const m = OrchestratorService.method;
      const cases: [DescMethod, object][] = [
        [m.getRun, { name: run }],
        [m.watchRun, { name: run }],
        [m.getRunStatus, { runId }],
        [m.getRunResult, { runId }],
        [m.createFeedback, { parent: run, feedback: { rating: 5 } }],
      ];
      for (const [method, request] of cases) {
        expect(show(await call(mesh, OrchestratorService, method, request, otherAdmin)), method.name).toBe("NotFound");
        expect(show(await call(mesh, OrchestratorService, method, request, tokens.get("admin"))), method.name).toBe("OK");
      }
      const listed = await mesh.client(OrchestratorService).listRuns({ pageSize: 1000 }, { headers: { authorization: `Bearer ${otherAdmin}` } });
      expect(listed.runs.map((r) => r.name)).not.toContain(run);
    });

    it("API keys are NOT_FOUND for another organization's admin", async () => {
      const outcome = await call(mesh, IdentityService, IdentityService.method.listApiKeys, { parent: `organizations/${org}` }, otherAdmin);
      expect(show(outcome)).toBe("NotFound");
    });
  });

  it("the orchestrator reaches the agents as a service of the caller's organization, and a header naming another organization is refused", async () => {
    const orchestrator = mesh.client(OrchestratorService);
    const run = await orchestrator.createRun({ input: "Build an ideal customer profile for our analytics tool", mode: 1 }, { headers: { authorization: `Bearer ${tokens.get("analyst")}` } });
    expect(run.state).toBe(Run_State.SUCCEEDED);
    expect(run.steps.length).toBeGreaterThan(0);
    // Streamed too: the agents' streams carry the same service token.
    let last: string | undefined;
    for await (const ev of orchestrator.streamRun({ input: "Write a welcome email for new trial users", mode: 2 }, { headers: { authorization: `Bearer ${tokens.get("marketer")}` } })) {
      if (ev.event.case === "run") last = Run_State[ev.event.value.state];
    }
    expect(last).toBe("SUCCEEDED");
    // The V1 agents kept their answer as records of the caller's organization, and of no other.
    const icps = mesh.client(IcpService);
    const own = await icps.listIcps({ pageSize: 1000 }, { headers: { authorization: `Bearer ${tokens.get("viewer")}` } });
    expect(own.icps.some((i) => i.origin?.run === run.name)).toBe(true);
    const other = await icps.listIcps({ pageSize: 1000 }, { headers: { authorization: `Bearer ${otherAdmin}` } });
    expect(other.icps.some((i) => i.origin?.run === run.name)).toBe(false);
    // A caller cannot point its token at another organization with the header.
    const spoof = await orchestrator.listRuns({}, { headers: { authorization: `Bearer ${tokens.get("admin")}`, "x-raptorflow-organization": otherOrg } }).then(
      () => "OK",
      (e) => show(ConnectError.from(e).code),
    );
    expect(spoof).toBe("PermissionDenied");
  }, 60_000);
});

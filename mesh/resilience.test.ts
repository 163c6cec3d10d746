import { setTimeout as sleep } from "node:timers/promises";
import { clone, create, createFileRegistry, type DescFile } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, MethodOptions_IdempotencyLevel, MethodOptionsSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type ServiceImpl } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorInfoSchema, RetryInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { AgentService, file_raptorflow_agent_v1_agent } from "../gen/raptorflow/agent/v1/agent_pb.js";
import { upstreamTransport } from "./clients.js";
import { createMeshServer, type MeshServer } from "./grpc-server.js";
import { createGrpcTransport, type GrpcTransport } from "./grpc-transport.js";
import { createResilience, createRetryBudget, resilienceState, type Resilience } from "./resilience.js";
import type { CallPolicy } from "./topology.js";

/**
 * IdempotentAgentService is AgentService as a contract that declares its
 * reads `option idempotency_level = NO_SIDE_EFFECTS` would describe it: the
 * same paths and messages, so the real service answers it.
 */
const IdempotentAgentService = ((): typeof AgentService => {
  const proto = clone(FileDescriptorProtoSchema, file_raptorflow_agent_v1_agent.proto);
  for (const m of proto.service.find((s) => s.name === "AgentService")!.method) {
    if (m.name === "GetAgent" || m.name === "ListAgents") {
      m.options ??= create(MethodOptionsSchema);
      m.options.idempotencyLevel = MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS;
    }
  }
  const files = new Map<string, DescFile>();
  const collect = (f: DescFile): void => {
    for (const d of f.dependencies) if (!files.has(d.proto.name)) (files.set(d.proto.name, d), collect(d));
  };
  collect(file_raptorflow_agent_v1_agent);
  const service = createFileRegistry(proto, (name) => files.get(name)).getService(AgentService.typeName);
  return service as unknown as typeof AgentService;
})();

/** Backend is a test agent service: each method counts its calls and answers from a script of codes (then OK). */
interface Backend {
  readonly calls: { getAgent: number; runAgent: number; streamAgent: number };
  /** script is the codes the next calls fail with, one each, in order; empty: OK. */
  script: Code[];
  /** always, when set, is the code every call fails with once the script is spent. */
  always?: Code;
  /** hold, when set, keeps every RunAgent call until it resolves. */
  hold?: Promise<void>;
  /** holding counts the RunAgent calls being held. */
  holding: number;
  /** passOn, when set, makes GetAgent pass on this error, as a service whose own upstream refused it would. */
  passOn?: ConnectError;
}

function newBackend(): Backend {
  return { calls: { getAgent: 0, runAgent: 0, streamAgent: 0 }, script: [], holding: 0 };
}

function answer(b: Backend): void {
  const code = b.script.shift() ?? b.always;
  if (code !== undefined) throw new ConnectError(`scripted ${Code[code]}`, code);
}

function agentImpl(b: Backend): Partial<ServiceImpl<typeof AgentService>> {
  return {
    getAgent(req) {
      b.calls.getAgent++;
      if (b.passOn) throw b.passOn;
      answer(b);
      return { name: req.name };
    },
    async runAgent(req, ctx) {
      b.calls.runAgent++;
      if (b.hold) {
        b.holding++;
        await Promise.race([b.hold, new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }))]);
        b.holding--;
      }
      answer(b);
      return { agent: req.name, summary: req.input };
    },
    async *streamAgent(req) {
      b.calls.streamAgent++;
      answer(b);
      yield { event: { case: "result", value: { agent: req.name } } };
    },
  };
}

const servers: MeshServer[] = [];
const transports: GrpcTransport[] = [];
afterEach(async () => {
  for (const t of transports.splice(0)) t.close();
  await Promise.all(servers.splice(0).map((s) => s.shutdown()));
});

/** serve starts the backend on loopback (port 0: a free one) and resolves with its port. */
async function serve(backend: Backend, port = 0): Promise<{ server: MeshServer; port: number }> {
  const server = createMeshServer({ services: [{ service: AgentService, impl: agentImpl(backend) }], drainTimeoutMs: 100 });
  servers.push(server);
  return { server, port: await server.listen(port, "127.0.0.1") };
}

/** policy is a call policy with small numbers: four calls can open the circuit, which stays open a minute unless told otherwise. */
function policy(over: Partial<CallPolicy> = {}): CallPolicy {
  return {
    timeoutMs: 5_000,
    retry: { maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 5, backoffMultiplier: 2, retryableCodes: ["UNAVAILABLE"] },
    breaker: { failureRate: 0.5, windowMs: 60_000, minimumCalls: 4, halfOpenAfterMs: 60_000 },
    bulkhead: { maxConcurrent: 16, maxQueued: 16 },
    retryBudget: { ratio: 1, minRetries: 100, windowMs: 60_000 },
    ...over,
  };
}

/** connect builds a resilience for v1-agents at `port` and a transport that carries it. */
function connect(port: number, p: CallPolicy): { resilience: Resilience; transport: GrpcTransport } {
  const address = `127.0.0.1:${port}`;
  const resilience = createResilience("v1-agents", p, { address });
  const transport = createGrpcTransport({ address, policy: p, interceptors: [resilience.interceptor] });
  transports.push(transport);
  return { resilience, transport };
}

const failure = (p: Promise<unknown>): Promise<ConnectError> =>
  p.then(
    () => {
      throw new Error("the call succeeded");
    },
    (e: unknown) => ConnectError.from(e),
  );

describe("circuit breaker", () => {
  it("opens after the failure threshold: calls then fail fast with UNAVAILABLE naming the upstream, without reaching it", async () => {
    // GIVEN an upstream that answers UNAVAILABLE to everything (overloaded, draining)
    const backend = newBackend();
    backend.always = Code.Unavailable;
    const { port } = await serve(backend);
    const { resilience, transport } = connect(port, policy());
    const client = createClient(AgentService, transport);

    // WHEN a caller keeps calling it
    for (let i = 0; i < 4; i++) expect((await failure(client.getAgent({ name: "agents/a" }))).rawMessage).toBe("scripted Unavailable");
    const refused = await Promise.all(Array.from({ length: 10 }, () => failure(client.getAgent({ name: "agents/a" }))));

    // THEN the fifth call and every one after it is refused by the caller itself
    expect(resilience.circuit).toBe("open");
    expect(backend.calls.getAgent).toBe(4);
    for (const err of refused) {
      expect(err.code).toBe(Code.Unavailable);
      expect(err.rawMessage).toMatch(/^v1-agents: circuit open after 4 failures in the last 60s; retrying in [\d.]+s$/);
    }
    expect(Number(refused[0].metadata.get("retry-after"))).toBeGreaterThan(0);
    expect(refused[0].findDetails(RetryInfoSchema)[0].retryDelay?.seconds).toBeGreaterThan(0n);
    expect(resilience.snapshot()).toMatchObject({ upstream: "v1-agents", circuit: "open", recentFailures: 4 });
  });

  it("after the upstream restarts on the same port, a half-open probe succeeds and calls flow again", async () => {
    // GIVEN an upstream that answers, and a circuit that probes 50 ms after it opens
    const backend = newBackend();
    const first = await serve(backend);
    const { resilience, transport } = connect(first.port, policy({ breaker: { failureRate: 0.5, windowMs: 60_000, minimumCalls: 4, halfOpenAfterMs: 50 } }));
    const client = createClient(AgentService, transport);
    const changes: string[] = [];
    resilience.onCircuitChange((s) => changes.push(s));
    await client.getAgent({ name: "agents/a" });

    // WHEN it stops, the callers' failures open the circuit
    await first.server.shutdown();
    let opened: ConnectError | undefined;
    for (let i = 0; i < 20 && !opened; i++) {
      const err = await failure(client.getAgent({ name: "agents/a" }));
      expect(err.code).toBe(Code.Unavailable);
      if (err.rawMessage.includes("circuit open")) opened = err;
    }
    expect(opened?.rawMessage).toMatch(/^v1-agents: circuit open after \d+ failures in the last 60s; /);

    // AND when it is back on the same port, the mesh recovers by itself: a probe gets through and closes the circuit
    await serve(backend, first.port);
    let answered = false;
    for (let i = 0; i < 200 && !answered; i++) {
      answered = await client.getAgent({ name: "agents/a" }).then(
        () => true,
        () => sleep(25).then(() => false),
      );
    }
    expect(answered).toBe(true);
    expect(resilience.circuit).toBe("closed");
    expect(changes).toContain("half-open");
    for (let i = 0; i < 5; i++) expect((await client.getAgent({ name: "agents/b" })).name).toBe("agents/b");
  });

  it("never opens on a caller's mistakes or cancellations", async () => {
    // GIVEN an upstream that refuses every call as the caller's fault
    const backend = newBackend();
    backend.script = [Code.InvalidArgument, Code.NotFound, Code.PermissionDenied, Code.FailedPrecondition, Code.AlreadyExists].flatMap((c) => [c, c, c, c]);
    const { port } = await serve(backend);
    const { resilience, transport } = connect(port, policy());
    const client = createClient(AgentService, transport);

    // WHEN twenty such calls, five that the contract's validation refuses, and five the caller cancels fail
    for (let i = 0; i < 20; i++) expect((await failure(client.getAgent({ name: "agents/a" }))).code).not.toBe(Code.Unavailable);
    for (let i = 0; i < 5; i++) expect((await failure(client.getAgent({ name: "not-an-agent-name" }))).code).toBe(Code.InvalidArgument);
    backend.hold = new Promise(() => {});
    for (let i = 0; i < 5; i++) {
      const ac = new AbortController();
      const call = failure(client.runAgent({ name: "agents/a", input: "x" }, { signal: ac.signal }));
      while (backend.holding === 0) await sleep(5);
      ac.abort();
      expect((await call).code).toBe(Code.Canceled);
      while (backend.holding > 0) await sleep(5);
    }

    // THEN the circuit is closed and the next call goes through
    expect(resilience.circuit).toBe("closed");
    expect(resilience.snapshot().recentFailures).toBe(0);
    expect((await client.getAgent({ name: "agents/a" })).name).toBe("agents/a");
  });

  it("a caller's own short deadline passing never opens it; the upstream's default deadline passing does", async () => {
    // GIVEN an upstream that never answers, whose default deadline is 400 ms
    const backend = newBackend();
    backend.hold = new Promise(() => {});
    const { port } = await serve(backend);
    const { resilience, transport } = connect(port, policy({ timeoutMs: 400 }));
    const client = createClient(AgentService, transport);

    // WHEN ten callers give up after 50 ms each
    for (let i = 0; i < 10; i++) expect((await failure(client.runAgent({ name: "agents/a", input: "x" }, { timeoutMs: 50 }))).code).toBe(Code.DeadlineExceeded);
    // THEN the circuit stays closed: their impatience says nothing about the upstream
    expect(resilience.circuit).toBe("closed");

    // WHEN calls run out the upstream's own deadline
    for (let i = 0; i < 4; i++) expect((await failure(client.runAgent({ name: "agents/a", input: "x" }))).code).toBe(Code.DeadlineExceeded);
    // THEN they count, and the circuit opens
    expect(resilience.circuit).toBe("open");
  });

  it("does not count, nor retry, an open circuit further down that the upstream passes on", async () => {
    // GIVEN an upstream that is up, but whose own upstream's circuit is open
    const backend = newBackend();
    backend.passOn = new ConnectError("v2-agents: circuit open after 12 failures in the last 30s; retrying in 4s", Code.Unavailable, undefined, [
      { desc: ErrorInfoSchema, value: { reason: "CIRCUIT_OPEN", domain: "raptorflow.ai", metadata: { upstream: "v2-agents" } } },
    ]);
    const { port } = await serve(backend);
    const { resilience, transport } = connect(port, policy());
    const client = createClient(IdempotentAgentService, transport);

    // WHEN ten safe calls get that answer
    for (let i = 0; i < 10; i++) expect((await failure(client.getAgent({ name: "agents/a" }))).rawMessage).toMatch(/^v2-agents: circuit open/);

    // THEN each was tried once, and this caller's circuit to the upstream stays closed
    expect(backend.calls.getAgent).toBe(10);
    expect(resilience.circuit).toBe("closed");
  });

  it("applies to opening a stream, and never retries one", async () => {
    // GIVEN an upstream whose streams fail to open with UNAVAILABLE
    const backend = newBackend();
    backend.always = Code.Unavailable;
    const { port } = await serve(backend);
    const { resilience, transport } = connect(port, policy());
    const client = createClient(AgentService, transport);
    const open = (key: string) =>
      failure(
        (async () => {
          for await (const ev of client.streamAgent({ name: "agents/a", input: "x" }, { headers: { "idempotency-key": key } })) void ev;
        })(),
      );

    // WHEN four streams are asked for, each with an idempotency key, then a fifth
    for (let i = 0; i < 4; i++) expect((await open(`k${i}`)).code).toBe(Code.Unavailable);
    const refused = await open("k4");

    // THEN each was tried once, and the fifth is refused by the open circuit
    expect(backend.calls.streamAgent).toBe(4);
    expect(resilience.circuit).toBe("open");
    expect(refused.rawMessage).toMatch(/^v1-agents: circuit open/);
  });
});

describe("bulkhead", () => {
  it("refuses a call past its limit with RESOURCE_EXHAUSTED naming the upstream, while the calls in flight succeed", async () => {
    // GIVEN a bulkhead of two calls in flight and no queue, and an upstream that holds calls
    const backend = newBackend();
    let release!: () => void;
    backend.hold = new Promise((r) => (release = r));
    const { port } = await serve(backend);
    const { resilience, transport } = connect(port, policy({ bulkhead: { maxConcurrent: 2, maxQueued: 0 } }));
    const client = createClient(AgentService, transport);

    // WHEN two calls are in flight and a third comes
    const inFlight = [client.runAgent({ name: "agents/a", input: "one" }), client.runAgent({ name: "agents/a", input: "two" })];
    while (backend.holding < 2) await sleep(5);
    expect(resilience.snapshot().inFlight).toBe(2);
    const third = await failure(client.runAgent({ name: "agents/a", input: "three" }));

    // THEN the third is refused at once, naming the upstream and the limit, and the first two finish
    expect(third.code).toBe(Code.ResourceExhausted);
    expect(third.rawMessage).toMatch(/^v1-agents: too many calls at once \(bulkhead of 2 in flight and 0 queued is full\)$/);
    release();
    expect((await Promise.all(inFlight)).map((r) => r.summary)).toEqual(["one", "two"]);
    expect(backend.calls.runAgent).toBe(2);
    // A refusal of the caller's own is not the upstream's failure.
    expect(resilience.circuit).toBe("closed");
  });
});

describe("retries", () => {
  it("retries a NO_SIDE_EFFECTS method answered UNAVAILABLE twice, and it succeeds on the third attempt", async () => {
    const backend = newBackend();
    backend.script = [Code.Unavailable, Code.Unavailable];
    const { port } = await serve(backend);
    const client = createClient(IdempotentAgentService, connect(port, policy()).transport);
    expect(IdempotentAgentService.method.getAgent.idempotency).toBe(MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS);

    expect((await client.getAgent({ name: "agents/a" })).name).toBe("agents/a");
    expect(backend.calls.getAgent).toBe(3);
  });

  it("retries RESOURCE_EXHAUSTED too, but no other code, and stops at maxAttempts", async () => {
    const backend = newBackend();
    const { port } = await serve(backend);
    const noBreaker = policy({ breaker: { failureRate: 0.5, windowMs: 60_000, minimumCalls: 1_000, halfOpenAfterMs: 60_000 } });
    const client: Client<typeof AgentService> = createClient(IdempotentAgentService, connect(port, noBreaker).transport);

    backend.script = [Code.ResourceExhausted];
    await client.getAgent({ name: "agents/a" });
    expect(backend.calls.getAgent).toBe(2);

    backend.script = [Code.Internal];
    expect((await failure(client.getAgent({ name: "agents/a" }))).code).toBe(Code.Internal);
    expect(backend.calls.getAgent).toBe(3);

    backend.script = [Code.Unavailable, Code.Unavailable, Code.Unavailable, Code.Unavailable];
    expect((await failure(client.getAgent({ name: "agents/a" }))).rawMessage).toBe("scripted Unavailable");
    expect(backend.calls.getAgent).toBe(6);
  });

  it("tries a method of unknown idempotency once, and retries it when the call carries an idempotency-key", async () => {
    const backend = newBackend();
    const { port } = await serve(backend);
    const client = createClient(AgentService, connect(port, policy()).transport);
    expect(AgentService.method.runAgent.idempotency).toBe(MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN);

    backend.script = [Code.Unavailable];
    expect((await failure(client.runAgent({ name: "agents/a", input: "x" }))).code).toBe(Code.Unavailable);
    expect(backend.calls.runAgent).toBe(1);

    backend.script = [Code.Unavailable];
    const res = await client.runAgent({ name: "agents/a", input: "x" }, { headers: { "idempotency-key": "run-1" } });
    expect(res.summary).toBe("x");
    expect(backend.calls.runAgent).toBe(3);
  });

  it("stops retrying at the retry budget under a burst of failures; the calls get their own error", async () => {
    // GIVEN a budget of two retries and nothing earned from calls, and an upstream down for good
    const backend = newBackend();
    backend.always = Code.Unavailable;
    const { port } = await serve(backend);
    const p = policy({
      retryBudget: { ratio: 0, minRetries: 2, windowMs: 60_000 },
      breaker: { failureRate: 0.5, windowMs: 60_000, minimumCalls: 1_000, halfOpenAfterMs: 60_000 },
    });
    const client = createClient(IdempotentAgentService, connect(port, p).transport);

    // WHEN a burst of five calls fails
    const errors = await Promise.all(Array.from({ length: 5 }, () => failure(client.getAgent({ name: "agents/a" }))));

    // THEN the upstream saw five calls and two retries, not fifteen attempts
    expect(backend.calls.getAgent).toBe(7);
    for (const err of errors) expect(err.rawMessage).toBe("scripted Unavailable");
  });

  it("never outlives the caller's deadline: a retry due after it is not made", async () => {
    // GIVEN retries that back off for half a minute and a call with a 200 ms deadline
    const backend = newBackend();
    backend.always = Code.Unavailable;
    const { port } = await serve(backend);
    const p = policy({ retry: { maxAttempts: 3, initialBackoffMs: 30_000, maxBackoffMs: 30_000, backoffMultiplier: 2, retryableCodes: ["UNAVAILABLE"] } });
    const client = createClient(IdempotentAgentService, connect(port, p).transport);

    // THEN the call ends with the deadline, after one attempt
    const err = await failure(client.getAgent({ name: "agents/a" }, { timeoutMs: 200 }));
    expect(err.code).toBe(Code.DeadlineExceeded);
    expect(backend.calls.getAgent).toBe(1);
  });

  it("never outlives the caller's deadline in the bulkhead's queue either", async () => {
    // GIVEN a bulkhead of one call and one waiting, its slot held by a long call
    const backend = newBackend();
    let release!: () => void;
    backend.hold = new Promise((r) => (release = r));
    const { port } = await serve(backend);
    const { resilience, transport } = connect(port, policy({ bulkhead: { maxConcurrent: 1, maxQueued: 1 } }));
    const client = createClient(AgentService, transport);
    const long = client.runAgent({ name: "agents/a", input: "long" });
    while (backend.holding < 1) await sleep(5);

    // WHEN a call with a 200 ms deadline waits for the slot
    const err = await failure(client.runAgent({ name: "agents/a", input: "queued" }, { timeoutMs: 200 }));

    // THEN it ends with its deadline and never reaches the upstream, and the queue is free again
    expect(err.code).toBe(Code.DeadlineExceeded);
    release();
    await long;
    await sleep(0);
    expect(resilience.snapshot().queued).toBe(0);
    expect((await client.runAgent({ name: "agents/a", input: "after" })).summary).toBe("after");
    expect(backend.calls.runAgent).toBe(2);
  });
});

describe("the retry budget", () => {
  it("allows the floor, then a ratio of the calls in its window, and forgets what left the window", () => {
    let now = 0;
    const budget = createRetryBudget({ ratio: 0.5, minRetries: 1, windowMs: 1_000 }, () => now);
    expect(budget.tryRetry()).toBe(true);
    expect(budget.tryRetry()).toBe(false);
    for (let i = 0; i < 4; i++) budget.recordCall();
    expect([budget.tryRetry(), budget.tryRetry(), budget.tryRetry()]).toEqual([true, true, false]);
    now = 1_000;
    expect(budget.tryRetry()).toBe(true);
    expect(budget.tryRetry()).toBe(false);
  });
});

describe("upstream transports", () => {
  it("share one breaker per upstream in a process, with its state in resilienceState()", async () => {
    // GIVEN two transports to v1-agents, as two clients of one process get them
    const backend = newBackend();
    backend.always = Code.Unavailable;
    const { port } = await serve(backend);
    const env = { V1_AGENTS_ADDR: `127.0.0.1:${port}` };
    const [ta, tb] = [upstreamTransport("v1-agents", { env }), upstreamTransport("v1-agents", { env })];
    transports.push(ta, tb);
    const a = createClient(AgentService, ta);
    const b = createClient(AgentService, tb);

    // WHEN the first one's calls open the circuit (the topology's numbers: ten calls in the window at least)
    for (let i = 0; i < 10; i++) await failure(a.runAgent({ name: "agents/a", input: "x" }));

    // THEN the second is refused too, and the state says so
    expect((await failure(b.runAgent({ name: "agents/a", input: "x" }))).rawMessage).toMatch(/^v1-agents: circuit open after 10 failures in the last 30s/);
    expect(backend.calls.runAgent).toBe(10);
    expect(resilienceState().filter((s) => s.address === env.V1_AGENTS_ADDR)).toEqual([
      expect.objectContaining({ upstream: "v1-agents", circuit: "open", recentFailures: 10 }),
    ]);
  });
});

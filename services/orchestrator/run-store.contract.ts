import { create } from "@bufbuild/protobuf";
import { timestampFromDate, timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { uuidv7 } from "uuidv7";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentSystem, UsageSchema } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import { FeedbackSchema, Run_State, RunSchema, RunStepSchema, Target, type Run } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import type { RunStore } from "./run-store.js";

/** newRun makes a run as the orchestrator accepts one. */
function newRun(input = "Write three ad variants"): Run {
  const now = timestampNow();
  return create(RunSchema, {
    name: `runs/${uuidv7()}`,
    input,
    state: Run_State.PENDING,
    route: { target: Target.V2, steps: [{ agent: "agents/copywriter", system: AgentSystem.V2 }], complexity: 0.2, confidence: 0.8, router: "test" },
    usage: { inputTokens: 0n, outputTokens: 0n },
    createTime: now,
    updateTime: now,
  });
}

const errorOf = async (p: Promise<unknown>): Promise<ConnectError> => ConnectError.from(await p.then(() => undefined, (e: unknown) => e));

/**
 * runStoreContract is the behaviour every RunStore must have; the same suite
 * runs against the in-process store, the embedded PGlite and a real
 * PostgreSQL, so the implementations cannot drift.
 */
export function runStoreContract(name: string, open: () => Promise<{ store: RunStore; cleanup(): Promise<void> } | undefined>): void {
  describe(`RunStore contract: ${name}`, () => {
    let store: RunStore | undefined;
    let cleanup: (() => Promise<void>) | undefined;
    beforeAll(async () => {
      const opened = await open();
      store = opened?.store;
      cleanup = opened?.cleanup;
    });
    afterAll(async () => {
      await cleanup?.();
    });
    const s = (): RunStore => {
      if (!store) throw new Error("store not open");
      return store;
    };
    // Suites whose server is missing are skipped (loudly) by their opener.
    const test = (title: string, fn: () => Promise<void>) => it(title, async (ctx) => (store ? fn() : ctx.skip()));

    test("stores a run and its steps, and returns them as saved", async () => {
      const run = newRun();
      expect((await s().create("acme", run)).created).toBe(true);
      run.state = Run_State.SUCCEEDED;
      run.steps.push(
        create(RunStepSchema, {
          agent: "agents/copywriter",
          system: AgentSystem.V2,
          state: Run_State.SUCCEEDED,
          result: { agent: "agents/copywriter", output: { headline: "Spring into savings" }, provider: "offline", usage: { inputTokens: 12n } },
          startTime: timestampNow(),
          endTime: timestampNow(),
        }),
      );
      run.output = { copywriter: { headline: "Spring into savings" } };
      run.summary = "done";
      run.usage = create(UsageSchema, { inputTokens: 12n, outputTokens: 3n, calls: 1, costUsd: 0 });
      await s().save("acme", run);
      const got = await s().get("acme", run.name);
      expect(got?.state).toBe(Run_State.SUCCEEDED);
      expect(got?.steps[0].result?.output).toEqual({ headline: "Spring into savings" });
      expect(got?.steps[0].result?.usage?.inputTokens).toBe(12n);
      expect(got?.output).toEqual({ copywriter: { headline: "Spring into savings" } });
      expect(got?.route?.target).toBe(Target.V2);
      expect(got?.usage?.outputTokens).toBe(3n);
    });

    test("isolates organizations: another organization's run is not found, nor listed, nor its context", async () => {
      const run = newRun("secret plan");
      await s().create("org-a", run);
      await s().putContext("org-a", run.name, "icp_builder", { icp: "secret" });
      expect(await s().get("org-b", run.name)).toBeUndefined();
      expect((await s().list("org-b", 100, "")).runs.map((r) => r.name)).not.toContain(run.name);
      expect(await s().getContext("org-b", run.name)).toEqual({});
      expect(await s().getContext("org-a", run.name)).toEqual({ icp_builder: { icp: "secret" } });
      expect((await s().get("org-a", run.name))?.input).toBe("secret plan");
      // Guessing: a well-formed name that does not exist is just as unknown.
      expect(await s().get("org-b", `runs/${uuidv7()}`)).toBeUndefined();
    });

    test("keeps a named context across runs, per organization, with the run that wrote each entry last", async () => {
      const org = `ctx-${uuidv7().slice(-8)}`;
      expect(await s().getNamedContext(org, "launch")).toEqual({ values: {} });
      const first = newRun();
      first.contextId = "launch";
      await s().create(org, first);
      await s().putNamedContext(org, "launch", "icp_builder", { segment: "clinics" }, first.name);
      await s().putNamedContext(org, "launch", "copywriter", { headline: "v1" }, first.name);
      await s().putNamedContext(org, "launch", "copywriter", { headline: "v2" }, `runs/${uuidv7()}`);
      const got = await s().getNamedContext(org, "launch");
      expect(got.values).toEqual({ icp_builder: { segment: "clinics" }, copywriter: { headline: "v2" } });
      expect(got.updateTime).toBeInstanceOf(Date);
      expect((await s().get(org, first.name))?.contextId).toBe("launch");
      // Another organization's context of the same name is its own, and empty.
      expect(await s().getNamedContext(`${org}-other`, "launch")).toEqual({ values: {} });
    });

    test("an idempotency key returns the first run for the same request and refuses a different one", async () => {
      const first = newRun();
      const a = await s().create("acme", first, { key: "key-1", hash: "h1" });
      expect(a.created).toBe(true);
      const retry = await s().create("acme", newRun(), { key: "key-1", hash: "h1" });
      expect(retry.created).toBe(false);
      expect(retry.run.name).toBe(first.name);
      const other = await errorOf(s().create("acme", newRun(), { key: "key-1", hash: "h2" }));
      expect(other.code).toBe(Code.AlreadyExists);
      // Keys are per organization.
      expect((await s().create("globex", newRun(), { key: "key-1", hash: "h2" })).created).toBe(true);
    });

    test("a create run again after it was stored (its answer lost on a dropped connection) is the same run, still created", async () => {
      const run = newRun();
      expect((await s().create("acme", run)).created).toBe(true);
      expect((await s().create("acme", run)).created).toBe(true);
      const keyed = newRun();
      expect((await s().create("acme", keyed, { key: "key-again", hash: "h" })).created).toBe(true);
      expect(await s().create("acme", keyed, { key: "key-again", hash: "h" })).toMatchObject({ created: true, run: { name: keyed.name } });
      const names = (await s().list("acme", 1000, "")).runs.map((r) => r.name);
      expect(names.filter((n) => n === run.name || n === keyed.name)).toHaveLength(2);
    });

    test("concurrent creates with one key make one run", async () => {
      const results = await Promise.all([0, 1, 2, 3].map(() => s().create("acme", newRun(), { key: "key-race", hash: "same" })));
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(results.map((r) => r.run.name)).size).toBe(1);
    });

    test("lists newest first, page by page, with opaque tokens", async () => {
      const org = `pages-${uuidv7().slice(-8)}`;
      const names: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = newRun(`run ${i}`);
        names.push(r.name);
        await s().create(org, r);
      }
      const p1 = await s().list(org, 2, "");
      const p2 = await s().list(org, 2, p1.nextPageToken);
      const p3 = await s().list(org, 2, p2.nextPageToken);
      expect([...p1.runs, ...p2.runs, ...p3.runs].map((r) => r.name)).toEqual([...names].reverse());
      expect(p3.nextPageToken).toBe("");
      expect((await errorOf(s().list(org, 2, "garbage"))).code).toBe(Code.InvalidArgument);
    });

    test("marks runs a crash interrupted as FAILED, and leaves finished and recent ones alone", async () => {
      const org = `crash-${uuidv7().slice(-8)}`;
      const stuck = newRun();
      stuck.state = Run_State.RUNNING;
      stuck.updateTime = timestampFromDate(new Date(Date.now() - 60_000));
      await s().create(org, stuck);
      const recent = newRun();
      recent.state = Run_State.RUNNING;
      await s().create(org, recent);
      const done = newRun();
      done.state = Run_State.SUCCEEDED;
      done.updateTime = timestampFromDate(new Date(Date.now() - 60_000));
      await s().create(org, done);
      expect(await s().failInterrupted(new Date(Date.now() - 30_000), "interrupted")).toBeGreaterThanOrEqual(1);
      expect((await s().get(org, stuck.name))?.state).toBe(Run_State.FAILED);
      expect((await s().get(org, stuck.name))?.error).toBe("interrupted");
      expect((await s().get(org, recent.name))?.state).toBe(Run_State.RUNNING);
      expect((await s().get(org, done.name))?.state).toBe(Run_State.SUCCEEDED);
    });

    test("keeps feedback on a run", async () => {
      const run = newRun();
      await s().create("acme", run);
      await expect(
        s().addFeedback("acme", create(FeedbackSchema, { name: `${run.name}/feedback/${uuidv7()}`, rating: 4, comment: "good", createTime: timestampNow() })),
      ).resolves.toBeUndefined();
    });

    test("lists the feedback that names a run's correct target, oldest first, with the run's input", async () => {
      const org = `route-${uuidv7().slice(-8)}`;
      const wrong = newRun("Rank our stores by margin");
      const other = newRun("Draft a poster");
      await s().create(org, wrong);
      await s().create(org, other);
      const feedback = (run: Run, correctTarget: Target, at: number) =>
        create(FeedbackSchema, { name: `${run.name}/feedback/${uuidv7()}`, rating: 2, correctTarget, createTime: timestampFromDate(new Date(at)) });
      const t = Date.now();
      await s().addFeedback(org, feedback(wrong, Target.V1, t));
      await s().addFeedback(org, feedback(other, Target.UNSPECIFIED, t + 1));
      await s().addFeedback(org, feedback(other, Target.V2, t + 2));
      const mine = (await s().listRouteFeedback()).filter((f) => f.organization === org);
      expect(mine).toEqual([
        { organization: org, input: "Rank our stores by margin", target: Target.V1 },
        { organization: org, input: "Draft a poster", target: Target.V2 },
      ]);
    });
  });
}

import { create, fromJson, toJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { UniqueConstraintViolationException } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import { UsageSchema } from "../../../gen/raptorflow/agent/v1/agent_pb.js";
import { RouteDecisionSchema, Run_State, RunSchema, RunStepSchema, Target, type Run } from "../../../gen/raptorflow/v3/orchestrator_pb.js";
import { retryOnDroppedConnection, type Database } from "../../../platform/db/database.js";
import { decodePageToken, encodePageToken } from "../../../platform/pagination.js";
import { keyReused } from "../../../mesh/call-context.js";
import { idOf, type RunStore } from "../run-store.js";
import { ContextEntity, FeedbackEntity, IdempotencyEntity, NamedContextEntity, RunEntity, StepEntity, type RunRow } from "./schema.js";

const active = [Run_State[Run_State.PENDING], Run_State[Run_State.RUNNING]].map((s) => `STATE_${s}`);

/**
 * createPgRunStore keeps runs in the orchestrator's PostgreSQL schema through
 * MikroORM (a real server, or the embedded PGlite). Every query filters by
 * organization; the route, usage and step results keep their protobuf JSON.
 * An operation whose connection PostgreSQL dropped runs once more.
 */
export function createPgRunStore(db: Database): RunStore {
  const em = (): EntityManager => db.orm.em.fork() as EntityManager;

  const rowOf = (org: string, run: Run): RunRow => ({
    id: idOf(run.name),
    organization: org,
    state: stateName(run.state),
    input: run.input,
    route: run.route ? toJson(RouteDecisionSchema, run.route) : null,
    output: run.output ?? null,
    summary: run.summary,
    error: run.error,
    usage: run.usage ? toJson(UsageSchema, run.usage) : null,
    requestId: run.requestId || null,
    contextId: run.contextId || null,
    createTime: run.createTime ? timestampDate(run.createTime) : new Date(),
    updateTime: run.updateTime ? timestampDate(run.updateTime) : new Date(),
  });

  const saveSteps = async (m: EntityManager, org: string, run: Run): Promise<void> => {
    for (const [idx, step] of run.steps.entries()) {
      await m.upsert(StepEntity, {
        runId: idOf(run.name),
        idx,
        organization: org,
        agent: step.agent,
        state: stateName(step.state),
        data: toJson(RunStepSchema, step),
      });
    }
  };

  const load = async (m: EntityManager, org: string, id: string): Promise<Run | undefined> => {
    const row = await m.findOne(RunEntity, { id, organization: org });
    if (!row) return undefined;
    const steps = await m.find(StepEntity, { runId: id, organization: org }, { orderBy: { idx: "asc" } });
    return runOf(row, steps.map((s) => s.data as JsonValue));
  };

  return retryOnDroppedConnection<RunStore>({
    async create(org, run, idem) {
      const m = em();
      try {
        return await m.transactional(async (tx) => {
          if (idem) {
            const existing = await tx.findOne(IdempotencyEntity, { organization: org, key: idem.key });
            if (existing) {
              if (existing.requestHash !== idem.hash) throw keyReused(idem.key);
              return { run: (await load(tx as EntityManager, org, existing.runId))!, created: false };
            }
          }
          // The run first, then the key that points at it (the foreign key wants that order).
          await tx.insert(RunEntity, rowOf(org, run));
          if (idem) {
            await tx.insert(IdempotencyEntity, { organization: org, key: idem.key, requestHash: idem.hash, runId: idOf(run.name), createTime: new Date() });
          }
          await saveSteps(tx as EntityManager, org, run);
          return { run, created: true };
        });
      } catch (e) {
        // Two creates with one key at once: the loser reads what the winner stored.
        if (e instanceof UniqueConstraintViolationException && idem) {
          const existing = await em().findOne(IdempotencyEntity, { organization: org, key: idem.key });
          if (existing && existing.requestHash === idem.hash) return { run: (await load(em(), org, existing.runId))!, created: false };
          throw keyReused(idem.key);
        }
        throw e;
      }
    },
    async save(org, run) {
      const m = em();
      await m.transactional(async (tx) => {
        const { id, organization, ...fields } = rowOf(org, run);
        await tx.nativeUpdate(RunEntity, { id, organization }, fields);
        await saveSteps(tx as EntityManager, org, run);
      });
    },
    async putContext(org, run, key, value) {
      await em().upsert(ContextEntity, { runId: idOf(run), key, organization: org, value, createTime: new Date() });
    },
    async getContext(org, run) {
      const rows = await em().find(ContextEntity, { runId: idOf(run), organization: org });
      return Object.fromEntries(rows.map((r) => [r.key, r.value as JsonValue])) as JsonObject;
    },
    async putNamedContext(org, id, key, value, run) {
      await em().upsert(NamedContextEntity, { organization: org, contextId: id, key, value, run, updateTime: new Date() });
    },
    async getNamedContext(org, id) {
      const rows = await em().find(NamedContextEntity, { organization: org, contextId: id }, { orderBy: { key: "asc" } });
      if (rows.length === 0) return { values: {} };
      const updateTime = new Date(Math.max(...rows.map((r) => new Date(r.updateTime).getTime())));
      return { values: Object.fromEntries(rows.map((r) => [r.key, r.value as JsonValue])) as JsonObject, updateTime };
    },
    async get(org, name) {
      if (!/^runs\/[0-9a-f-]{36}$/.test(name)) return undefined;
      return load(em(), org, idOf(name));
    },
    async list(org, pageSize, pageToken) {
      const after = decodePageToken(pageToken);
      const m = em();
      const rows = await m.find(
        RunEntity,
        after === undefined ? { organization: org } : { organization: org, id: { $lt: after } },
        { orderBy: { id: "desc" }, limit: pageSize + 1 },
      );
      const page = rows.slice(0, pageSize);
      const runs: Run[] = [];
      for (const r of page) runs.push((await load(m, org, r.id))!);
      return { runs, nextPageToken: rows.length > pageSize ? encodePageToken(page[page.length - 1].id) : "" };
    },
    async addFeedback(org, f) {
      const [, runId, , id] = f.name.split("/");
      await em().insert(FeedbackEntity, {
        id,
        runId,
        organization: org,
        rating: f.rating,
        comment: f.comment,
        correctTarget: f.correctTarget === Target.UNSPECIFIED ? null : `TARGET_${Target[f.correctTarget]}`,
        createTime: f.createTime ? timestampDate(f.createTime) : new Date(),
      });
    },
    async listRouteFeedback() {
      const m = em();
      const rows = await m.find(FeedbackEntity, { correctTarget: { $ne: null } }, { orderBy: { createTime: "asc", id: "asc" } });
      const runs = rows.length ? await m.find(RunEntity, { id: { $in: [...new Set(rows.map((r) => r.runId))] } }, { fields: ["id", "organization", "input"] }) : [];
      const byId = new Map(runs.map((r) => [r.id, r]));
      return rows.flatMap((f) => {
        const run = byId.get(f.runId);
        const target = Target[(f.correctTarget ?? "").slice("TARGET_".length) as keyof typeof Target];
        // A run belongs to the feedback's organization; anything else is ignored rather than learned across organizations.
        return run && run.organization === f.organization && target !== undefined ? [{ organization: f.organization, input: run.input, target }] : [];
      });
    },
    async failInterrupted(before, reason) {
      return em().nativeUpdate(
        RunEntity,
        { state: { $in: active }, updateTime: { $lt: before } },
        { state: "STATE_FAILED", error: reason, updateTime: new Date() },
      );
    },
    close: () => db.close(),
  });
}

function stateName(state: Run_State): string {
  return `STATE_${Run_State[state]}`;
}

/** runOf rebuilds the Run message from its row and its steps' JSON. */
function runOf(row: RunRow, steps: JsonValue[]): Run {
  return create(RunSchema, {
    name: `runs/${row.id}`,
    input: row.input,
    route: row.route ? fromJson(RouteDecisionSchema, row.route as JsonValue) : undefined,
    state: Run_State[row.state.slice("STATE_".length) as keyof typeof Run_State],
    steps: steps.map((s) => fromJson(RunStepSchema, s)),
    output: (row.output ?? undefined) as JsonObject | undefined,
    summary: row.summary,
    usage: row.usage ? fromJson(UsageSchema, row.usage as JsonValue) : undefined,
    error: row.error,
    createTime: timestampFromDate(new Date(row.createTime)),
    updateTime: timestampFromDate(new Date(row.updateTime)),
    requestId: row.requestId ?? "",
    contextId: row.contextId ?? "",
  });
}

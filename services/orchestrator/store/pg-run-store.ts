import { create, fromJson, toJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { UniqueConstraintViolationException } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import { sql, type Kysely } from "kysely";
import { UsageSchema } from "../../../gen/raptorflow/agent/v1/agent_pb.js";
import { RouteDecisionSchema, Run_State, RunSchema, RunStepSchema, Target, type Run } from "../../../gen/raptorflow/v3/orchestrator_pb.js";
import { retryOnDroppedConnection, type Database } from "../../../platform/db/database.js";
import { decodePageToken, encodePageToken } from "../../../platform/pagination.js";
import { keyReused } from "../../../mesh/call-context.js";
import { idOf, type RunStore } from "../run-store.js";
import { ContextEntity, FeedbackEntity, IdempotencyEntity, NamedContextEntity, RunEntity, schemaName, StepEntity, type RunRow } from "./schema.js";

const active = [Run_State[Run_State.PENDING], Run_State[Run_State.RUNNING]].map((s) => `STATE_${s}`);

/**
 * createPgRunStore keeps runs in the orchestrator's PostgreSQL schema through
 * MikroORM (a real server, or the embedded PGlite). Every query filters by
 * organization; the route, usage and step results keep their protobuf JSON.
 * An operation whose connection PostgreSQL dropped runs once more.
 *
 * The writes every run makes (create, save) are one SQL statement each,
 * through MikroORM's Kysely client with bound parameters: a data-modifying
 * CTE writes the run row and all its steps atomically, where the entity
 * manager took a transaction of four statements and most of the
 * orchestrator's CPU per run (docs/performance.md, "Mesh under load").
 */
export function createPgRunStore(db: Database): RunStore {
  const em = (): EntityManager => db.orm.em.fork() as EntityManager;
  const kysely = (): Kysely<unknown> => (db.orm.em as EntityManager).getConnection().getClient();
  const runs = sql.table(`${schemaName}.runs`);
  const steps = sql.table(`${schemaName}.run_steps`);
  const idempotency = sql.table(`${schemaName}.idempotency_keys`);

  /**
   * withSteps is the statement that ends a write: it upserts every step of
   * the run, read from one JSON array, for the run id the CTE `r` returns
   * (none when `r` wrote nothing, so a missing run gets no orphan steps).
   */
  const withSteps = (org: string, run: Run) => {
    const rows = run.steps.map((step, idx) => ({ idx, agent: step.agent, state: stateName(step.state), data: toJson(RunStepSchema, step) }));
    return sql`insert into ${steps} ("run_id", "idx", "organization", "agent", "state", "data")
      select r.id, s.idx, ${org}, s.agent, s.state, s.data
      from r, jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as s("idx" integer, "agent" text, "state" text, "data" jsonb)
      on conflict ("run_id", "idx") do update set "agent" = excluded."agent", "state" = excluded."state", "data" = excluded."data"`;
  };
  const json = (v: unknown) => (v === null ? null : JSON.stringify(v));

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

  const load = async (m: EntityManager, org: string, id: string): Promise<Run | undefined> => {
    const row = await m.findOne(RunEntity, { id, organization: org });
    if (!row) return undefined;
    const steps = await m.find(StepEntity, { runId: id, organization: org }, { orderBy: { idx: "asc" } });
    return runOf(row, steps.map((s) => s.data as JsonValue));
  };

  return retryOnDroppedConnection<RunStore>({
    async create(org, run, idem) {
      const row = rowOf(org, run);
      try {
        // The run, the key that points at it (the foreign key wants that order) and the steps, in one statement:
        // a key already taken fails the whole statement, and the run it points at is read instead.
        const key = idem
          ? sql`, k as (insert into ${idempotency} ("organization", "key", "request_hash", "run_id", "create_time")
              select ${org}, ${idem.key}, ${idem.hash}, r.id, now() from r)`
          : sql``;
        await sql`with r as (
            insert into ${runs} ("id", "organization", "state", "input", "route", "output", "summary", "error", "usage", "request_id", "context_id", "create_time", "update_time")
            values (${row.id}, ${org}, ${row.state}, ${row.input}, ${json(row.route)}::jsonb, ${json(row.output)}::jsonb, ${row.summary}, ${row.error},
              ${json(row.usage)}::jsonb, ${row.requestId}, ${row.contextId}, ${row.createTime}, ${row.updateTime})
            returning "id")${key}
          ${withSteps(org, run)}`.execute(kysely());
        return { run, created: true };
      } catch (e) {
        if (!isUniqueViolation(e)) throw e;
        // This very run is stored: the statement ran again after its commit's answer was lost (retryOnDroppedConnection).
        if ((await em().count(RunEntity, { id: row.id, organization: org })) > 0) return { run, created: true };
        // Two creates with one key (a client's retry, or both at once): the loser reads what the winner stored.
        const existing = idem && (await em().findOne(IdempotencyEntity, { organization: org, key: idem.key }));
        if (existing && existing.requestHash === idem!.hash) return { run: (await load(em(), org, existing.runId))!, created: false };
        if (existing) throw keyReused(idem!.key);
        throw e;
      }
    },
    async save(org, run) {
      const row = rowOf(org, run);
      await sql`with r as (
          update ${runs} set "state" = ${row.state}, "input" = ${row.input}, "route" = ${json(row.route)}::jsonb, "output" = ${json(row.output)}::jsonb,
            "summary" = ${row.summary}, "error" = ${row.error}, "usage" = ${json(row.usage)}::jsonb, "request_id" = ${row.requestId},
            "context_id" = ${row.contextId}, "create_time" = ${row.createTime}, "update_time" = ${row.updateTime}
          where "id" = ${row.id} and "organization" = ${org}
          returning "id")
        ${withSteps(org, run)}`.execute(kysely());
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

/** isUniqueViolation tells PostgreSQL's unique_violation (23505), raw or as MikroORM wraps it. */
function isUniqueViolation(e: unknown): boolean {
  return e instanceof UniqueConstraintViolationException || (e as { code?: unknown } | null)?.code === "23505";
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

import { EntitySchema } from "@mikro-orm/core";
import { Migration } from "@mikro-orm/migrations";
import { memoryTableMigration } from "../../../platform/memory/pg-vector-store.js";

/** RunRow is a run in the orchestrator's schema; route, output and usage keep their protobuf JSON form. */
export interface RunRow {
  id: string;
  organization: string;
  state: string;
  input: string;
  route: unknown;
  output: unknown;
  summary: string;
  error: string;
  usage: unknown;
  requestId: string | null;
  /** contextId names the shared context kept across runs that the run started from, or null. */
  contextId: string | null;
  createTime: Date;
  updateTime: Date;
}

/** StepRow is one agent call of a run. */
export interface StepRow {
  runId: string;
  idx: number;
  organization: string;
  agent: string;
  state: string;
  data: unknown;
}

/** ContextRow is one entry of a run's shared context (an agent's output, keyed by agent id). */
export interface ContextRow {
  runId: string;
  key: string;
  organization: string;
  value: unknown;
  createTime: Date;
}

/** NamedContextRow is one entry of a shared context kept across runs (`contexts/{contextId}`). */
export interface NamedContextRow {
  organization: string;
  contextId: string;
  key: string;
  value: unknown;
  /** run is the run whose step wrote the entry last. */
  run: string;
  updateTime: Date;
}

/** FeedbackRow is a user's rating of a run. */
export interface FeedbackRow {
  id: string;
  runId: string;
  organization: string;
  rating: number;
  comment: string;
  /** correctTarget is the target the feedback says the run should have taken (`TARGET_V1` …), or null. */
  correctTarget: string | null;
  createTime: Date;
}

/** IdempotencyRow remembers which run a client's idempotency key created, and for which request. */
export interface IdempotencyRow {
  organization: string;
  key: string;
  requestHash: string;
  runId: string;
  createTime: Date;
}

/** schemaName is the orchestrator's own PostgreSQL schema. */
export const schemaName = "orchestrator";

export const RunEntity = new EntitySchema<RunRow>({
  name: "RunRow",
  tableName: "runs",
  properties: {
    id: { type: "uuid", primary: true },
    organization: { type: "string" },
    state: { type: "string" },
    input: { type: "text" },
    route: { type: "json", nullable: true },
    output: { type: "json", nullable: true },
    summary: { type: "text" },
    error: { type: "text" },
    usage: { type: "json", nullable: true },
    requestId: { type: "string", nullable: true, fieldName: "request_id" },
    contextId: { type: "string", nullable: true, fieldName: "context_id" },
    createTime: { type: "datetime", fieldName: "create_time" },
    updateTime: { type: "datetime", fieldName: "update_time" },
  },
});

export const StepEntity = new EntitySchema<StepRow>({
  name: "StepRow",
  tableName: "run_steps",
  properties: {
    runId: { type: "uuid", primary: true, fieldName: "run_id" },
    idx: { type: "integer", primary: true },
    organization: { type: "string" },
    agent: { type: "string" },
    state: { type: "string" },
    data: { type: "json" },
  },
});

export const ContextEntity = new EntitySchema<ContextRow>({
  name: "ContextRow",
  tableName: "shared_contexts",
  properties: {
    runId: { type: "uuid", primary: true, fieldName: "run_id" },
    key: { type: "string", primary: true },
    organization: { type: "string" },
    value: { type: "json" },
    createTime: { type: "datetime", fieldName: "create_time" },
  },
});

export const NamedContextEntity = new EntitySchema<NamedContextRow>({
  name: "NamedContextRow",
  tableName: "named_contexts",
  properties: {
    organization: { type: "string", primary: true },
    contextId: { type: "string", primary: true, fieldName: "context_id" },
    key: { type: "string", primary: true },
    value: { type: "json" },
    run: { type: "string" },
    updateTime: { type: "datetime", fieldName: "update_time" },
  },
});

export const FeedbackEntity = new EntitySchema<FeedbackRow>({
  name: "FeedbackRow",
  tableName: "feedback",
  properties: {
    id: { type: "uuid", primary: true },
    runId: { type: "uuid", fieldName: "run_id" },
    organization: { type: "string" },
    rating: { type: "integer" },
    comment: { type: "text" },
    correctTarget: { type: "string", nullable: true, fieldName: "correct_target" },
    createTime: { type: "datetime", fieldName: "create_time" },
  },
});

export const IdempotencyEntity = new EntitySchema<IdempotencyRow>({
  name: "IdempotencyRow",
  tableName: "idempotency_keys",
  properties: {
    organization: { type: "string", primary: true },
    key: { type: "string", primary: true },
    requestHash: { type: "string", fieldName: "request_hash" },
    runId: { type: "uuid", fieldName: "run_id" },
    createTime: { type: "datetime", fieldName: "create_time" },
  },
});

/** entities are every table the orchestrator owns. */
export const entities = [RunEntity, StepEntity, ContextEntity, NamedContextEntity, FeedbackEntity, IdempotencyEntity];

/**
 * Migration20261125000000 creates the orchestrator's tables. Every table
 * carries the organization, and every query filters by it; there are no
 * foreign keys to other services' schemas.
 */
export class Migration20261125000000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "orchestrator"."runs" (
      "id" uuid primary key,
      "organization" text not null,
      "state" text not null,
      "input" text not null,
      "route" jsonb null,
      "output" jsonb null,
      "summary" text not null default '',
      "error" text not null default '',
      "usage" jsonb null,
      "request_id" text null,
      "create_time" timestamptz not null,
      "update_time" timestamptz not null)`);
    this.addSql(`create index "runs_org_id" on "orchestrator"."runs" ("organization", "id" desc)`);
    this.addSql(`create index "runs_state" on "orchestrator"."runs" ("state") where "state" in ('STATE_PENDING', 'STATE_RUNNING')`);
    this.addSql(`create table "orchestrator"."run_steps" (
      "run_id" uuid not null references "orchestrator"."runs" ("id") on delete cascade,
      "idx" integer not null,
      "organization" text not null,
      "agent" text not null,
      "state" text not null,
      "data" jsonb not null,
      primary key ("run_id", "idx"))`);
    this.addSql(`create table "orchestrator"."shared_contexts" (
      "run_id" uuid not null references "orchestrator"."runs" ("id") on delete cascade,
      "key" text not null,
      "organization" text not null,
      "value" jsonb not null,
      "create_time" timestamptz not null,
      primary key ("run_id", "key"))`);
    this.addSql(`create table "orchestrator"."feedback" (
      "id" uuid primary key,
      "run_id" uuid not null references "orchestrator"."runs" ("id") on delete cascade,
      "organization" text not null,
      "rating" integer not null check ("rating" between 1 and 5),
      "comment" text not null default '',
      "create_time" timestamptz not null)`);
    this.addSql(`create table "orchestrator"."idempotency_keys" (
      "organization" text not null,
      "key" text not null,
      "request_hash" text not null,
      "run_id" uuid not null references "orchestrator"."runs" ("id") on delete cascade,
      "create_time" timestamptz not null,
      primary key ("organization", "key"))`);
  }

  override async down(): Promise<void> {
    for (const t of ["idempotency_keys", "feedback", "shared_contexts", "run_steps", "runs"]) {
      this.addSql(`drop table if exists "orchestrator"."${t}"`);
    }
  }
}

/**
 * Migration20261202020000 lets feedback name the target a run should have
 * taken, which the router learns from; older feedback has none.
 */
export class Migration20261202020000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "orchestrator"."feedback" add column "correct_target" text null`);
    this.addSql(`create index "feedback_correct_target" on "orchestrator"."feedback" ("create_time") where "correct_target" is not null`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop index if exists "orchestrator"."feedback_correct_target"`);
    this.addSql(`alter table "orchestrator"."feedback" drop column if exists "correct_target"`);
  }
}

/**
 * Migration20261202120000 adds shared contexts kept across runs: a run may
 * name one (`context_id`), start from its entries and write its steps'
 * outputs into it. They belong to an organization, not to a run, so they
 * outlive the runs that wrote them.
 */
export class Migration20261202120000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "orchestrator"."runs" add column "context_id" text null`);
    this.addSql(`create table "orchestrator"."named_contexts" (
      "organization" text not null,
      "context_id" text not null,
      "key" text not null,
      "value" jsonb not null,
      "run" text not null,
      "update_time" timestamptz not null,
      primary key ("organization", "context_id", "key"))`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "orchestrator"."named_contexts"`);
    this.addSql(`alter table "orchestrator"."runs" drop column if exists "context_id"`);
  }
}

/** memoryDimensions is the length of the orchestrator's memory embeddings (LocalEmbeddings' default). */
export const memoryDimensions = 256;

/** migrations are the orchestrator's versioned migrations, oldest first. */
export const migrations = [
  { name: "Migration20261125000000_runs", class: Migration20261125000000 },
  // The orchestrator's vector memory: similar past runs and what else it learns.
  { name: "Migration20261125020000_memories", class: memoryTableMigration(schemaName, memoryDimensions) },
  // Feedback that names a run's correct target teaches the router.
  { name: "Migration20261202020000_feedback_target", class: Migration20261202020000 },
  // Shared contexts that runs name and reuse.
  { name: "Migration20261202120000_named_contexts", class: Migration20261202120000 },
];

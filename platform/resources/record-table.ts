import { EntitySchema } from "@mikro-orm/core";
import { Migration } from "@mikro-orm/migrations";

/** RecordRow is one business record (an ICP, a campaign, an asset …) in its protobuf JSON form. */
export interface RecordRow {
  collection: string;
  id: string;
  organization: string;
  data: unknown;
  createTime: Date;
  updateTime: Date;
}

/**
 * RecordEntity maps a service's `records` table. The table lives in the
 * schema of the service that opens the database, so V1 and V2 each keep
 * their own records with the same mapping.
 */
export const RecordEntity = new EntitySchema<RecordRow>({
  name: "RecordRow",
  tableName: "records",
  properties: {
    collection: { type: "string", primary: true },
    id: { type: "uuid", primary: true },
    organization: { type: "string" },
    data: { type: "json" },
    createTime: { type: "datetime", fieldName: "create_time" },
    updateTime: { type: "datetime", fieldName: "update_time" },
  },
});

/** RecordKeyRow remembers which record a client's idempotency key created, and for which request. */
export interface RecordKeyRow {
  organization: string;
  collection: string;
  key: string;
  requestHash: string;
  recordId: string;
  createTime: Date;
}

/** RecordKeyEntity maps a service's `record_keys` table (idempotency keys of creates). */
export const RecordKeyEntity = new EntitySchema<RecordKeyRow>({
  name: "RecordKeyRow",
  tableName: "record_keys",
  properties: {
    organization: { type: "string", primary: true },
    collection: { type: "string", primary: true },
    key: { type: "string", primary: true },
    requestHash: { type: "string", fieldName: "request_hash" },
    recordId: { type: "uuid", fieldName: "record_id" },
    createTime: { type: "datetime", fieldName: "create_time" },
  },
});

/** recordEntities are the tables of a service that keeps records. */
export const recordEntities = [RecordEntity, RecordKeyEntity];

/**
 * recordKeysMigration makes the migration that creates a schema's
 * record_keys table: which record an idempotency key created, per
 * organization and collection, with a digest of the request.
 */
export function recordKeysMigration(schema: string): new (...args: ConstructorParameters<typeof Migration>) => Migration {
  return class RecordKeysMigration extends Migration {
    override async up(): Promise<void> {
      this.addSql(`create table "${schema}"."record_keys" (
        "organization" text not null,
        "collection" text not null,
        "key" text not null,
        "request_hash" text not null,
        "record_id" uuid not null,
        "create_time" timestamptz not null,
        primary key ("organization", "collection", "key"))`);
    }

    override async down(): Promise<void> {
      this.addSql(`drop table if exists "${schema}"."record_keys"`);
    }
  };
}

/**
 * recordsMigration makes the migration that creates a schema's records
 * table: one row per record of any collection, the record in its protobuf
 * JSON form, scoped to its organization, listed newest first by its UUIDv7 id.
 */
export function recordsMigration(schema: string): new (...args: ConstructorParameters<typeof Migration>) => Migration {
  return class RecordsMigration extends Migration {
    override async up(): Promise<void> {
      this.addSql(`create table "${schema}"."records" (
        "collection" text not null,
        "id" uuid not null,
        "organization" text not null,
        "data" jsonb not null,
        "create_time" timestamptz not null,
        "update_time" timestamptz not null,
        primary key ("collection", "id"))`);
      this.addSql(`create index "records_org_collection_id" on "${schema}"."records" ("organization", "collection", "id" desc)`);
    }

    override async down(): Promise<void> {
      this.addSql(`drop table if exists "${schema}"."records"`);
    }
  };
}

import { EntitySchema } from "@mikro-orm/core";
import { Migration } from "@mikro-orm/migrations";

/** RecordRow is one V1 record (an ICP, a cohort, a campaign …) in its protobuf JSON form. */
export interface RecordRow {
  collection: string;
  id: string;
  organization: string;
  data: unknown;
  createTime: Date;
  updateTime: Date;
}

/** schemaName is V1's own PostgreSQL schema. */
export const schemaName = "v1";

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

/**
 * Migration20261125010000 creates V1's records table: one row per record of
 * any V1 collection, the record in its protobuf JSON form, scoped to its
 * organization.
 */
export class Migration20261125010000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "v1"."records" (
      "collection" text not null,
      "id" uuid not null,
      "organization" text not null,
      "data" jsonb not null,
      "create_time" timestamptz not null,
      "update_time" timestamptz not null,
      primary key ("collection", "id"))`);
    this.addSql(`create index "records_org_collection_id" on "v1"."records" ("organization", "collection", "id" desc)`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "v1"."records"`);
  }
}

/** migrations are V1's versioned migrations, oldest first. */
export const migrations = [{ name: "Migration20261125010000_records", class: Migration20261125010000 }];

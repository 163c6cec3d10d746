import { fromJson, toJson, type DescMessage, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Database } from "../db/database.js";
import { decodePageToken, encodePageToken } from "../pagination.js";
import type { RecordStore } from "./resource-service.js";
import { RecordEntity } from "./record-table.js";

/**
 * createPgRecordStore keeps one collection in its service's PostgreSQL schema
 * through MikroORM, every query filtered by organization.
 */
export function createPgRecordStore<S extends DescMessage>(db: Database, schema: S, collection: string): RecordStore<MessageShape<S>> {
  const em = (): EntityManager => db.orm.em.fork() as EntityManager;
  const idOf = (name: string) => name.slice(collection.length + 1);
  const valid = (name: string) => name.startsWith(`${collection}/`) && /^[0-9a-f-]{36}$/.test(idOf(name));
  const recordOf = (data: unknown) => fromJson(schema, data as JsonValue, { ignoreUnknownFields: true });
  return {
    async get(org, name) {
      if (!valid(name)) return undefined;
      const row = await em().findOne(RecordEntity, { collection, id: idOf(name), organization: org });
      return row ? recordOf(row.data) : undefined;
    },
    async put(org, record) {
      const name = (record as unknown as { name: string }).name;
      const json = toJson(schema, record) as { createTime?: string; updateTime?: string };
      await em().upsert(RecordEntity, {
        collection,
        id: idOf(name),
        organization: org,
        data: json,
        createTime: new Date(json.createTime ?? Date.now()),
        updateTime: new Date(json.updateTime ?? Date.now()),
      });
    },
    async delete(org, name) {
      if (!valid(name)) return false;
      return (await em().nativeDelete(RecordEntity, { collection, id: idOf(name), organization: org })) > 0;
    },
    async list(org, pageSize, pageToken, where = {}) {
      const after = decodePageToken(pageToken);
      // Equality on fields of the stored JSON: keys are the fields' JSON names, checked against the descriptor.
      const data = Object.fromEntries(
        Object.entries(where).map(([name, value]) => {
          const f = schema.fields.find((x) => x.name === name);
          if (!f) throw new Error(`${schema.typeName} has no field "${name}"`);
          return [f.jsonName, value];
        }),
      );
      const filter = { collection, organization: org, ...(after === undefined ? {} : { id: { $lt: after } }), ...(Object.keys(data).length ? { data } : {}) };
      const rows = await em().find(RecordEntity, filter, { orderBy: { id: "desc" }, limit: pageSize + 1 });
      const page = rows.slice(0, pageSize);
      return { records: page.map((r) => recordOf(r.data)), nextPageToken: rows.length > pageSize ? encodePageToken(page[page.length - 1].id) : "" };
    },
  };
}

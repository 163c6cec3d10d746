import { fromJson, toJson, type DescMessage, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { raw, UniqueConstraintViolationException } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import { keyReused } from "../../mesh/call-context.js";
import { retryOnDroppedConnection, type Database } from "../db/database.js";
import { decodePageToken, encodePageToken } from "../pagination.js";
import { containment, filterTerms } from "./record-filter.js";
import { collectionOf, createMemoryStore, type RecordStore } from "./resource-service.js";
import { RecordEntity, RecordKeyEntity, type RecordRow } from "./record-table.js";

/**
 * createPgRecordStore keeps one collection in its service's PostgreSQL schema
 * through MikroORM, every query filtered by organization.
 */
export function createPgRecordStore<S extends DescMessage>(db: Database, schema: S, collection: string): RecordStore<MessageShape<S>> {
  const em = (): EntityManager => db.orm.em.fork() as EntityManager;
  const idOf = (name: string) => name.slice(collection.length + 1);
  const valid = (name: string) => name.startsWith(`${collection}/`) && /^[0-9a-f-]{36}$/.test(idOf(name));
  const recordOf = (data: unknown) => fromJson(schema, data as JsonValue, { ignoreUnknownFields: true });
  const rowOf = (org: string, record: MessageShape<S>): RecordRow => {
    const json = toJson(schema, record) as unknown as { name: string; createTime?: string; updateTime?: string };
    return {
      collection,
      id: idOf(json.name),
      organization: org,
      data: json,
      createTime: new Date(json.createTime ?? Date.now()),
      updateTime: new Date(json.updateTime ?? Date.now()),
    };
  };
  /** replay returns what an idempotency key already made, or fails when the key was used for another request. */
  const replay = async (m: EntityManager, org: string, idem: { key: string; hash: string }) => {
    const existing = await m.findOne(RecordKeyEntity, { organization: org, collection, key: idem.key });
    if (!existing) return undefined;
    if (existing.requestHash !== idem.hash) throw keyReused(idem.key);
    const row = await m.findOne(RecordEntity, { collection, id: existing.recordId, organization: org });
    return row ? { record: recordOf(row.data), created: false } : undefined;
  };
  return retryOnDroppedConnection<RecordStore<MessageShape<S>>>({
    async create(org, record, idem) {
      try {
        return await em().transactional(async (tx) => {
          const first = idem && (await replay(tx as EntityManager, org, idem));
          if (first) return first;
          const row = rowOf(org, record);
          await tx.insert(RecordEntity, row);
          // The key is claimed in the same transaction: of two creates with one key, one commits.
          if (idem) await tx.insert(RecordKeyEntity, { organization: org, collection, key: idem.key, requestHash: idem.hash, recordId: row.id, createTime: new Date() });
          return { record, created: true };
        });
      } catch (e) {
        // Two creates with one key at once: the loser reads what the winner stored.
        if (e instanceof UniqueConstraintViolationException && idem) {
          const first = await replay(em(), org, idem);
          if (first) return first;
        }
        throw e;
      }
    },
    async get(org, name) {
      if (!valid(name)) return undefined;
      const row = await em().findOne(RecordEntity, { collection, id: idOf(name), organization: org });
      return row ? recordOf(row.data) : undefined;
    },
    async put(org, record) {
      await em().upsert(RecordEntity, rowOf(org, record));
    },
    async delete(org, name) {
      if (!valid(name)) return false;
      return (await em().nativeDelete(RecordEntity, { collection, id: idOf(name), organization: org })) > 0;
    },
    async list(org, pageSize, pageToken, where = {}) {
      const after = decodePageToken(pageToken);
      // One jsonb containment covers every term: equality (`{"campaign": …}`), nested fields
      // (`{"origin": {"run": …}}`) and membership of a repeated field (`{"cohorts": [...]}`).
      const terms = filterTerms(schema, where);
      const contains = terms.length ? { [raw((alias: string) => `${alias}.data @> ?::jsonb`, [JSON.stringify(containment(terms))])]: [] } : {};
      const filter = { collection, organization: org, ...(after === undefined ? {} : { id: { $lt: after } }), ...contains };
      const rows = await em().find(RecordEntity, filter, { orderBy: { id: "desc" }, limit: pageSize + 1 });
      const page = rows.slice(0, pageSize);
      return { records: page.map((r) => recordOf(r.data)), nextPageToken: rows.length > pageSize ? encodePageToken(page[page.length - 1].id) : "" };
    },
  });
}

/**
 * openRecordStore is a service's store for one resource: in its PostgreSQL
 * schema when it has a database, in the process otherwise (DATA_STORE=memory).
 * The collection is the one the resource's name pattern names.
 */
export function openRecordStore<S extends DescMessage>(db: Database | undefined, schema: S): RecordStore<MessageShape<S>> {
  return db ? createPgRecordStore(db, schema, collectionOf(schema)) : createMemoryStore(schema);
}

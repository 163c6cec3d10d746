import { clone, getOption, hasOption, isFieldSet, type DescField, type DescMessage, type DescService, type MessageShape } from "@bufbuild/protobuf";
import { timestampNow, type FieldMask } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { uuidv7 } from "uuidv7";
import { resource } from "../../gen/google/api/resource_pb.js";
import { idempotencyOf, keyReused, organizationOf, type Idempotency } from "../../mesh/call-context.js";
import { decodePageToken, encodePageToken } from "../pagination.js";

/**
 * RecordStore keeps the records of one collection, every operation scoped to
 * an organization: another organization's record is not found. PostgreSQL
 * (store/pg-record-store.ts) and the in-process store implement it.
 */
export interface RecordStore<M> {
  /**
   * create stores a new record. With an idempotency key already used for
   * the same request it returns the record that key created (`created:
   * false`); for a different request, ALREADY_EXISTS. Two creates with one
   * key at once make one record.
   */
  create(org: string, record: M, idempotency?: Idempotency): Promise<{ record: M; created: boolean }>;
  /** get returns a record by name, or undefined. */
  get(org: string, name: string): Promise<M | undefined>;
  /** put inserts or replaces. */
  put(org: string, record: M): Promise<void>;
  /** delete removes; false when absent. */
  delete(org: string, name: string): Promise<boolean>;
  /**
   * list returns a page of records, newest first; `where` keeps only records
   * whose string fields (by proto name) equal the given values.
   */
  list(org: string, pageSize: number, pageToken: string, where?: RecordFilter): Promise<{ records: M[]; nextPageToken: string }>;
}

/** RecordFilter is field equality on a record's singular string fields, by proto field name (`campaign`). */
export type RecordFilter = Readonly<Record<string, string>>;

/** createMemoryStore keeps records in a Map, copying on the way in and out so callers cannot change stored records. */
export function createMemoryStore<S extends DescMessage>(schema: S): RecordStore<MessageShape<S>> {
  const m = new Map<string, { org: string; record: MessageShape<S> }>();
  const keys = new Map<string, { hash: string; name: string }>();
  return {
    async create(org, r, idem) {
      const name = (r as unknown as { name: string }).name;
      // Checked and claimed without an await between: one create per key.
      const k = idem && `${org}\0${idem.key}`;
      const existing = k === undefined ? undefined : keys.get(k);
      if (existing && idem) {
        if (existing.hash !== idem.hash) throw keyReused(idem.key);
        const first = m.get(existing.name);
        if (first) return { record: clone(schema, first.record), created: false };
      }
      if (k !== undefined && idem) keys.set(k, { hash: idem.hash, name });
      m.set(name, { org, record: clone(schema, r) });
      return { record: clone(schema, r), created: true };
    },
    async get(org, n) {
      const v = m.get(n);
      return v && v.org === org ? clone(schema, v.record) : undefined;
    },
    async put(org, r) {
      m.set((r as unknown as { name: string }).name, { org, record: clone(schema, r) });
    },
    async delete(org, n) {
      return m.get(n)?.org === org && m.delete(n);
    },
    async list(org, pageSize, pageToken, where = {}) {
      const after = decodePageToken(pageToken);
      const matches = Object.entries(where).map(([name, value]) => {
        const f = schema.fields.find((x) => x.name === name);
        if (!f) throw new Error(`${schema.typeName} has no field "${name}"`);
        return (r: MessageShape<S>) => (r as unknown as Record<string, unknown>)[f.localName] === value;
      });
      // Names end in UUIDv7 ids: descending name order is newest first.
      const all = [...m.entries()]
        .filter(([n, v]) => v.org === org && (after === undefined || n.slice(n.indexOf("/") + 1) < after) && matches.every((ok) => ok(v.record)))
        .sort(([a], [b]) => (a < b ? 1 : -1))
        .map(([, v]) => v.record);
      const page = all.slice(0, pageSize);
      const last = page.length ? (page[page.length - 1] as unknown as { name: string }).name : "";
      return {
        records: page.map((r) => clone(schema, r)),
        nextPageToken: all.length > pageSize ? encodePageToken(last.slice(last.indexOf("/") + 1)) : "",
      };
    },
  };
}

/**
 * Dependant is a collection whose records refer to this collection's records
 * by a string field (V2 assets name their `campaign`). A Delete of a record
 * with dependants fails with FAILED_PRECONDITION unless the request sets
 * `force`, which deletes the dependants first (AIP-135).
 */
export interface Dependant {
  /** collection names the dependants in messages, for example `assets`. */
  readonly collection: string;
  /** store keeps them. */
  readonly store: RecordStore<MessageShape<DescMessage>>;
  /** field is the proto name of their reference field, for example `campaign`. */
  readonly field: string;
}

/** ResourceServiceOptions tune the standard methods of one resource service. */
export interface ResourceServiceOptions {
  /** dependants are the collections that refer to this one. */
  readonly dependants?: readonly Dependant[];
}

const serverFields = new Set(["name", "create_time", "update_time"]);

type AnyRecord = Record<string, unknown> & { name: string };

/**
 * createResourceServiceImpl implements the AIP standard methods (Create, Get,
 * List, Update with a field mask, Delete) of a resource service from its
 * descriptors: the collection comes from the resource's name pattern
 * (`icps/{icp}`), the request fields from the method's input messages. Every
 * V1 resource service is this one piece of code over its own store.
 */
export function createResourceServiceImpl<S extends DescService>(
  service: S,
  store: RecordStore<MessageShape<DescMessage>>,
  options: ResourceServiceOptions = {},
): ServiceImpl<S> {
  const impl: Record<string, (req: never, ctx: HandlerContext) => unknown> = {};
  for (const method of service.methods) {
    const verb = /^(Create|Get|List|Update|Delete)/.exec(method.name)?.[1];
    const input = method.input;
    switch (verb) {
      case "Create": {
        const field = messageField(input);
        const collection = collectionOf(field.message);
        impl[method.localName] = async (req: Record<string, unknown>, ctx: HandlerContext) => {
          const record = clone(field.message, req[field.localName] as MessageShape<DescMessage>) as unknown as AnyRecord;
          const now = timestampNow();
          Object.assign(record, { name: `${collection}/${uuidv7()}`, createTime: now, updateTime: now });
          // A retried create with the same Idempotency-Key gets the record the first one made.
          const idem = idempotencyOf(input, req as MessageShape<DescMessage>, ctx.requestHeader);
          return (await store.create(organizationOf(ctx.requestHeader), record as unknown as MessageShape<DescMessage>, idem)).record;
        };
        break;
      }
      case "Get":
        impl[method.localName] = (req: { name: string }, ctx: HandlerContext) => must(store, organizationOf(ctx.requestHeader), req.name);
        break;
      case "List": {
        const plural = method.output.fields.find((f) => f.fieldKind === "list")!;
        const resourceFields = plural.fieldKind === "list" && plural.listKind === "message" ? plural.message.fields : [];
        // Request fields named like a string field of the resource filter by it (`campaign` of ListAssetsRequest).
        const filters = input.fields.filter(
          (f) => f.fieldKind === "scalar" && f.name !== "page_token" && resourceFields.some((r) => r.name === f.name && r.fieldKind === "scalar" && r.scalar === f.scalar),
        );
        impl[method.localName] = async (req: Record<string, unknown> & { pageSize: number; pageToken: string }, ctx: HandlerContext) => {
          const where = Object.fromEntries(filters.filter((f) => req[f.localName] !== "").map((f) => [f.name, req[f.localName] as string]));
          const { records, nextPageToken } = await store.list(organizationOf(ctx.requestHeader), req.pageSize || 50, req.pageToken, where);
          return { [plural.localName]: records, nextPageToken };
        };
        break;
      }
      case "Update": {
        const field = messageField(input);
        const mutable = field.message.fields.filter((f) => !serverFields.has(f.name));
        impl[method.localName] = async (req: Record<string, unknown>, ctx: HandlerContext) => {
          const org = organizationOf(ctx.requestHeader);
          const patch = req[field.localName] as MessageShape<DescMessage> & AnyRecord;
          const record = (await must(store, org, patch.name)) as unknown as AnyRecord;
          const mask = req.updateMask as FieldMask | undefined;
          // AIP-134: without a mask, every field the client set is changed.
          const paths = mask?.paths.length ? mask.paths : mutable.filter((f) => isFieldSet(patch, f)).map((f) => f.name);
          for (const p of paths) {
            const f = mutable.find((x) => x.name === p);
            if (!f) throw new ConnectError(`update_mask: "${p}" is not a field of ${field.message.name} that can be updated`, Code.InvalidArgument);
            record[f.localName] = patch[f.localName];
          }
          record.updateTime = timestampNow();
          await store.put(org, record as unknown as MessageShape<DescMessage>);
          return record;
        };
        break;
      }
      case "Delete":
        impl[method.localName] = async (req: { name: string; force?: boolean }, ctx: HandlerContext) => {
          const org = organizationOf(ctx.requestHeader);
          await must(store, org, req.name);
          for (const d of options.dependants ?? []) {
            const where = { [d.field]: req.name };
            if (!req.force) {
              if ((await d.store.list(org, 1, "", where)).records.length > 0) {
                throw new ConnectError(`${req.name} still has ${d.collection}; delete them first, or set force to delete them with it`, Code.FailedPrecondition);
              }
              continue;
            }
            // Delete page by page from the start: each page is gone before the next is read.
            for (let page = await d.store.list(org, 100, "", where); page.records.length > 0; page = await d.store.list(org, 100, "", where)) {
              for (const r of page.records) await d.store.delete(org, (r as unknown as { name: string }).name);
            }
          }
          if (!(await store.delete(org, req.name))) throw notFound(req.name);
          return {};
        };
        break;
      default:
        throw new Error(`${service.typeName}.${method.name} is not a standard method`);
    }
  }
  return impl as unknown as ServiceImpl<S>;
}

/** messageField is the request field that carries the resource (`icp` of CreateIcpRequest). */
function messageField(input: DescMessage): DescField & { fieldKind: "message" } {
  const f = input.fields.find((x) => x.fieldKind === "message" && x.message.typeName !== "google.protobuf.FieldMask");
  if (!f || f.fieldKind !== "message") throw new Error(`${input.typeName} carries no resource`);
  return f;
}

function notFound(name: string): ConnectError {
  return new ConnectError(`${name.split("/")[0].replace(/s$/, "")} "${name}" not found`, Code.NotFound);
}

async function must(store: RecordStore<MessageShape<DescMessage>>, org: string, name: string): Promise<MessageShape<DescMessage>> {
  const r = await store.get(org, name);
  if (!r) throw notFound(name);
  return r;
}

/** collectionOf reads the collection from the message's google.api.resource pattern (`icps/{icp}` -> `icps`). */
export function collectionOf(message: DescMessage): string {
  const pattern = hasOption(message, resource) ? getOption(message, resource).pattern[0] : undefined;
  const m = pattern ? /^([a-z][a-zA-Z0-9]*)\/\{[a-z_]+\}$/.exec(pattern) : null;
  if (!m) throw new Error(`${message.typeName} has no single-collection google.api.resource pattern`);
  return m[1];
}

import { clearField, clone, getOption, hasOption, isFieldSet, type DescField, type DescMessage, type DescService, type MessageShape } from "@bufbuild/protobuf";
import { timestampNow, type FieldMask } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { uuidv7 } from "uuidv7";
import { FieldBehavior, field_behavior } from "../../gen/google/api/field_behavior_pb.js";
import { resource } from "../../gen/google/api/resource_pb.js";
import { ErrorInfoSchema, PreconditionFailureSchema } from "../../gen/google/rpc/error_details_pb.js";
import { callerOrganization, idempotencyOf, keyReused, type Idempotency } from "../../mesh/call-context.js";
import { decodePageToken, encodePageToken } from "../pagination.js";
import { filterTerms, matchesTerms, type RecordFilter } from "./record-filter.js";

export type { RecordFilter } from "./record-filter.js";

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
   * list returns a page of records, newest first; `where` keeps only the
   * records whose string fields (by proto path, `campaign` or `origin.run`)
   * equal the given values or, for repeated fields, contain them.
   */
  list(org: string, pageSize: number, pageToken: string, where?: RecordFilter): Promise<{ records: M[]; nextPageToken: string }>;
}

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
      const terms = filterTerms(schema, where);
      // Names end in UUIDv7 ids: descending name order is newest first.
      const all = [...m.entries()]
        .filter(([n, v]) => v.org === org && (after === undefined || n.slice(n.indexOf("/") + 1) < after) && matchesTerms(v.record, terms))
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
 * by a string field: singular (V2 assets name their `campaign`) or repeated
 * (V1 campaigns list their `cohorts`). A Delete of a record that dependants
 * still refer to fails with FAILED_PRECONDITION unless the request sets
 * `force`, which then deletes those dependants or detaches them (clears the
 * field, or takes the name out of the list), as `onForce` says.
 */
export interface Dependant {
  /** schema is the dependants' message; their collection comes from its resource pattern. */
  readonly schema: DescMessage;
  /** store keeps them. */
  readonly store: RecordStore<MessageShape<DescMessage>>;
  /** field is the proto name of their reference field, for example `campaign` or `cohorts`. */
  readonly field: string;
  /**
   * onForce is what `force` does to them: `delete` them (AIP-135's cascade;
   * the default for a singular field) or `detach` them, keeping them without
   * the reference (the default for a repeated field). A cascade does not
   * recurse: dependants deleted by force must have no dependants of their own.
   */
  readonly onForce?: "delete" | "detach";
}

/** ResourceServiceOptions tune the standard methods of one resource service. */
export interface ResourceServiceOptions {
  /** dependants are the collections that refer to this one. */
  readonly dependants?: readonly Dependant[];
}

/** outputOnly tells whether clients may not set a field: the name, the times, anything marked OUTPUT_ONLY or IDENTIFIER. */
function outputOnly(f: DescField): boolean {
  if (f.name === "name" || f.name === "create_time" || f.name === "update_time") return true;
  const behaviours = hasOption(f, field_behavior) ? getOption(f, field_behavior) : [];
  return behaviours.includes(FieldBehavior.OUTPUT_ONLY) || behaviours.includes(FieldBehavior.IDENTIFIER);
}

/** ResolvedDependant is a Dependant checked against its descriptor, ready for Delete. */
interface ResolvedDependant {
  readonly collection: string;
  readonly store: RecordStore<MessageShape<DescMessage>>;
  readonly field: DescField;
  readonly onForce: "delete" | "detach";
}

/** resolveDependant checks a Dependant at start-up: its field must be a top-level string field, single or repeated, that stores can filter by. */
function resolveDependant(d: Dependant): ResolvedDependant {
  const [{ path }] = filterTerms(d.schema, { [d.field]: "" });
  if (path.length !== 1) throw new Error(`${d.schema.typeName}.${d.field}: a reference to a record must be a top-level field`);
  const field = path[0];
  return { collection: collectionOf(d.schema), store: d.store, field, onForce: d.onForce ?? (field.fieldKind === "list" ? "detach" : "delete") };
}

/** hasDependantsError is the FAILED_PRECONDITION of a Delete without force, naming what refers to the record and what force would do. */
function hasDependantsError(name: string, blocking: readonly ResolvedDependant[]): ConnectError {
  const list = (ds: readonly ResolvedDependant[]) => ds.map((d) => d.collection).join(" and ");
  const detached = blocking.filter((d) => d.onForce === "detach");
  const deleted = blocking.filter((d) => d.onForce === "delete");
  const force = [detached.length ? `remove it from those ${list(detached)}` : "", deleted.length ? `delete those ${list(deleted)} with it` : ""].filter(Boolean).join(" and ");
  return new ConnectError(`${name} is still referred to by ${list(blocking)}; remove those references first, or set force to ${force}`, Code.FailedPrecondition, undefined, [
    {
      desc: ErrorInfoSchema,
      value: { reason: "RESOURCE_HAS_DEPENDANTS", domain: "raptorflow.ai", metadata: { resource: name, dependants: blocking.map((d) => d.collection).join(",") } },
    },
    {
      desc: PreconditionFailureSchema,
      value: {
        violations: blocking.map((d) => ({
          type: "DEPENDANTS",
          subject: name,
          description: `${d.collection} refer to it by ${d.field.name}; force would ${d.onForce === "delete" ? "delete them" : "remove it from them"}`,
        })),
      },
    },
  ]);
}

type AnyRecord = Record<string, unknown> & { name: string };

/** release deletes or detaches every dependant record that refers to `name`, page by page from the start: each page no longer matches once handled. */
async function release(org: string, d: ResolvedDependant, name: string): Promise<void> {
  const where = { [d.field.name]: name };
  for (let page = await d.store.list(org, 100, "", where); page.records.length > 0; page = await d.store.list(org, 100, "", where)) {
    for (const r of page.records as unknown as AnyRecord[]) {
      if (d.onForce === "delete") {
        await d.store.delete(org, r.name);
        continue;
      }
      if (d.field.fieldKind === "list") r[d.field.localName] = (r[d.field.localName] as string[]).filter((x) => x !== name);
      else clearField(r as unknown as MessageShape<DescMessage>, d.field);
      r.updateTime = timestampNow();
      await d.store.put(org, r as unknown as MessageShape<DescMessage>);
    }
  }
}

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
  const dependants = (options.dependants ?? []).map(resolveDependant);
  for (const method of service.methods) {
    const verb = /^(Create|Get|List|Update|Delete)/.exec(method.name)?.[1];
    const input = method.input;
    switch (verb) {
      case "Create": {
        const field = messageField(input);
        const collection = collectionOf(field.message);
        const serverSet = field.message.fields.filter(outputOnly);
        impl[method.localName] = async (req: Record<string, unknown>, ctx: HandlerContext) => {
          const record = clone(field.message, req[field.localName] as MessageShape<DescMessage>) as unknown as AnyRecord;
          // AIP-203: what clients send in output-only fields (an `origin` …) is ignored.
          for (const f of serverSet) clearField(record as unknown as MessageShape<DescMessage>, f);
          const now = timestampNow();
          Object.assign(record, { name: `${collection}/${uuidv7()}`, createTime: now, updateTime: now });
          // A retried create with the same Idempotency-Key gets the record the first one made.
          const idem = idempotencyOf(input, req as MessageShape<DescMessage>, ctx.requestHeader);
          return (await store.create(callerOrganization(ctx), record as unknown as MessageShape<DescMessage>, idem)).record;
        };
        break;
      }
      case "Get":
        impl[method.localName] = (req: { name: string }, ctx: HandlerContext) => must(store, callerOrganization(ctx), req.name);
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
          const { records, nextPageToken } = await store.list(callerOrganization(ctx), req.pageSize || 50, req.pageToken, where);
          return { [plural.localName]: records, nextPageToken };
        };
        break;
      }
      case "Update": {
        const field = messageField(input);
        const mutable = field.message.fields.filter((f) => !outputOnly(f));
        impl[method.localName] = async (req: Record<string, unknown>, ctx: HandlerContext) => {
          const org = callerOrganization(ctx);
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
        if (dependants.length > 0 && !input.fields.some((f) => f.name === "force")) {
          throw new Error(`${input.typeName} needs a \`force\` field: ${service.typeName} has dependants`);
        }
        impl[method.localName] = async (req: { name: string; force?: boolean }, ctx: HandlerContext) => {
          const org = callerOrganization(ctx);
          await must(store, org, req.name);
          if (!req.force) {
            const blocking: ResolvedDependant[] = [];
            for (const d of dependants) {
              if ((await d.store.list(org, 1, "", { [d.field.name]: req.name })).records.length > 0) blocking.push(d);
            }
            if (blocking.length > 0) throw hasDependantsError(req.name, blocking);
          } else {
            for (const d of dependants) await release(org, d, req.name);
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

import { clone, getOption, hasOption, isFieldSet, type DescField, type DescMessage, type DescService, type MessageShape } from "@bufbuild/protobuf";
import { timestampNow, type FieldMask } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { uuidv7 } from "uuidv7";
import { resource } from "../../gen/google/api/resource_pb.js";
import { paginate } from "../../platform/pagination.js";

/** RecordStore keeps the records of one resource; in memory until the data-layer issue adds PostgreSQL. */
export interface RecordStore<M> {
  /** get returns a record by name. */
  get(name: string): M | undefined;
  /** put inserts or replaces. */
  put(record: M): void;
  /** delete removes; false when absent. */
  delete(name: string): boolean;
  /** list returns records newest first. */
  list(): M[];
}

/** createMemoryStore keeps records in a Map, copying on the way in and out so callers cannot change stored records. */
export function createMemoryStore<S extends DescMessage>(schema: S): RecordStore<MessageShape<S>> {
  const m = new Map<string, MessageShape<S>>();
  return {
    get: (n) => {
      const v = m.get(n);
      return v && clone(schema, v);
    },
    put: (r) => void m.set((r as unknown as { name: string }).name, clone(schema, r)),
    delete: (n) => m.delete(n),
    // Names are UUIDv7: insertion order is creation order.
    list: () => [...m.values()].reverse().map((v) => clone(schema, v)),
  };
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
export function createResourceServiceImpl<S extends DescService>(service: S, store: RecordStore<MessageShape<DescMessage>>): ServiceImpl<S> {
  const impl: Record<string, (req: never) => unknown> = {};
  for (const method of service.methods) {
    const verb = /^(Create|Get|List|Update|Delete)/.exec(method.name)?.[1];
    const input = method.input;
    switch (verb) {
      case "Create": {
        const field = messageField(input);
        const collection = collectionOf(field.message);
        impl[method.localName] = (req: Record<string, unknown>) => {
          const record = clone(field.message, req[field.localName] as MessageShape<DescMessage>) as unknown as AnyRecord;
          const now = timestampNow();
          Object.assign(record, { name: `${collection}/${uuidv7()}`, createTime: now, updateTime: now });
          store.put(record as unknown as MessageShape<DescMessage>);
          return record;
        };
        break;
      }
      case "Get":
        impl[method.localName] = (req: { name: string }) => must(store, req.name);
        break;
      case "List": {
        const plural = method.output.fields.find((f) => f.fieldKind === "list")!.localName;
        impl[method.localName] = (req: { pageSize: number; pageToken: string }) => {
          const { page, nextPageToken } = paginate(store.list(), req, plural);
          return { [plural]: page, nextPageToken };
        };
        break;
      }
      case "Update": {
        const field = messageField(input);
        const mutable = field.message.fields.filter((f) => !serverFields.has(f.name));
        impl[method.localName] = (req: Record<string, unknown>) => {
          const patch = req[field.localName] as MessageShape<DescMessage> & AnyRecord;
          const record = must(store, patch.name) as unknown as AnyRecord;
          const mask = req.updateMask as FieldMask | undefined;
          // AIP-134: without a mask, every field the client set is changed.
          const paths = mask?.paths.length ? mask.paths : mutable.filter((f) => isFieldSet(patch, f)).map((f) => f.name);
          for (const p of paths) {
            const f = mutable.find((x) => x.name === p);
            if (!f) throw new ConnectError(`update_mask: "${p}" is not a field of ${field.message.name} that can be updated`, Code.InvalidArgument);
            record[f.localName] = patch[f.localName];
          }
          record.updateTime = timestampNow();
          store.put(record as unknown as MessageShape<DescMessage>);
          return record;
        };
        break;
      }
      case "Delete":
        impl[method.localName] = (req: { name: string }) => {
          if (!store.delete(req.name)) throw notFound(req.name);
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

function must(store: RecordStore<MessageShape<DescMessage>>, name: string): MessageShape<DescMessage> {
  const r = store.get(name);
  if (!r) throw notFound(name);
  return r;
}

/** collectionOf reads the collection from the message's google.api.resource pattern (`icps/{icp}` -> `icps`). */
function collectionOf(message: DescMessage): string {
  const pattern = hasOption(message, resource) ? getOption(message, resource).pattern[0] : undefined;
  const m = pattern ? /^([a-z][a-zA-Z0-9]*)\/\{[a-z_]+\}$/.exec(pattern) : null;
  if (!m) throw new Error(`${message.typeName} has no single-collection google.api.resource pattern`);
  return m[1];
}

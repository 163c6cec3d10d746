import { Document } from "@langchain/core/documents";
import type { EmbeddingsInterface } from "@langchain/core/embeddings";
import { uuidv7 } from "uuidv7";
import type { Database } from "../db/database.js";
import { decodePageToken, encodePageToken } from "../pagination.js";
import { PgVectorStore } from "./pg-vector-store.js";

/** MemoryItem is one thing remembered about an organization. */
export interface MemoryItem {
  /** id is a UUIDv7, so ids sort by creation. */
  readonly id: string;
  /** kind groups memories: `brand`, `preference`, `knowledge`, `lesson`. */
  readonly kind: string;
  /** content is the text remembered (and embedded). */
  readonly content: string;
  /** source says where it came from, for example `agents/brand_memory`. */
  readonly source: string;
  /** labels group memories further. */
  readonly labels: Readonly<Record<string, string>>;
  /** createTime is when it was stored. */
  readonly createTime: Date;
}

/** NewMemory is what a caller gives to remember something. */
export type NewMemory = Pick<MemoryItem, "kind" | "content" | "source" | "labels">;

/** MemoryMatch is a search result: the memory and its cosine similarity to the query (1 is identical). */
export interface MemoryMatch {
  readonly item: MemoryItem;
  readonly similarity: number;
}

/**
 * MemoryBank keeps an organization's memories and finds them by meaning.
 * Every operation is scoped to an organization: another organization's
 * memory is never read, listed, searched or deleted. PostgreSQL (pgvector,
 * or exact search without it) and the in-process bank implement it.
 */
export interface MemoryBank {
  /** add embeds and stores a memory. */
  add(org: string, memory: NewMemory): Promise<MemoryItem>;
  /** get returns a memory by id, or undefined. */
  get(org: string, id: string): Promise<MemoryItem | undefined>;
  /** list returns a page of memories, newest first, optionally of one kind. */
  list(org: string, options: { kind?: string; pageSize: number; pageToken: string }): Promise<{ items: MemoryItem[]; nextPageToken: string }>;
  /** delete forgets a memory; false when absent. */
  delete(org: string, id: string): Promise<boolean>;
  /** search returns the k memories closest to the query, most similar first, optionally of some kinds. */
  search(org: string, query: string, options: { kinds?: readonly string[]; k: number }): Promise<MemoryMatch[]>;
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** PgMemoryBankOptions say where a service keeps its memories. */
export interface PgMemoryBankOptions {
  /** db is the service's database. */
  readonly db: Database;
  /** table is the schema-qualified memories table (made by memoryTableMigrationSql). */
  readonly table: string;
  /** embeddings turn text into vectors; their length must match the table's. */
  readonly embeddings: EmbeddingsInterface;
  /** warn reports the fallback to exact search once, at open. */
  readonly warn?: (message: string) => void;
}

/**
 * createPgMemoryBank keeps memories in a PostgreSQL memories table: adding
 * and searching go through the LangChain vector store (PgVectorStore), the
 * rest is plain SQL on the same rows. The memory's kind is the row's
 * namespace; its source and labels are in the metadata.
 */
export async function createPgMemoryBank(options: PgMemoryBankOptions): Promise<MemoryBank> {
  const store = await PgVectorStore.open(options.embeddings, { db: options.db, table: options.table, warn: options.warn });
  const sql = (query: string, params: unknown[]) => options.db.orm.em.getConnection().execute(query, params) as Promise<Row[]>;
  const columns = `id, namespace, content, metadata, create_time`;
  const bank: MemoryBank = {
    async add(org, memory) {
      const id = uuidv7();
      const metadata = { organization: org, namespace: memory.kind, source: memory.source, labels: memory.labels };
      await store.addDocuments([new Document({ pageContent: memory.content, metadata })], { ids: [id] });
      return (await bank.get(org, id))!;
    },
    async get(org, id) {
      if (!uuid.test(id)) return undefined;
      const rows = await sql(`select ${columns} from ${options.table} where organization = ? and id = ?`, [org, id]);
      return rows[0] && itemOf(rows[0]);
    },
    async list(org, { kind, pageSize, pageToken }) {
      const after = decodePageToken(pageToken);
      const rows = await sql(
        `select ${columns} from ${options.table}
         where organization = ? and (?::text is null or namespace = ?) and (?::uuid is null or id < ?::uuid)
         order by id desc limit ?`,
        [org, kind ?? null, kind ?? null, after ?? null, after ?? null, pageSize + 1],
      );
      const page = rows.slice(0, pageSize).map(itemOf);
      return { items: page, nextPageToken: rows.length > pageSize ? encodePageToken(page[page.length - 1].id) : "" };
    },
    async delete(org, id) {
      if (!uuid.test(id)) return false;
      const rows = await sql(`delete from ${options.table} where organization = ? and id = ? returning id`, [org, id]);
      return rows.length > 0;
    },
    async search(org, query, { kinds, k }) {
      const vector = await options.embeddings.embedQuery(query);
      const found = await store.similaritySearchVectorWithScore(vector, k, { organization: org, namespace: kinds?.length ? kinds : undefined });
      if (found.length === 0) return [];
      // The vector store gives ids and distances; the rows give the whole memories.
      const rows = await sql(`select ${columns} from ${options.table} where organization = ? and id = any(?::uuid[])`, [org, `{${found.map(([d]) => d.id).join(",")}}`]);
      const byId = new Map(rows.map((r) => [r.id, itemOf(r)]));
      // PgVectorStore scores are cosine distances; the bank reports similarity.
      return found.flatMap(([doc, distance]) => {
        const item = byId.get(doc.id ?? "");
        return item ? [{ item, similarity: 1 - distance }] : [];
      });
    },
  };
  return bank;
}

/**
 * createInProcessMemoryBank keeps memories in the process (DATA_STORE=memory)
 * and searches them exactly by cosine similarity, with the same embeddings
 * and the same behaviour as the PostgreSQL bank.
 */
export function createInProcessMemoryBank(embeddings: EmbeddingsInterface): MemoryBank {
  const rows = new Map<string, { org: string; item: MemoryItem; vector: number[] }>();
  const mine = (org: string) => [...rows.values()].filter((r) => r.org === org);
  return {
    async add(org, memory) {
      const item: MemoryItem = { id: uuidv7(), kind: memory.kind, content: memory.content, source: memory.source, labels: { ...memory.labels }, createTime: new Date() };
      rows.set(item.id, { org, item, vector: await embeddings.embedQuery(memory.content) });
      return item;
    },
    async get(org, id) {
      const r = rows.get(id);
      return r?.org === org ? r.item : undefined;
    },
    async list(org, { kind, pageSize, pageToken }) {
      const after = decodePageToken(pageToken);
      const all = mine(org)
        .map((r) => r.item)
        .filter((i) => (kind === undefined || i.kind === kind) && (after === undefined || i.id < after))
        .sort((a, b) => (a.id < b.id ? 1 : -1));
      const page = all.slice(0, pageSize);
      return { items: page, nextPageToken: all.length > pageSize ? encodePageToken(page[page.length - 1].id) : "" };
    },
    async delete(org, id) {
      return rows.get(id)?.org === org && rows.delete(id);
    },
    async search(org, query, { kinds, k }) {
      const q = await embeddings.embedQuery(query);
      return mine(org)
        .filter((r) => !kinds?.length || kinds.includes(r.item.kind))
        .map((r) => ({ item: r.item, similarity: cosine(q, r.vector) }))
        .sort((a, b) => b.similarity - a.similarity)
        .slice(0, k);
    },
  };
}

interface Row {
  id: string;
  namespace: string;
  content: string;
  metadata: Record<string, unknown> | string;
  create_time: Date | string;
}

function itemOf(row: Row): MemoryItem {
  const metadata = typeof row.metadata === "string" ? (JSON.parse(row.metadata) as Record<string, unknown>) : row.metadata;
  return {
    id: row.id,
    kind: row.namespace,
    content: row.content,
    source: String(metadata.source ?? ""),
    labels: (metadata.labels ?? {}) as Record<string, string>,
    createTime: new Date(row.create_time),
  };
}

function cosine(a: readonly number[], b: readonly number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

import { randomUUID } from "node:crypto";
import { Document, type DocumentInterface } from "@langchain/core/documents";
import type { EmbeddingsInterface } from "@langchain/core/embeddings";
import { VectorStore } from "@langchain/core/vectorstores";
import { Migration } from "@mikro-orm/migrations";
import { logger } from "../../mesh/logger.js";
import type { Database } from "../db/database.js";

/** MemoryFilter scopes a search: always to an organization, optionally to a namespace (brand memory, runs …). */
export interface MemoryFilter {
  /** organization whose memories are searched; required. */
  readonly organization: string;
  /** namespace narrows the search, for example `runs` or `brand`; a list matches any of them. */
  readonly namespace?: string | readonly string[];
}

/** PgVectorStoreOptions say where the memories live. */
export interface PgVectorStoreOptions {
  /** db is the service's database. */
  readonly db: Database;
  /** table is the schema-qualified table, for example `orchestrator.memories` (made by memoryTableMigration). */
  readonly table: string;
  /** warn reports the fallback to exact search once, at open. */
  readonly warn?: (message: string) => void;
}

const qualified = /^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$/;

/**
 * PgVectorStore is a LangChain VectorStore on PostgreSQL: with pgvector the
 * embeddings are a `vector` column searched with the cosine-distance
 * operator; on a server without the extension they are a float array and the
 * search is exact, in SQL (the vectors are unit length, so the dot product is
 * the cosine similarity). Every row and every search is scoped to an
 * organization. Scores are cosine distances: 0 is identical.
 */
export class PgVectorStore extends VectorStore {
  declare FilterType: MemoryFilter;
  private readonly db: Database;
  private readonly table: string;
  /** usesPgvector says whether the table uses pgvector (else exact search on arrays). */
  readonly usesPgvector: boolean;

  private constructor(embeddings: EmbeddingsInterface, options: PgVectorStoreOptions, usesPgvector: boolean) {
    super(embeddings, {});
    this.db = options.db;
    this.table = options.table;
    this.usesPgvector = usesPgvector;
  }

  /** open inspects the table's embedding column to pick the search, and warns once when it is the fallback. */
  static async open(embeddings: EmbeddingsInterface, options: PgVectorStoreOptions): Promise<PgVectorStore> {
    if (!qualified.test(options.table)) throw new Error(`table "${options.table}" must be schema.table`);
    const [schema, table] = options.table.split(".");
    const rows = (await options.db.orm.em
      .getConnection()
      .execute(`select udt_name from information_schema.columns where table_schema = ? and table_name = ? and column_name = 'embedding'`, [schema, table])) as {
      udt_name: string;
    }[];
    if (rows.length === 0) throw new Error(`${options.table} has no embedding column (run the migrations)`);
    const usesPgvector = rows[0].udt_name === "vector";
    if (!usesPgvector) {
      (options.warn ?? ((m: string) => logger("memory").warn(m)))(`${options.table}: PostgreSQL has no pgvector; similarity search is exact, in SQL (fine for thousands of rows, slow for millions)`);
    }
    return new PgVectorStore(embeddings, options, usesPgvector);
  }

  _vectorstoreType(): string {
    return this.usesPgvector ? "pgvector" : "postgres-exact";
  }

  /** addDocuments embeds and stores documents; metadata.organization is required, metadata.namespace optional. */
  async addDocuments(documents: DocumentInterface[], options?: { ids?: string[] }): Promise<string[]> {
    return this.addVectors(await this.embeddings.embedDocuments(documents.map((d) => d.pageContent)), documents, options);
  }

  /** addVectors stores documents with their embeddings and returns their ids (`options.ids`, or new UUIDs). */
  async addVectors(vectors: number[][], documents: DocumentInterface[], options?: { ids?: string[] }): Promise<string[]> {
    const conn = this.db.orm.em.getConnection();
    const ids: string[] = [];
    for (const [i, doc] of documents.entries()) {
      const org = doc.metadata?.organization;
      if (typeof org !== "string" || org === "") throw new Error("every memory needs metadata.organization");
      const id = options?.ids?.[i] ?? randomUUID();
      ids.push(id);
      await conn.execute(
        `insert into ${this.table} (id, organization, namespace, content, metadata, embedding, create_time) values (?, ?, ?, ?, ?, ${this.usesPgvector ? "?::public.vector" : "?::float8[]"}, now())`,
        [id, org, String(doc.metadata?.namespace ?? ""), doc.pageContent, JSON.stringify(doc.metadata ?? {}), this.literal(vectors[i])],
      );
    }
    return ids;
  }

  /** similaritySearchVectorWithScore returns the k nearest memories of the filter's organization, with cosine distances. */
  async similaritySearchVectorWithScore(query: number[], k: number, filter?: MemoryFilter): Promise<[DocumentInterface, number][]> {
    if (!filter?.organization) throw new Error("a memory search needs filter.organization");
    const ns = filter.namespace;
    const namespaces = ns === undefined ? null : `{${(typeof ns === "string" ? [ns] : ns).map((n) => JSON.stringify(n)).join(",")}}`;
    const distance = this.usesPgvector
      ? `embedding operator(public.<=>) ?::public.vector`
      : `1 - (select coalesce(sum(a * b), 0) from unnest(embedding, ?::float8[]) as t(a, b))`;
    const rows = (await this.db.orm.em.getConnection().execute(
      `select id, content, metadata, ${distance} as distance from ${this.table}
       where organization = ? and (?::text[] is null or namespace = any(?::text[]))
       order by distance asc limit ?`,
      [this.literal(query), filter.organization, namespaces, namespaces, k],
    )) as { id: string; content: string; metadata: Record<string, unknown> | string; distance: number | string }[];
    return rows.map((r) => [
      new Document({ id: r.id, pageContent: r.content, metadata: typeof r.metadata === "string" ? JSON.parse(r.metadata) : r.metadata }),
      Number(r.distance),
    ]);
  }

  private literal(v: number[]): string {
    return this.usesPgvector ? `[${v.join(",")}]` : `{${v.join(",")}}`;
  }
}

/**
 * memoryTableMigrationSql is the SQL that makes a memories table in a
 * schema: a pgvector column when the server has the extension (PGlite ships
 * it), else a float array for exact search.
 */
export function memoryTableMigrationSql(schema: string, dimensions: number, hasPgvector: boolean): string[] {
  // The extension lives in public and is always named with its schema, so it
  // works whatever the connection's search_path (migrations set it to the service's schema).
  const column = hasPgvector ? `public.vector(${dimensions})` : "double precision[]";
  return [
    ...(hasPgvector ? ["create extension if not exists vector with schema public"] : []),
    `create table "${schema}"."memories" (
      "id" uuid primary key,
      "organization" text not null,
      "namespace" text not null default '',
      "content" text not null,
      "metadata" jsonb not null default '{}',
      "embedding" ${column} not null,
      "create_time" timestamptz not null)`,
    `create index "memories_org_namespace" on "${schema}"."memories" ("organization", "namespace")`,
  ];
}

/**
 * memoryTableMigration makes the migration that adds a schema's memories
 * table, with pgvector when the server has the extension and exact search on
 * arrays when it does not.
 */
export function memoryTableMigration(schema: string, dimensions: number): new (...args: ConstructorParameters<typeof Migration>) => Migration {
  return class MemoriesMigration extends Migration {
    override async up(): Promise<void> {
      const available = await this.execute(`select 1 from pg_available_extensions where name = 'vector'`);
      for (const sql of memoryTableMigrationSql(schema, dimensions, available.length > 0)) this.addSql(sql);
    }

    override async down(): Promise<void> {
      this.addSql(`drop table if exists "${schema}"."memories"`);
    }
  };
}

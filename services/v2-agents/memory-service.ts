import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { MemoryKind, MemorySchema, type Memory, type MemoryService } from "../../gen/raptorflow/v2/memory_pb.js";
import { callerOrganization } from "../../mesh/call-context.js";
import type { MemoryBank, MemoryItem } from "../../platform/memory/memory-bank.js";

/** memoryKinds maps the contract's kinds to the names the bank stores. */
export const memoryKinds: ReadonlyMap<MemoryKind, string> = new Map([
  [MemoryKind.BRAND, "brand"],
  [MemoryKind.PREFERENCE, "preference"],
  [MemoryKind.KNOWLEDGE, "knowledge"],
  [MemoryKind.LESSON, "lesson"],
]);

const kindOf = new Map([...memoryKinds].map(([k, v]) => [v, k]));

/** memoryOf turns a stored memory into the contract's message. */
export function memoryOf(item: MemoryItem): Memory {
  return create(MemorySchema, {
    name: `memories/${item.id}`,
    kind: kindOf.get(item.kind) ?? MemoryKind.UNSPECIFIED,
    content: item.content,
    source: item.source,
    labels: { ...item.labels },
    createTime: timestampFromDate(item.createTime),
  });
}

const idOf = (name: string) => name.slice("memories/".length);

/**
 * createMemoryServiceImpl serves V2's memories from a MemoryBank, scoped to
 * the caller's organization: another organization's memory is NOT_FOUND.
 * Requests are validated against the contract's rules before they get here.
 */
export function createMemoryServiceImpl(bank: MemoryBank): ServiceImpl<typeof MemoryService> {
  const notFound = (name: string) => new ConnectError(`memory "${name}" not found`, Code.NotFound);
  return {
    async createMemory(req, ctx) {
      const m = req.memory!;
      const item = await bank.add(callerOrganization(ctx), { kind: memoryKinds.get(m.kind)!, content: m.content, source: m.source, labels: m.labels });
      return memoryOf(item);
    },
    async getMemory(req, ctx) {
      const item = await bank.get(callerOrganization(ctx), idOf(req.name));
      if (!item) throw notFound(req.name);
      return memoryOf(item);
    },
    async listMemories(req, ctx) {
      const { items, nextPageToken } = await bank.list(callerOrganization(ctx), {
        kind: memoryKinds.get(req.kind),
        pageSize: req.pageSize || 50,
        pageToken: req.pageToken,
      });
      return { memories: items.map(memoryOf), nextPageToken };
    },
    async deleteMemory(req, ctx) {
      if (!(await bank.delete(callerOrganization(ctx), idOf(req.name)))) throw notFound(req.name);
      return {};
    },
    async searchMemories(req, ctx) {
      const found = await bank.search(callerOrganization(ctx), req.query, {
        kinds: req.kinds.map((k) => memoryKinds.get(k)!),
        k: req.pageSize || 5,
      });
      return { matches: found.map((f) => ({ memory: memoryOf(f.item), similarity: f.similarity })) };
    },
  };
}

import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { BookSchema, EchoService } from "../../gen/raptorflow/conformance/v1/conformance_pb.js";

/**
 * createEchoImpl is the conformance backend: it answers every method of
 * `raptorflow.conformance.v1.EchoService` with what it received, so a test
 * sees exactly how the gateway built the request.
 */
export function createEchoImpl(): ServiceImpl<typeof EchoService> {
  return {
    echo: (req) => req,
    echoField: (req) => req,
    getBook: (req) => create(BookSchema, { name: req.name, title: `Title of ${req.name}`, text: `Text of ${req.name}` }),
    getBookText: (req) => create(BookSchema, { name: req.name, text: `Text of ${req.name}` }),
    createBook: (req) => create(BookSchema, { title: req.book?.title, text: req.book?.text, name: `${req.parent}/books/${req.bookId || "new"}` }),
    // The title reports the update mask the backend received.
    updateBook: (req) => create(BookSchema, { name: req.book?.name, text: req.book?.text, title: req.updateMask?.paths.join(",") ?? "" }),
    archiveBook: (req) => create(BookSchema, { name: req.name, archived: true }),
    getFile: (req) => ({ path: req.path }),
    fail(req) {
      const details = [];
      if (req.reason) details.push({ desc: ErrorInfoSchema, value: { reason: req.reason, domain: "conformance.raptorflow.ai" } });
      if (req.retryDelay) details.push({ desc: RetryInfoSchema, value: { retryDelay: req.retryDelay } });
      if (req.badField) details.push({ desc: BadRequestSchema, value: { fieldViolations: [{ field: req.badField, description: "is wrong" }] } });
      throw new ConnectError(req.message, req.code as Code, undefined, details);
    },
    async *streamBooks(req, ctx) {
      const pad = "x".repeat(Math.max(0, req.textBytes));
      for (let i = 0; i < req.count; i++) {
        if (req.failAfter > 0 && i === req.failAfter) throw new ConnectError("stream failed on purpose", Code.Internal);
        if (req.interval) await sleep(durationMs(req.interval), undefined, { signal: ctx.signal });
        yield { name: `${req.parent}/books/${i}`, text: pad };
      }
    },
    echoMetadata(req, ctx) {
      for (const [k, v] of Object.entries(req.responseMetadata)) ctx.responseHeader.set(k, v);
      const metadata: Record<string, string> = {};
      ctx.requestHeader.forEach((v, k) => (metadata[k] = v));
      return { metadata, timeoutMs: BigInt(ctx.timeoutMs() ?? 0) };
    },
  };
}

import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { SpanKind } from "@opentelemetry/api";
import { ExportResultCode, hrTimeToMicroseconds, type ExportResult } from "@opentelemetry/core";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace";

/** SpanRecord is one finished span as the file exporter writes it: one JSON object per line. */
export interface SpanRecord {
  /** service that made the span. */
  readonly service: string;
  /** name of the span. */
  readonly name: string;
  /** kind: SERVER, CLIENT, INTERNAL, PRODUCER or CONSUMER. */
  readonly kind: string;
  /** traceId and spanId identify it; parentSpanId is empty for a root span. */
  readonly traceId: string;
  /** spanId is its own id. */
  readonly spanId: string;
  /** parentSpanId is its parent's id, local or remote. */
  readonly parentSpanId: string;
  /** startMicros and endMicros are Unix times in microseconds. */
  readonly startMicros: number;
  /** endMicros is when it ended. */
  readonly endMicros: number;
  /** status is UNSET, OK or ERROR. */
  readonly status: string;
  /** attributes are its attributes. */
  readonly attributes: Readonly<Record<string, unknown>>;
}

const statusNames = ["UNSET", "OK", "ERROR"];

/**
 * createSpanFileExporter writes each finished span as a JSON line to
 * `<dir>/<service>.jsonl` (RAPTORFLOW_TRACE_DIR): a whole-mesh test reads
 * every service's spans back, and an operator without a collector can too.
 * Writes are synchronous so a span is on disk by the time its call answered.
 */
export function createSpanFileExporter(dir: string, service: string): SpanExporter {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${service}.jsonl`);
  return {
    export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
      try {
        const lines = spans.map((s) => {
          const record: SpanRecord = {
            service,
            name: s.name,
            kind: SpanKind[s.kind],
            traceId: s.spanContext().traceId,
            spanId: s.spanContext().spanId,
            parentSpanId: s.parentSpanContext?.spanId ?? "",
            startMicros: hrTimeToMicroseconds(s.startTime),
            endMicros: hrTimeToMicroseconds(s.endTime),
            status: statusNames[s.status.code] ?? "UNSET",
            attributes: { ...s.attributes },
          };
          return `${JSON.stringify(record)}\n`;
        });
        appendFileSync(file, lines.join(""));
        done({ code: ExportResultCode.SUCCESS });
      } catch (e) {
        done({ code: ExportResultCode.FAILED, error: e as Error });
      }
    },
    async shutdown() {},
  };
}

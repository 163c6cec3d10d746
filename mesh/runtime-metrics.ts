import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { getHeapStatistics } from "node:v8";
import { metrics } from "@opentelemetry/api";
import { instrumentationName } from "./telemetry.js";

/**
 * registerRuntimeMetrics reports the process's health as observable
 * metrics, read at each scrape or export (OpenTelemetry's runtime
 * semantic conventions):
 *
 * - `nodejs.eventloop.delay.p50`, `.p99`, `.max` (seconds, since the last read): how late timers fire;
 *   a busy or blocked event loop delays every call of the service.
 * - `nodejs.eventloop.utilization` (0..1, since the last read).
 * - `v8js.memory.heap.used`, `v8js.memory.heap.limit` (bytes).
 * - `process.memory.usage` (resident set, bytes), `process.cpu.time` (seconds, by `cpu.mode`),
 *   `process.uptime` (seconds).
 */
export function registerRuntimeMetrics(): void {
  const meter = metrics.getMeter(instrumentationName);
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  let lastElu = performance.eventLoopUtilization();

  const p50 = meter.createObservableGauge("nodejs.eventloop.delay.p50", { unit: "s", description: "Median event loop delay since the last read." });
  const p99 = meter.createObservableGauge("nodejs.eventloop.delay.p99", { unit: "s", description: "99th percentile event loop delay since the last read." });
  const max = meter.createObservableGauge("nodejs.eventloop.delay.max", { unit: "s", description: "Largest event loop delay since the last read." });
  const elu = meter.createObservableGauge("nodejs.eventloop.utilization", { unit: "1", description: "Share of time the event loop was busy since the last read." });
  const heapUsed = meter.createObservableGauge("v8js.memory.heap.used", { unit: "By", description: "V8 heap in use." });
  const heapLimit = meter.createObservableGauge("v8js.memory.heap.limit", { unit: "By", description: "V8 heap size limit." });
  const rss = meter.createObservableGauge("process.memory.usage", { unit: "By", description: "Resident set size of the process." });
  const cpu = meter.createObservableCounter("process.cpu.time", { unit: "s", description: "CPU time used by the process." });
  const uptime = meter.createObservableGauge("process.uptime", { unit: "s", description: "Time since the process started." });

  meter.addBatchObservableCallback(
    (r) => {
      // The histogram is in nanoseconds and is reset at each read, so every value covers the time since the last scrape.
      if (delay.count > 0) {
        r.observe(p50, delay.percentile(50) / 1e9);
        r.observe(p99, delay.percentile(99) / 1e9);
        r.observe(max, delay.max / 1e9);
      }
      delay.reset();
      const now = performance.eventLoopUtilization();
      r.observe(elu, performance.eventLoopUtilization(now, lastElu).utilization);
      lastElu = now;
      const heap = getHeapStatistics();
      r.observe(heapUsed, heap.used_heap_size);
      r.observe(heapLimit, heap.heap_size_limit);
      r.observe(rss, process.memoryUsage.rss());
      const usage = process.cpuUsage();
      r.observe(cpu, usage.user / 1e6, { "cpu.mode": "user" });
      r.observe(cpu, usage.system / 1e6, { "cpu.mode": "system" });
      r.observe(uptime, process.uptime());
    },
    [p50, p99, max, elu, heapUsed, heapLimit, rss, cpu, uptime],
  );
}

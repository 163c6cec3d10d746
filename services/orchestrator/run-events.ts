import { fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { RunEventSchema, type RunEvent } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import type { KeyValueStore } from "../../platform/kv/kv-store.js";
import { logger } from "../../mesh/logger.js";

/** RunEvents carries a run's events between orchestrator instances. */
export interface RunEvents {
  /** publish sends an event of a run to every watcher, on any instance; failures are logged, never thrown. */
  publish(org: string, run: string, event: RunEvent): Promise<void>;
  /** subscribe calls `onEvent` for each event of a run until the returned function is called. */
  subscribe(org: string, run: string, onEvent: (event: RunEvent) => void): Promise<() => Promise<void>>;
}

/**
 * createRunEvents publishes run events on the KeyValueStore's channels
 * (Redis pub/sub across instances; in-process without Redis), one channel
 * per organization and run.
 */
export function createRunEvents(kv: KeyValueStore, warn: (m: string) => void = (m) => logger("run-events").warn(m)): RunEvents {
  const channel = (org: string, run: string) => `rf:run:${org}:${run}`;
  let failing = false;
  return {
    async publish(org, run, event) {
      try {
        await kv.publish(channel(org, run), toJsonString(RunEventSchema, event));
        failing = false;
      } catch (e) {
        if (!failing) warn(`run events unavailable (watchers on other instances miss events): ${(e as Error).message}`);
        failing = true;
      }
    },
    subscribe(org, run, onEvent) {
      return kv.subscribe(channel(org, run), (m) => onEvent(fromJsonString(RunEventSchema, m)));
    },
  };
}

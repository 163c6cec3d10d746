import { clone } from "@bufbuild/protobuf";
import { FeedbackSchema, RunSchema, type Feedback, type Run } from "../../gen/raptorflow/v3/orchestrator_pb.js";

/**
 * RunStore keeps runs. The embedded default is in memory; the data-layer
 * issue adds PostgreSQL behind the same interface.
 */
export interface RunStore {
  /** put inserts or replaces a run. */
  put(run: Run): Promise<void>;
  /** get returns a run by name. */
  get(name: string): Promise<Run | undefined>;
  /** findByRequestId returns the run a client idempotency id created. */
  findByRequestId(requestId: string): Promise<Run | undefined>;
  /** list returns runs newest first. */
  list(): Promise<Run[]>;
  /** addFeedback stores feedback on a run (its name is `runs/{run}/feedback/{id}`). */
  addFeedback(feedback: Feedback): Promise<void>;
}

/** createMemoryRunStore keeps runs in a Map, copying on the way in and out so callers cannot mutate stored runs. */
export function createMemoryRunStore(): RunStore {
  const runs = new Map<string, Run>();
  const byRequest = new Map<string, string>();
  const feedback: Feedback[] = [];
  return {
    async put(run) {
      runs.set(run.name, clone(RunSchema, run));
      if (run.requestId) byRequest.set(run.requestId, run.name);
    },
    async get(name) {
      const r = runs.get(name);
      return r && clone(RunSchema, r);
    },
    async findByRequestId(id) {
      const name = byRequest.get(id);
      return name === undefined ? undefined : this.get(name);
    },
    async addFeedback(f) {
      feedback.push(clone(FeedbackSchema, f));
    },
    async list() {
      // Names are UUIDv7: lexical order is creation order.
      return [...runs.values()].sort((a, b) => (a.name < b.name ? 1 : -1)).map((r) => clone(RunSchema, r));
    },
  };
}

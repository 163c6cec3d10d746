import { clone, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { decodePageToken, encodePageToken } from "../../platform/pagination.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { FeedbackSchema, Run_State, RunSchema, Target, type Feedback, type Run } from "../../gen/raptorflow/v3/orchestrator_pb.js";
import type { RouteFeedback } from "./router.js";

import { keyReused, type Idempotency } from "../../mesh/call-context.js";

/** Idempotency is a create's key and request digest (defined with the call context, where it is read). */
export type { Idempotency };

/** RunPage is one page of runs, newest first. */
export interface RunPage {
  /** runs of the page. */
  readonly runs: Run[];
  /** nextPageToken is empty on the last page. */
  readonly nextPageToken: string;
}

/** NamedContext is a shared context kept across runs, as read. */
export interface NamedContext {
  /** values are its entries, by agent id. */
  readonly values: JsonObject;
  /** updateTime is when an entry was last written; undefined when it has none. */
  readonly updateTime?: Date;
}

/**
 * RunStore keeps runs, their steps, their shared context and their feedback,
 * every operation scoped to an organization: another organization's run is
 * simply not found. The embedded default and PostgreSQL implement it, and
 * one contract suite (run-store.contract.ts) runs against each.
 */
export interface RunStore {
  /**
   * create stores a new run before the request is acknowledged. With an
   * idempotency key already used for the same request, it returns the run
   * that key created (`created: false`); for a different request, ALREADY_EXISTS.
   */
  create(org: string, run: Run, idempotency?: Idempotency): Promise<{ run: Run; created: boolean }>;
  /** save writes a run's state, steps, output, summary, error and usage as they change. */
  save(org: string, run: Run): Promise<void>;
  /** putContext writes one entry of a run's shared context before the next step starts. */
  putContext(org: string, run: string, key: string, value: JsonValue): Promise<void>;
  /** getContext reads a run's shared context. */
  getContext(org: string, run: string): Promise<JsonObject>;
  /**
   * putNamedContext writes one entry of a shared context kept across runs
   * (`contexts/{id}`), recording the run that wrote it.
   */
  putNamedContext(org: string, id: string, key: string, value: JsonValue, run: string): Promise<void>;
  /** getNamedContext reads a shared context kept across runs and when it last changed; empty when nothing wrote it yet. */
  getNamedContext(org: string, id: string): Promise<NamedContext>;
  /** get returns a run by name, or undefined (also for another organization's run). */
  get(org: string, name: string): Promise<Run | undefined>;
  /** list returns a page of the organization's runs, newest first. */
  list(org: string, pageSize: number, pageToken: string): Promise<RunPage>;
  /** addFeedback stores feedback on a run (`runs/{run}/feedback/{id}`), with the correct target when it names one. */
  addFeedback(org: string, feedback: Feedback): Promise<void>;
  /**
   * listRouteFeedback lists, over every organization and oldest first, the
   * feedback that names a run's correct target, with the run's input: what
   * the router replays into its examples at start-up.
   */
  listRouteFeedback(): Promise<RouteFeedback[]>;
  /**
   * failInterrupted marks runs still PENDING or RUNNING that have not changed
   * since `before` as FAILED with `reason`: runs a crash interrupted. Returns
   * how many it marked.
   */
  failInterrupted(before: Date, reason: string): Promise<number>;
  /** close releases the store's connections. */
  close(): Promise<void>;
}

/** idOf is the id of a run name (`runs/{id}`). */
export function idOf(name: string): string {
  return name.slice("runs/".length);
}


/** createMemoryRunStore is the in-process RunStore: the same behaviour, kept in Maps (state is lost on restart). */
export function createMemoryRunStore(): RunStore {
  const runs = new Map<string, { org: string; run: Run }>();
  const contexts = new Map<string, JsonObject>();
  const named = new Map<string, { values: JsonObject; updateTime: Date }>();
  const keys = new Map<string, { hash: string; name: string }>();
  const feedback: { org: string; feedback: Feedback }[] = [];
  const mine = (org: string, name: string) => {
    const r = runs.get(name);
    return r && r.org === org ? r : undefined;
  };
  return {
    async create(org, run, idem) {
      if (idem) {
        const k = keys.get(`${org}\0${idem.key}`);
        if (k) {
          if (k.hash !== idem.hash) throw keyReused(idem.key);
          // The same run again (its first create's answer was lost) is still the one this call created.
          return { run: clone(RunSchema, runs.get(k.name)!.run), created: k.name === run.name };
        }
        keys.set(`${org}\0${idem.key}`, { hash: idem.hash, name: run.name });
      }
      runs.set(run.name, { org, run: clone(RunSchema, run) });
      return { run: clone(RunSchema, run), created: true };
    },
    async save(org, run) {
      if (!mine(org, run.name)) throw new ConnectError(`run "${run.name}" not found`, Code.NotFound);
      runs.set(run.name, { org, run: clone(RunSchema, run) });
    },
    async putContext(org, run, key, value) {
      if (!mine(org, run)) throw new ConnectError(`run "${run}" not found`, Code.NotFound);
      contexts.set(run, { ...(contexts.get(run) ?? {}), [key]: value });
    },
    async getContext(org, run) {
      return mine(org, run) ? { ...(contexts.get(run) ?? {}) } : {};
    },
    async putNamedContext(org, id, key, value) {
      const k = `${org}\0${id}`;
      named.set(k, { values: { ...(named.get(k)?.values ?? {}), [key]: value }, updateTime: new Date() });
    },
    async getNamedContext(org, id) {
      const c = named.get(`${org}\0${id}`);
      return c ? { values: { ...c.values }, updateTime: c.updateTime } : { values: {} };
    },
    async get(org, name) {
      const r = mine(org, name);
      return r && clone(RunSchema, r.run);
    },
    async list(org, pageSize, pageToken) {
      const after = decodePageToken(pageToken);
      // UUIDv7 ids sort by creation time: newest first is descending id order.
      const all = [...runs.values()]
        .filter((r) => r.org === org && (after === undefined || idOf(r.run.name) < after))
        .map((r) => r.run)
        .sort((a, b) => (a.name < b.name ? 1 : -1));
      const page = all.slice(0, pageSize);
      return {
        runs: page.map((r) => clone(RunSchema, r)),
        nextPageToken: all.length > pageSize ? encodePageToken(idOf(page[page.length - 1].name)) : "",
      };
    },
    async addFeedback(org, f) {
      feedback.push({ org, feedback: clone(FeedbackSchema, f) });
    },
    async listRouteFeedback() {
      return feedback
        .filter((f) => f.feedback.correctTarget !== Target.UNSPECIFIED)
        .flatMap(({ org, feedback: f }) => {
          const run = mine(org, f.name.split("/").slice(0, 2).join("/"));
          return run ? [{ organization: org, input: run.run.input, target: f.correctTarget }] : [];
        });
    },
    async failInterrupted(before, reason) {
      let n = 0;
      for (const r of runs.values()) {
        const t = r.run.updateTime ? Number(r.run.updateTime.seconds) * 1000 : 0;
        if ((r.run.state === Run_State.PENDING || r.run.state === Run_State.RUNNING) && t < before.getTime()) {
          r.run.state = Run_State.FAILED;
          r.run.error = reason;
          n++;
        }
      }
      return n;
    },
    async close() {},
  };
}

import pg from "pg";
import { stateName } from "./load-driver.js";

/** activeStates are the states of a run not yet ended; every other state is terminal. */
export const activeStates: readonly string[] = ["PENDING", "RUNNING"];

/** isTerminal tells whether a run state (with or without its `STATE_` prefix) is an end state. */
export function isTerminal(state: string): boolean {
  return !activeStates.includes(stateName(state)) && stateName(state) !== "UNSPECIFIED";
}

/** RunAudit is what the orchestrator's database holds about the runs of a load. */
export interface RunAudit {
  /** accepted is the number of runs stored (every run the orchestrator accepted). */
  readonly accepted: number;
  /** byState counts them by state (`SUCCEEDED`, `FAILED` …). */
  readonly byState: Record<string, number>;
  /** stuck are the runs still PENDING or RUNNING: lost, once the mesh has settled. */
  readonly stuck: readonly { name: string; state: string; requestId: string | null; error: string }[];
  /** states maps each request id to its run's state. */
  readonly states: ReadonlyMap<string, string>;
}

/**
 * auditRuns reads every run of the orchestrator's schema straight from
 * PostgreSQL (not through the service under test) whose request id starts
 * with `prefix`: how many were accepted, their states, and those not ended.
 */
export async function auditRuns(databaseUrl: string, prefix: string): Promise<RunAudit> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string; state: string; request_id: string | null; error: string }>(
      `select id, state, request_id, error from "orchestrator"."runs" where request_id like $1`,
      [`${prefix}-%`],
    );
    const byState: Record<string, number> = {};
    const states = new Map<string, string>();
    for (const r of rows) {
      const s = stateName(r.state);
      byState[s] = (byState[s] ?? 0) + 1;
      if (r.request_id) states.set(r.request_id, s);
    }
    const stuck = rows.filter((r) => !isTerminal(r.state)).map((r) => ({ name: `runs/${r.id}`, state: stateName(r.state), requestId: r.request_id, error: r.error }));
    return { accepted: rows.length, byState, stuck, states };
  } finally {
    await client.end();
  }
}

/**
 * settledAudit audits until no run of the load is PENDING or RUNNING, or
 * `timeoutMs` has passed (a run still active then is stuck): a run whose
 * caller gave up is recorded by the orchestrator a moment after the answer.
 */
export async function settledAudit(databaseUrl: string, prefix: string, timeoutMs = 15_000): Promise<RunAudit> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const audit = await auditRuns(databaseUrl, prefix);
    if (audit.stuck.length === 0 || Date.now() > end) return audit;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * restStates reads each named run through the gateway (`GET /v3/<name>`) as
 * a client would and returns the states, so the API and the database can be
 * compared; an answer other than 200 is recorded as `HTTP <status>`.
 */
export async function restStates(gatewayUrl: string, names: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  // A few at a time: the audit must not be a load of its own.
  for (let i = 0; i < names.length; i += 8) {
    await Promise.all(
      names.slice(i, i + 8).map(async (name) => {
        const res = await fetch(`${gatewayUrl}/v3/${name}`, { signal: AbortSignal.timeout(10_000) });
        const json = (await res.json()) as { state?: string };
        out.set(name, res.ok ? stateName(json.state ?? "UNSPECIFIED") : `HTTP ${res.status}`);
      }),
    );
  }
  return out;
}

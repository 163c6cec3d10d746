import { describe, expect, it } from "vitest";
import { healthFollowsDatabase, reportDependency } from "./health.js";
import type { Database } from "./database.js";

describe("health", () => {
  it("follows the database: NOT_SERVING while it does not answer, SERVING again when it does", async () => {
    let up = true;
    const db = { ping: async () => up } as unknown as Database;
    const seen: boolean[] = [];
    const h = healthFollowsDatabase({ setServing: (s) => seen.push(s) }, db, 20);
    h.setServing(true);
    up = false;
    await new Promise((r) => setTimeout(r, 60));
    up = true;
    await new Promise((r) => setTimeout(r, 60));
    h.stop();
    expect(seen[0]).toBe(true);
    expect(seen).toContain(false);
    expect(seen.at(-1)).toBe(true);
  });

  it("reports an optional dependency as its own entry, without touching the service's status", async () => {
    const statuses: [string, string][] = [];
    let up = false;
    const stop = reportDependency({ setStatus: (k, s) => statuses.push([k, s]) }, "redis", async () => up, 20);
    await new Promise((r) => setTimeout(r, 30));
    up = true;
    await new Promise((r) => setTimeout(r, 40));
    stop();
    expect(statuses[0]).toEqual(["raptorflow.dependency.redis", "NOT_SERVING"]);
    expect(statuses.at(-1)).toEqual(["raptorflow.dependency.redis", "SERVING"]);
  });
});

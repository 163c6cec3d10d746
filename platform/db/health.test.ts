import { describe, expect, it } from "vitest";
import { createServiceHealth } from "../../mesh/service-health.js";
import type { Database } from "./database.js";
import { withDatabase } from "./health.js";

describe("health", () => {
  it("follows the database: NOT_SERVING while it does not answer, SERVING again when it does", async () => {
    let up = true;
    let closed = false;
    const db = { ping: async () => up, close: async () => void (closed = true) } as unknown as Database;
    const readiness = createServiceHealth({ intervalMs: 20 });
    const server = withDatabase({ readiness, close: async () => readiness.close() }, db);
    readiness.setServing(true);
    await readiness.checkNow();
    expect(readiness.state()).toBe("SERVING");
    up = false;
    await readiness.checkNow();
    expect(readiness.state()).toBe("NOT_SERVING");
    expect(readiness.dependencies()).toMatchObject([{ name: "database", kind: "database", required: true, healthy: false }]);
    up = true;
    await new Promise((r) => setTimeout(r, 60));
    expect(readiness.state()).toBe("SERVING");
    await server.close();
    expect(closed).toBe(true);
  });
});

import { readFileSync } from "node:fs";
import type { FastifyInstance } from "fastify";

/** opsPage is the operations page, read once: one static file whose script polls `GET /v3/status`. */
const opsPage = readFileSync(new URL("./ops-page.html", import.meta.url), "utf8");

/**
 * opsPagePlugin serves the operations page at `GET /ops`: the mesh's
 * topology with each service's live health, request and error rates, the
 * routing mix and the recent runs, all from `GET /v3/status` (so it shows
 * exactly what the API reports, with the caller's access).
 */
export async function opsPagePlugin(app: FastifyInstance): Promise<void> {
  app.get("/ops", async (_req, reply) =>
    reply
      .type("text/html; charset=utf-8")
      .header("cache-control", "no-cache")
      // Only its own inline script and style, no third-party origin: the page needs nothing else.
      .header("content-security-policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")
      .send(opsPage),
  );
}

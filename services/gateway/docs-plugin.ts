import fastifySwagger, { type StaticDocumentSpec } from "@fastify/swagger";
import fastifySwaggerUi from "@fastify/swagger-ui";
import type { FastifyPluginAsync } from "fastify";

/** DocsPluginOptions say which document the docs serve. */
export interface DocsPluginOptions {
  /** document is the OpenAPI document (see `openApiDocument`). */
  readonly document: object;
}

/**
 * docsPlugin serves an OpenAPI document as `GET /openapi.json` and an
 * interactive Swagger UI of it at `/docs` (try-it-out on, so calls go to the
 * gateway itself). It is encapsulated: @fastify/swagger (static mode, the
 * document as given) and @fastify/swagger-ui are registered inside it, and it
 * adds no hooks or decorators to the app that registers it. Path parameters
 * that hold resource names (`runs/abc`) go out from the page with their
 * slashes, as the REST routes want them.
 */
export function docsPlugin(options: DocsPluginOptions): FastifyPluginAsync {
  // Serialised once: the document does not change while the gateway runs.
  const json = JSON.stringify(options.document);
  return async function docs(app) {
    app.get("/openapi.json", async (_request, reply) => reply.type("application/json; charset=utf-8").send(json));
    await app.register(fastifySwagger, {
      mode: "static",
      // Its types predate OpenAPI 3.1; static mode serves the document as it is.
      specification: { document: options.document as StaticDocumentSpec["document"] },
    });
    await app.register(fastifySwaggerUi, {
      routePrefix: "/docs",
      uiConfig: {
        tryItOutEnabled: true,
        deepLinking: true,
        docExpansion: "list",
        // Swagger UI escapes "/" in path parameters (`runs%2Fabc`), which no
        // multi-segment template (`{name=runs/*}`) matches: send the path's
        // slashes as slashes. This function runs in the browser: it is sent as
        // its source text, so it must stay one self-contained arrow function.
        requestInterceptor: (request) => {
          const q = request.url.indexOf("?");
          const path = q < 0 ? request.url : request.url.slice(0, q);
          request.url = path.replace(/%2F/gi, "/") + (q < 0 ? "" : request.url.slice(q));
          return request;
        },
      },
    });
  };
}

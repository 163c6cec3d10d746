import { readPem } from "../../mesh/tls.js";
import { corsOriginsSetting } from "./browser-access.js";
import type { GatewayServerOptions } from "./http-server.js";

type Env = Record<string, string | undefined>;

/** wholeSetting reads a whole number (bytes, a count, milliseconds) from the environment, failing fast on a bad value. */
export function wholeSetting(env: Env, key: string, fallback: number): number {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw)) throw new Error(`${key} must be a whole number, got "${raw}"`);
  return Number(raw);
}

/** HardeningSettings are the gateway's bounds on clients, read from the environment. */
export interface HardeningSettings {
  /** server is TLS, the header size and the timeouts (http-server.ts). */
  readonly server: GatewayServerOptions;
  /** maxJsonDepth bounds how deep a JSON body nests. */
  readonly maxJsonDepth: number;
  /** corsOrigins may call from a browser. */
  readonly corsOrigins: readonly string[];
}

/**
 * hardeningFromEnv reads `GATEWAY_TLS_CERT` and `GATEWAY_TLS_KEY` (PEM
 * files; both or neither), `GATEWAY_MAX_HEADER_BYTES`,
 * `GATEWAY_HEADERS_TIMEOUT_MS`, `GATEWAY_REQUEST_TIMEOUT_MS`,
 * `GATEWAY_IDLE_TIMEOUT_MS`, `GATEWAY_MAX_JSON_DEPTH` and
 * `GATEWAY_CORS_ORIGINS`, failing fast on a bad value.
 */
export function hardeningFromEnv(env: Env): HardeningSettings {
  if (Boolean(env.GATEWAY_TLS_CERT) !== Boolean(env.GATEWAY_TLS_KEY)) throw new Error("GATEWAY_TLS_CERT and GATEWAY_TLS_KEY go together: set both (PEM files) or neither");
  const tls = env.GATEWAY_TLS_CERT ? { cert: readPem(env, "GATEWAY_TLS_CERT"), key: readPem(env, "GATEWAY_TLS_KEY") } : undefined;
  const optional = (key: string): number | undefined => (env[key] ? wholeSetting(env, key, 0) : undefined);
  const maxJsonDepth = wholeSetting(env, "GATEWAY_MAX_JSON_DEPTH", 64);
  if (maxJsonDepth < 1) throw new Error("GATEWAY_MAX_JSON_DEPTH must be at least 1");
  return {
    server: {
      tls,
      maxHeaderBytes: optional("GATEWAY_MAX_HEADER_BYTES"),
      headersTimeoutMs: optional("GATEWAY_HEADERS_TIMEOUT_MS"),
      requestTimeoutMs: optional("GATEWAY_REQUEST_TIMEOUT_MS"),
      idleTimeoutMs: optional("GATEWAY_IDLE_TIMEOUT_MS"),
    },
    maxJsonDepth,
    corsOrigins: corsOriginsSetting(env.GATEWAY_CORS_ORIGINS),
  };
}

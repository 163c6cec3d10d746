import { isIPv4, isIPv6 } from "node:net";
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
  /** trustedProxies are the load balancers whose X-Forwarded-For is believed. */
  readonly trustedProxies: readonly string[];
}

/**
 * hardeningFromEnv reads `GATEWAY_TLS_CERT` and `GATEWAY_TLS_KEY` (PEM
 * files; both or neither), `GATEWAY_MAX_HEADER_BYTES`,
 * `GATEWAY_HEADERS_TIMEOUT_MS`, `GATEWAY_REQUEST_TIMEOUT_MS`,
 * `GATEWAY_IDLE_TIMEOUT_MS`, `GATEWAY_MAX_JSON_DEPTH`,
 * `GATEWAY_CORS_ORIGINS` and `GATEWAY_TRUSTED_PROXIES` (addresses or CIDR
 * ranges, comma-separated), failing fast on a bad value.
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
    trustedProxies: trustedProxiesSetting(env.GATEWAY_TRUSTED_PROXIES),
  };
}

/** trustedProxiesSetting reads GATEWAY_TRUSTED_PROXIES: IPv4 or IPv6 addresses or CIDR ranges, comma-separated. */
export function trustedProxiesSetting(raw: string | undefined): string[] {
  const list = (raw ?? "").split(",").map((p) => p.trim()).filter(Boolean);
  for (const p of list) {
    const [address, bits, ...rest] = p.split("/");
    const v4 = isIPv4(address);
    const ok = rest.length === 0 && (v4 || isIPv6(address)) && (bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (v4 ? 32 : 128)));
    if (!ok) throw new Error(`GATEWAY_TRUSTED_PROXIES: "${p}" is not an IP address or CIDR range`);
  }
  return list;
}

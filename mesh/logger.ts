import { createRequire } from "node:module";
import { isSpanContextValid, trace } from "@opentelemetry/api";
import { pino, type DestinationStream, type Level, type Logger } from "pino";
import { callFields } from "./call-scope.js";
import { serviceIdentity } from "./telemetry.js";

type Env = Readonly<Record<string, string | undefined>>;

/** secretKeys are the field names whose values never reach a log line, wherever they appear (up to three levels deep). */
export const secretKeys = [
  "authorization",
  "cookie",
  "set-cookie",
  "x-api-key",
  "password",
  "newPassword",
  "token",
  "accessToken",
  "access_token",
  "refreshToken",
  "refresh_token",
  "idToken",
  "apiKey",
  "api_key",
  "secret",
  "clientSecret",
  "client_secret",
  "privateKey",
  "private_key",
  "signingKeys",
] as const;

/** redactPaths are pino's redact paths for secretKeys: the key itself, one and two levels down (`req.headers.authorization`). */
export const redactPaths: readonly string[] = secretKeys.flatMap((k) => {
  const key = /^[A-Za-z_$][\w$]*$/.test(k) ? k : `["${k}"]`;
  const child = key.startsWith("[") ? key : `.${key}`;
  return [key, `*${child}`, `*.*${child}`];
});

const levels: readonly string[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/** logLevelOf reads LOG_LEVEL (fatal … trace, silent); the default is `info`, and `silent` under NODE_ENV=test (set LOG_LEVEL to see a test's logs). */
export function logLevelOf(env: Env = process.env): Level | "silent" {
  const raw = env.LOG_LEVEL;
  if (raw === undefined || raw === "") return env.NODE_ENV === "test" ? "silent" : "info";
  if (!levels.includes(raw)) throw new Error(`LOG_LEVEL must be one of ${levels.join(", ")}, got "${raw}"`);
  return raw as Level | "silent";
}

/**
 * prettyLogs tells whether lines are written for people rather than
 * machines: LOG_FORMAT=pretty or json decides; otherwise pretty when stdout
 * is a terminal and NODE_ENV is not production (the embedded default run
 * by hand), JSON everywhere else (containers, CI, pipes).
 */
export function prettyLogs(env: Env = process.env, isTty: boolean = Boolean(process.stdout.isTTY)): boolean {
  if (env.LOG_FORMAT === "json") return false;
  if (env.LOG_FORMAT === "pretty") return true;
  if (env.LOG_FORMAT !== undefined && env.LOG_FORMAT !== "") throw new Error(`LOG_FORMAT must be json or pretty, got "${env.LOG_FORMAT}"`);
  return isTty && env.NODE_ENV !== "production";
}

/** LoggerOptions configure createLogger. */
export interface LoggerOptions {
  /** env gives LOG_LEVEL, LOG_FORMAT and NODE_ENV; defaults to process.env. */
  readonly env?: Env;
  /** service names the service on every line; defaults to this process's. */
  readonly service?: string;
  /** destination receives the lines (tests); defaults to stdout. */
  readonly destination?: DestinationStream;
}

/**
 * createLogger makes a pino logger whose every line is JSON with the
 * service, and — when logged during a call — the trace and span ids, the
 * request id, the organization and the RPC (from the active OpenTelemetry
 * context the telemetry interceptors set). Secrets (secretKeys) are
 * replaced by `[REDACTED]`.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const env = options.env ?? process.env;
  const base = { service: options.service ?? serviceIdentity(env).service };
  const settings = {
    level: logLevelOf(env),
    base,
    messageKey: "msg",
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: [...redactPaths], censor: "[REDACTED]" },
    formatters: { level: (label: string) => ({ level: label }) },
    mixin() {
      const out: Record<string, string> = {};
      const sc = trace.getActiveSpan()?.spanContext();
      if (sc && isSpanContextValid(sc)) {
        out.trace_id = sc.traceId;
        out.span_id = sc.spanId;
      }
      const f = callFields();
      if (f?.requestId) out.request_id = f.requestId;
      if (f?.organization) out.organization = f.organization;
      if (f?.rpc) out.rpc = f.rpc;
      return out;
    },
  };
  if (options.destination) return pino(settings, options.destination);
  if (prettyLogs(env)) {
    // Loaded only when used: production images never pay for it.
    const pretty = createRequire(import.meta.url)("pino-pretty") as (o: object) => DestinationStream;
    return pino(settings, pretty({ sync: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname,service" }));
  }
  return pino(settings);
}

let root: Logger | undefined;

/** logger is this process's logger, made at first use; `component` names the part of the service that logs. */
export function logger(component?: string): Logger {
  root ??= createLogger();
  return component ? root.child({ component }) : root;
}

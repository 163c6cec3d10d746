import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, logLevelOf, prettyLogs } from "./logger.js";

/** capture makes a logger at `level` whose lines are parsed into `lines`. */
function capture(level = "info") {
  const lines: Record<string, unknown>[] = [];
  let raw = "";
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      raw += chunk.toString();
      for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  return { log: createLogger({ env: { LOG_LEVEL: level }, service: "orchestrator", destination }), lines, raw: () => raw };
}

describe("the logger", () => {
  it("writes one JSON object per line with the level, time, service and message", () => {
    const { log, lines } = capture();
    log.info({ run: "runs/1" }, "run finished");
    expect(lines).toEqual([{ level: "info", time: expect.any(String), service: "orchestrator", run: "runs/1", msg: "run finished" }]);
    expect(new Date(lines[0].time as string).toString()).not.toBe("Invalid Date");
  });

  it("redacts secrets wherever they are: authorization headers, tokens, passwords, keys, cookies", () => {
    const { log, lines, raw } = capture();
    log.info(
      {
        req: { headers: { authorization: "Bearer eyJhbGciOi.secret-access-token", cookie: "session=secret-cookie", "x-api-key": "rf_secret_api_key" } },
        authorization: "Basic c2VjcmV0LWJhc2lj",
        password: "correct horse battery staple",
        body: { password: { email: "ada@example.com", password: "secret-password" }, refreshToken: "secret-refresh", apiKey: "secret-key" },
        token: "secret-token",
        access_token: "secret-oauth-token",
        clientSecret: "secret-client",
      },
      "sign-in",
    );
    for (const secret of ["secret-access-token", "secret-cookie", "rf_secret_api_key", "c2VjcmV0LWJhc2lj", "battery staple", "secret-password", "secret-refresh", "secret-key", "secret-token", "secret-oauth-token", "secret-client"]) {
      expect(raw(), secret).not.toContain(secret);
    }
    expect(lines[0]).toMatchObject({
      req: { headers: { authorization: "[REDACTED]", cookie: "[REDACTED]", "x-api-key": "[REDACTED]" } },
      authorization: "[REDACTED]",
      password: "[REDACTED]",
      body: { password: "[REDACTED]", refreshToken: "[REDACTED]", apiKey: "[REDACTED]" },
      token: "[REDACTED]",
    });
    // What is not a secret stays readable.
    expect(raw()).toContain("sign-in");
  });

  it("logs at LOG_LEVEL and above", () => {
    const { log, lines } = capture("warn");
    log.info("hidden");
    log.warn("shown");
    expect(lines.map((l) => l.msg)).toEqual(["shown"]);
  });

  it("takes its level and format from the environment, failing on a bad value", () => {
    expect(logLevelOf({})).toBe("info");
    expect(logLevelOf({ NODE_ENV: "test" })).toBe("silent");
    expect(logLevelOf({ LOG_LEVEL: "debug", NODE_ENV: "production" })).toBe("debug");
    expect(() => logLevelOf({ LOG_LEVEL: "loud" })).toThrow(/LOG_LEVEL/);
    expect(prettyLogs({}, true)).toBe(true);
    expect(prettyLogs({ NODE_ENV: "production" }, true)).toBe(false);
    expect(prettyLogs({}, false)).toBe(false);
    expect(prettyLogs({ LOG_FORMAT: "json" }, true)).toBe(false);
    expect(prettyLogs({ LOG_FORMAT: "pretty" }, false)).toBe(true);
    expect(() => prettyLogs({ LOG_FORMAT: "xml" })).toThrow(/LOG_FORMAT/);
  });
});

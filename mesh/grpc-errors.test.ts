import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { toConnectError } from "./grpc-errors.js";

describe("toConnectError", () => {
  it("says UNAVAILABLE, which callers may retry, when a backing store cannot be reached", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
    const shutdown = Object.assign(new Error("terminating connection due to administrator command"), { code: "57P01" });
    const wrapped = Object.assign(new Error("driver failed"), { name: "DriverException", cause: shutdown });
    const pool = new Error("timeout exceeded when trying to connect");
    const ended = new Error("Connection terminated unexpectedly");
    for (const e of [refused, shutdown, wrapped, pool, ended]) {
      const err = toConnectError(e);
      expect(err.code, e.message).toBe(Code.Unavailable);
      // The cause stays in the server's log, not in the answer.
      expect(err.rawMessage).toBe("a backing store is unavailable; try again shortly");
    }
  });

  it("keeps ConnectErrors, and hides any other failure behind INTERNAL", () => {
    const mine = new ConnectError("no such run", Code.NotFound);
    expect(toConnectError(mine)).toBe(mine);
    const bug = toConnectError(new TypeError("cannot read properties of undefined"));
    expect(bug.code).toBe(Code.Internal);
    expect(bug.rawMessage).toBe("internal error");
    // A constraint violation is the request's or the code's problem, not an outage.
    expect(toConnectError(Object.assign(new Error("duplicate key"), { code: "23505" })).code).toBe(Code.Internal);
  });
});

import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { metadataFromHeaders } from "./metadata.js";

describe("metadataFromHeaders", () => {
  it("carries visible ASCII values and binary headers", () => {
    const md = metadataFromHeaders(new Headers({ authorization: "Bearer a.b.c", "x-trace-bin": "AQID" }));
    expect(md.get("authorization")).toEqual(["Bearer a.b.c"]);
    expect(md.get("x-trace-bin")).toEqual([Buffer.from([1, 2, 3])]);
  });

  it("refuses a value gRPC metadata cannot carry with INVALID_ARGUMENT naming the header, never repeating the value (it may be a credential)", () => {
    let err: ConnectError | undefined;
    try {
      metadataFromHeaders(new Headers({ authorization: "Bearer s3cret-t\u00f6ken" }));
    } catch (e) {
      err = ConnectError.from(e);
    }
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.rawMessage).toBe('the header "authorization" cannot travel as gRPC metadata: its value may hold visible ASCII characters only');
    expect(err?.message).not.toContain("s3cret");
  });
});

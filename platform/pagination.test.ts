import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { paginate } from "./pagination.js";

const items = ["a", "b", "c", "d", "e", "f", "g"];

/** codeOf runs f and returns the Connect code it fails with. */
function codeOf(f: () => unknown): Code | undefined {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConnectError);
    return (e as ConnectError).code;
  }
  return undefined;
}

describe("paginate", () => {
  it("pages through 7 items 3 at a time: 3, 3, 1, and the last token is empty", () => {
    const p1 = paginate(items, { pageSize: 3, pageToken: "" }, "d=");
    expect(p1.page).toEqual(["a", "b", "c"]);
    expect(p1.nextPageToken).not.toBe("");

    const p2 = paginate(items, { pageSize: 3, pageToken: p1.nextPageToken }, "d=");
    expect(p2.page).toEqual(["d", "e", "f"]);
    expect(p2.nextPageToken).not.toBe("");

    const p3 = paginate(items, { pageSize: 3, pageToken: p2.nextPageToken }, "d=");
    expect(p3.page).toEqual(["g"]);
    expect(p3.nextPageToken).toBe("");
  });

  it("has no next page when the last page is exactly full", () => {
    const p1 = paginate(items.slice(0, 6), { pageSize: 3, pageToken: "" }, "k");
    const p2 = paginate(items.slice(0, 6), { pageSize: 3, pageToken: p1.nextPageToken }, "k");
    expect(p2.page).toEqual(["d", "e", "f"]);
    expect(p2.nextPageToken).toBe("");
  });

  it("uses the default size of 50 when the page size is 0", () => {
    const many = Array.from({ length: 120 }, (_, i) => i);
    const p1 = paginate(many, { pageSize: 0, pageToken: "" }, "k");
    expect(p1.page).toHaveLength(50);
    expect(p1.page[0]).toBe(0);
    const p2 = paginate(many, { pageSize: 0, pageToken: p1.nextPageToken }, "k");
    expect(p2.page[0]).toBe(50);
    const p3 = paginate(many, { pageSize: 0, pageToken: p2.nextPageToken }, "k");
    expect(p3.page).toHaveLength(20);
    expect(p3.nextPageToken).toBe("");
  });

  it("uses the caller's default size when given", () => {
    const p = paginate(items, { pageSize: 0, pageToken: "" }, "k", 5);
    expect(p.page).toEqual(["a", "b", "c", "d", "e"]);
    expect(p.nextPageToken).not.toBe("");
  });

  it("returns everything with an empty token when it fits in one page", () => {
    expect(paginate(items, { pageSize: 0, pageToken: "" }, "k")).toEqual({ page: items, nextPageToken: "" });
    expect(paginate([], { pageSize: 3, pageToken: "" }, "k")).toEqual({ page: [], nextPageToken: "" });
  });

  it("allows the page size to change between pages", () => {
    const p1 = paginate(items, { pageSize: 2, pageToken: "" }, "k");
    const p2 = paginate(items, { pageSize: 4, pageToken: p1.nextPageToken }, "k");
    expect(p2.page).toEqual(["c", "d", "e", "f"]);
  });

  it("rejects a token replayed with another filter key with INVALID_ARGUMENT", () => {
    const p1 = paginate(items, { pageSize: 3, pageToken: "" }, "d=creative");
    expect(codeOf(() => paginate(items, { pageSize: 3, pageToken: p1.nextPageToken }, "d=analytics"))).toBe(Code.InvalidArgument);
    expect(() => paginate(items, { pageSize: 3, pageToken: p1.nextPageToken }, "d=")).toThrow(/page_token/);
  });

  it.each([
    "garbage",
    "!!!not base64!!!",
    Buffer.from("null").toString("base64url"),
    Buffer.from("[1,2]").toString("base64url"),
    Buffer.from(JSON.stringify({ o: -3, f: "k" })).toString("base64url"),
    Buffer.from(JSON.stringify({ o: 1.5, f: "k" })).toString("base64url"),
    Buffer.from(JSON.stringify({ o: 3 })).toString("base64url"),
  ])("rejects the token %j with INVALID_ARGUMENT", (token) => {
    expect(codeOf(() => paginate(items, { pageSize: 3, pageToken: token }, "k"))).toBe(Code.InvalidArgument);
  });
});

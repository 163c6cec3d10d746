import { describe, expect, it } from "vitest";
import { compilePathTemplate } from "./path-template.js";

/** vars runs a match and returns the variables as a plain object, or undefined when it does not match. */
function vars(template: string, path: string): Record<string, string> | undefined {
  const m = compilePathTemplate(template).match(path);
  return m ? Object.fromEntries(m) : undefined;
}

describe("compilePathTemplate", () => {
  it("keeps the source text and has no verb when there is none", () => {
    const t = compilePathTemplate("/v3/runs");
    expect(t.source).toBe("/v3/runs");
    expect(t.verb).toBeUndefined();
  });

  it("splits off a custom verb", () => {
    expect(compilePathTemplate("/v3/runs:stream").verb).toBe("stream");
    expect(compilePathTemplate("/v3/{name=runs/*}:cancel").verb).toBe("cancel");
    expect(compilePathTemplate("/v3/routes:explain").verb).toBe("explain");
  });

  it("does not take a colon inside a variable or before the last segment for a verb", () => {
    expect(compilePathTemplate("/v1/{name=a:b}").verb).toBeUndefined();
    expect(compilePathTemplate("/v1/a:b/c").verb).toBeUndefined();
  });
});

describe("literal segments", () => {
  it("match exactly and capture nothing", () => {
    expect(vars("/v3/runs", "/v3/runs")).toEqual({});
    expect(vars("/v3/agents", "/v3/agents")).toEqual({});
  });

  it("do not match another literal", () => {
    expect(vars("/v3/runs", "/v3/agents")).toBeUndefined();
    expect(vars("/v3/runs", "/v2/runs")).toBeUndefined();
  });

  it("are case-sensitive", () => {
    expect(vars("/v3/runs", "/v3/Runs")).toBeUndefined();
  });

  it("reject extra and missing segments", () => {
    expect(vars("/v3/runs", "/v3/runs/abc")).toBeUndefined();
    expect(vars("/v3/runs", "/v3")).toBeUndefined();
    expect(vars("/v3/runs", "/v3/runs/")).toBeUndefined();
  });

  it("reject a path that does not start with a slash", () => {
    expect(vars("/v3/runs", "v3/runs")).toBeUndefined();
  });

  it("match a percent-encoded path segment against its decoded literal", () => {
    expect(vars("/v3/runs", "/v3/%72uns")).toEqual({});
  });
});

describe("variables", () => {
  it("{field} captures one segment", () => {
    expect(vars("/v1/shelves/{shelf}", "/v1/shelves/s1")).toEqual({ shelf: "s1" });
  });

  it("{field} is {field=*}: it does not capture several segments", () => {
    expect(vars("/v1/shelves/{shelf}", "/v1/shelves/s1/books")).toBeUndefined();
    expect(vars("/v1/shelves/{shelf=*}", "/v1/shelves/s1")).toEqual({ shelf: "s1" });
  });

  it("{field=pattern} with * captures the literal prefix and the segment", () => {
    expect(vars("/v3/{name=runs/*}", "/v3/runs/abc")).toEqual({ name: "runs/abc" });
    expect(vars("/api/{name=icps/*}", "/api/icps/123")).toEqual({ name: "icps/123" });
  });

  it("{field=pattern} requires the pattern's literals", () => {
    expect(vars("/v3/{name=runs/*}", "/v3/agents/abc")).toBeUndefined();
    expect(vars("/v3/{name=runs/*}", "/v3/runs")).toBeUndefined();
    expect(vars("/v3/{name=runs/*}", "/v3/runs/abc/def")).toBeUndefined();
  });

  it("several variables are captured independently", () => {
    expect(vars("/v1/shelves/{shelf}/books/{book}", "/v1/shelves/s1/books/b2")).toEqual({ shelf: "s1", book: "b2" });
  });

  it("nested field paths keep their dotted name", () => {
    expect(vars("/v1/{book.name=shelves/*/books/*}", "/v1/shelves/s1/books/b2")).toEqual({
      "book.name": "shelves/s1/books/b2",
    });
    expect(vars("/api/{icp.name=icps/*}", "/api/icps/123")).toEqual({ "icp.name": "icps/123" });
  });

  it("a nested variable with a multi-segment pattern does not match a partial path", () => {
    expect(vars("/v1/{book.name=shelves/*/books/*}", "/v1/shelves/s1/books")).toBeUndefined();
    expect(vars("/v1/{book.name=shelves/*/books/*}", "/v1/shelves/s1/authors/a1")).toBeUndefined();
  });
});

describe("wildcards", () => {
  it("* outside a variable matches one segment without capturing it", () => {
    expect(vars("/v1/*/books", "/v1/s1/books")).toEqual({});
    expect(vars("/v1/*/books", "/v1/s1/s2/books")).toBeUndefined();
  });

  it("* does not match an empty segment", () => {
    expect(vars("/v1/*/books", "/v1//books")).toBeUndefined();
    expect(vars("/v1/shelves/{shelf}", "/v1/shelves/")).toBeUndefined();
    expect(vars("/v1/{a}/{b}", "/v1//b")).toBeUndefined();
    expect(vars("/v3/{name=runs/*}", "/v3/runs/")).toBeUndefined();
  });

  it("{field=**} captures every remaining segment", () => {
    expect(vars("/v1/{path=**}", "/v1/a/b/c")).toEqual({ path: "a/b/c" });
    expect(vars("/v1/{path=**}", "/v1/a")).toEqual({ path: "a" });
  });

  it("{field=prefix/**} captures the prefix and the rest, including zero segments", () => {
    expect(vars("/v1/{name=shelves/**}", "/v1/shelves/s1/books/b2")).toEqual({ name: "shelves/s1/books/b2" });
    expect(vars("/v1/{name=shelves/**}", "/v1/shelves")).toEqual({ name: "shelves" });
    expect(vars("/v1/{name=shelves/**}", "/v1/books/b2")).toBeUndefined();
  });

  it("a single-segment variable before a ** variable gets exactly one segment", () => {
    expect(vars("/v1/{a=*}/{b=**}", "/v1/x/y/z")).toEqual({ a: "x", b: "y/z" });
  });
});

describe("custom verbs", () => {
  it("/v3/runs:stream matches only the path with the verb", () => {
    expect(vars("/v3/runs:stream", "/v3/runs:stream")).toEqual({});
    expect(vars("/v3/runs:stream", "/v3/runs")).toBeUndefined();
    expect(vars("/v3/runs:stream", "/v3/runs:cancel")).toBeUndefined();
  });

  it("/v3/runs does not match the path with a verb", () => {
    expect(vars("/v3/runs", "/v3/runs:stream")).toBeUndefined();
  });

  it("a verb after a variable leaves the verb out of the variable", () => {
    expect(vars("/v3/{name=runs/*}:cancel", "/v3/runs/abc:cancel")).toEqual({ name: "runs/abc" });
    expect(vars("/v1/{name}:publish", "/v1/abc:publish")).toEqual({ name: "abc" });
  });

  it("a verb template does not match the path without the verb or with another verb", () => {
    expect(vars("/v3/{name=runs/*}:cancel", "/v3/runs/abc")).toBeUndefined();
    expect(vars("/v3/{name=runs/*}:cancel", "/v3/runs/abc:stream")).toBeUndefined();
  });
});

describe("percent-decoding", () => {
  it("a single-segment variable decodes every escape, %2F included", () => {
    expect(vars("/v1/{name}", "/v1/a%2Fb")).toEqual({ name: "a/b" });
    expect(vars("/v1/{name}", "/v1/a%2fb")).toEqual({ name: "a/b" });
    expect(vars("/v1/{name}", "/v1/hello%20world")).toEqual({ name: "hello world" });
    expect(vars("/v1/{name}", "/v1/a%3Ab")).toEqual({ name: "a:b" });
    expect(vars("/v1/{name}", "/v1/caf%C3%A9")).toEqual({ name: "café" });
  });

  it("a multi-segment variable keeps %2F encoded and decodes the rest", () => {
    expect(vars("/v1/{name=**}", "/v1/a%2Fb/c%20d")).toEqual({ name: "a%2Fb/c d" });
    expect(vars("/v3/{name=runs/*}", "/v3/runs/a%2Fb")).toEqual({ name: "runs/a%2Fb" });
    expect(vars("/v1/{icp.name=icps/*}", "/v1/icps/a%20b")).toEqual({ "icp.name": "icps/a b" });
  });

  it("an encoded slash is not a segment separator", () => {
    expect(vars("/v3/{name=runs/*}", "/v3/runs%2Fabc")).toBeUndefined();
    expect(vars("/v1/shelves/{shelf}", "/v1/shelves/s1%2Fbooks")).toEqual({ shelf: "s1/books" });
  });
});

describe("malformed templates", () => {
  const malformed: Array<[string, string]> = [
    ["v3/runs", "no leading slash"],
    ["/v3/{name", "unclosed variable"],
    ["/v3/name}", "stray closing brace"],
    ["/v3//runs", "empty segment"],
    ["/v3/runs/", "trailing slash"],
    ["/", "no segment"],
    ["/v3/{1name}", "field path starting with a digit"],
    ["/v3/{a.}", "field path ending with a dot"],
    ["/v3/{}", "empty field path"],
    ["/v3/{name=}", "empty variable pattern"],
    ["/v3/{a={b}}", "variable inside a variable"],
    ["/v3/{a=b=c}", "two = in a variable"],
    ["/v3/a=b", "= in a literal"],
    ["/v3/{a}x", "text after a variable in the same segment"],
    ["/v3/:verb", "verb without a segment"],
  ];
  for (const [template, why] of malformed) {
    it(`throws on ${JSON.stringify(template)} (${why}) and names the template`, () => {
      expect(() => compilePathTemplate(template)).toThrowError(template);
    });
  }

  it("accepts every template of the contracts", () => {
    for (const t of [
      "/v3/runs",
      "/v3/runs:stream",
      "/v3/{name=runs/*}",
      "/v3/routes:explain",
      "/v3/agents",
      "/api/icps",
      "/v1/icps",
      "/api/{name=icps/*}",
      "/v1/{name=icps/*}",
      "/api/{icp.name=icps/*}",
      "/v1/{icp.name=icps/*}",
    ]) {
      expect(compilePathTemplate(t).source).toBe(t);
    }
  });
});

describe("spec corner cases", () => {
  it("keeps %2f and %2F exactly as sent in multi-segment variables", () => {
    expect(vars("/v1/{name=**}", "/v1/a%2fb")).toEqual({ name: "a%2fb" });
    expect(vars("/v1/{name=**}", "/v1/a%2Fb/c")).toEqual({ name: "a%2Fb/c" });
  });

  it("rejects ** anywhere but last, and an empty verb", () => {
    expect(() => compilePathTemplate("/v1/{name=**}/x")).toThrow(/\/v1\/\{name=\*\*\}\/x/);
    expect(() => compilePathTemplate("/v1/**/x")).toThrow(/must be the last segment/);
    expect(() => compilePathTemplate("/v1/runs:")).toThrow(/bad verb/);
  });

  it("matches a percent-encoded literal against its decoded and encoded forms", () => {
    expect(vars("/v1/a%2Bb", "/v1/a%2Bb")).toEqual({});
    expect(vars("/v1/a%2Bb", "/v1/a+b")).toEqual({});
    expect(vars("/v1/a%2Bb", "/v1/a%2bb")).toEqual({});
  });
});

import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { startLoopbackBedrock, type LoopbackBedrock } from "../../test/support/bedrock-loopback.js";
import { providerFromEnv } from "./provider-from-env.js";

let bedrock: LoopbackBedrock;
beforeAll(async () => {
  bedrock = await startLoopbackBedrock();
});
afterAll(async () => {
  await bedrock.close();
});
afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

const req = { system: "s", prompt: "## Request\nhello", tier: "fast" as const, outputKeys: ["a"] };

describe("providerFromEnv", () => {
  it("defaults to the offline provider, and names every supported provider when given another", () => {
    expect(providerFromEnv({}).name).toBe("offline");
    expect(() => providerFromEnv({ LLM_PROVIDER: "watson" })).toThrow('LLM_PROVIDER="watson" is not supported; supported: offline, openai, vertex, bedrock');
  });

  it("builds Vertex AI from the environment alone, with Gemini defaults per tier", () => {
    const vertex = providerFromEnv({ LLM_PROVIDER: "vertex", GOOGLE_CLOUD_PROJECT: "raptor-prod" });
    expect(vertex.name).toBe("vertex");
    expect(vertex.model("fast")).toBe("gemini-2.5-flash");
    expect(vertex.model("capable")).toBe("gemini-2.5-pro");
    const custom = providerFromEnv({
      LLM_PROVIDER: "vertex",
      GOOGLE_CLOUD_PROJECT: "raptor-prod",
      VERTEX_LOCATION: "europe-west4",
      VERTEX_MODEL_FAST: "gemini-2.5-flash-lite",
      VERTEX_MODEL_CAPABLE: "gemini-3-pro-preview",
      VERTEX_API_ENDPOINT: "europe-west4-aiplatform.googleapis.com",
      VERTEX_TIMEOUT_MS: "30000",
    });
    expect(custom.model("fast")).toBe("gemini-2.5-flash-lite");
    expect(custom.model("capable")).toBe("gemini-3-pro-preview");
  });

  it("fails at start-up naming what Vertex AI is missing or cannot use", () => {
    expect(() => providerFromEnv({ LLM_PROVIDER: "vertex" })).toThrow(/LLM_PROVIDER=vertex needs GOOGLE_CLOUD_PROJECT/);
    expect(() => providerFromEnv({ LLM_PROVIDER: "vertex", GOOGLE_CLOUD_PROJECT: "p", VERTEX_API_ENDPOINT: "https://x.example" })).toThrow(/VERTEX_API_ENDPOINT is a host name/);
    expect(() => providerFromEnv({ LLM_PROVIDER: "vertex", GOOGLE_CLOUD_PROJECT: "p", VERTEX_TIMEOUT_MS: "soon" })).toThrow(/VERTEX_TIMEOUT_MS must be a positive whole number/);
  });

  it("builds Bedrock from the environment alone, with Claude defaults per tier and AWS_DEFAULT_REGION as a fallback", () => {
    const b = providerFromEnv({ LLM_PROVIDER: "bedrock", AWS_REGION: "us-west-2" });
    expect(b.name).toBe("bedrock");
    expect(b.model("fast")).toBe("global.anthropic.claude-haiku-4-5-20251001-v1:0");
    expect(b.model("capable")).toBe("global.anthropic.claude-sonnet-4-5-20250929-v1:0");
    const custom = providerFromEnv({ LLM_PROVIDER: "bedrock", AWS_DEFAULT_REGION: "eu-central-1", BEDROCK_MODEL_FAST: "eu.amazon.nova-lite-v1:0", BEDROCK_MODEL_CAPABLE: "eu.anthropic.claude-sonnet-4-5-20250929-v1:0" });
    expect(custom.model("fast")).toBe("eu.amazon.nova-lite-v1:0");
    expect(custom.model("capable")).toBe("eu.anthropic.claude-sonnet-4-5-20250929-v1:0");
  });

  it("fails at start-up naming what Bedrock is missing or cannot use", () => {
    expect(() => providerFromEnv({ LLM_PROVIDER: "bedrock" })).toThrow(/LLM_PROVIDER=bedrock needs AWS_REGION \(or AWS_DEFAULT_REGION\)/);
    expect(() => providerFromEnv({ LLM_PROVIDER: "bedrock", AWS_REGION: "us-east-1", BEDROCK_ENDPOINT: "not a url" })).toThrow(/BEDROCK_ENDPOINT must be a URL/);
    expect(() => providerFromEnv({ LLM_PROVIDER: "bedrock", AWS_REGION: "us-east-1", BEDROCK_TIMEOUT_MS: "0" })).toThrow(/BEDROCK_TIMEOUT_MS must be a positive whole number/);
  });

  it("signs Bedrock calls with credentials from the standard AWS chain (here the environment) for the configured region", async () => {
    vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIDFROMENV");
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", "secret-from-env");
    const b = providerFromEnv({ LLM_PROVIDER: "bedrock", AWS_REGION: "eu-west-1", BEDROCK_ENDPOINT: bedrock.endpoint });
    const res = await b.complete(req);
    expect(JSON.parse(res.text)).toEqual({ a: "loopback a" });
    expect(bedrock.requests.at(-1)?.authorization).toMatch(/Credential=AKIDFROMENV\/\d{8}\/eu-west-1\/bedrock\/aws4_request/);
  });

  it("builds a fallback chain from LLM_PROVIDER=bedrock,offline: offline answers when Bedrock is down", async () => {
    vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIDFROMENV");
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", "secret-from-env");
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const env = { LLM_PROVIDER: "bedrock,offline", AWS_REGION: "us-east-1", BEDROCK_ENDPOINT: bedrock.endpoint };
    const chain = providerFromEnv(env);
    expect(chain.name).toBe("bedrock>offline");
    expect(chain.model("fast")).toBe("global.anthropic.claude-haiku-4-5-20251001-v1:0");
    expect((await chain.complete(req)).provider).toBe("bedrock");
    bedrock.script(...Array.from({ length: 3 }, () => ({ kind: "error" as const, status: 503, type: "ServiceUnavailableException" })));
    const res = await chain.complete(req);
    expect(res.provider).toBe("offline");
    expect(warn).toHaveBeenCalledWith(expect.stringMatching(/^bedrock failed .* trying offline$/));
    expect(() => providerFromEnv({ LLM_PROVIDER: "bedrock,offline" })).toThrow(/AWS_REGION/);
  });
});

import type { Readable } from "node:stream";

/** readBody reads a request body (HTTP/1 or HTTP/2) as text. */
export function readBody(req: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    let s = "";
    req.on("data", (d: Buffer) => (s += d.toString()));
    req.on("end", () => resolve(s));
    req.on("error", reject);
  });
}

/** defaultAnswer is a JSON object holding every key the JSON Schema at the end of a system prompt requires, as `loopback <key>`. */
export function defaultAnswer(system: string): string {
  const start = system.indexOf("{", system.lastIndexOf("JSON Schema"));
  let keys: string[] = [];
  try {
    keys = (JSON.parse(system.slice(start)) as { required?: string[] }).required ?? [];
  } catch {
    // No schema: an empty object.
  }
  return JSON.stringify(Object.fromEntries(keys.map((k) => [k, `loopback ${k}`])));
}

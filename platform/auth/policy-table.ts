import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { DescService } from "@bufbuild/protobuf";
import { accessPolicyOf } from "./access-policy.js";
import { roles } from "./roles.js";

const genRoot = join(import.meta.dirname, "..", "..", "gen", "raptorflow");

/**
 * contractServices loads every service of RaptorFlow's contracts
 * (`gen/raptorflow/**`), sorted by name: what the policy test and the
 * authorization matrix walk, so a new service cannot be forgotten.
 */
export async function contractServices(): Promise<DescService[]> {
  const files = readdirSync(genRoot, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith("_pb.ts"));
  const services = new Map<string, DescService>();
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(genRoot, f.replace(/\.ts$/, ".js"))).href)) as Record<string, unknown>;
    for (const v of Object.values(mod)) {
      const d = v as { kind?: string; typeName?: string };
      if (d?.kind === "service" && d.typeName) services.set(d.typeName, v as DescService);
    }
  }
  return [...services.values()].sort((a, b) => a.typeName.localeCompare(b.typeName));
}

/** isTestContract tells the contracts that only tests serve (the gateway's conformance service). */
export function isTestContract(service: DescService): boolean {
  return service.typeName.startsWith("raptorflow.conformance.");
}

/**
 * policyTable renders who may call each RPC as a Markdown table: one row per
 * service and group of methods with one policy, a column per role and one
 * for calls without a token. docs/security.md carries it; a test keeps the
 * two equal.
 */
export function policyTable(services: readonly DescService[]): string {
  const head = `| service | methods | ${roles.join(" | ")} | no token |`;
  const rule = `|---|---|${roles.map(() => ":-:|").join("")}:-:|`;
  const rows: string[] = [];
  for (const service of services) {
    const groups = new Map<string, string[]>();
    for (const m of service.methods) {
      const p = accessPolicyOf(m);
      const cells = p ? [...roles.map((r) => (p.public || p.roles.has(r) ? "✓" : "")), p.public ? "✓" : ""] : [...roles.map(() => "?"), "?"];
      const key = cells.join(" | ");
      groups.set(key, [...(groups.get(key) ?? []), m.name]);
    }
    let first = true;
    for (const [cells, methods] of groups) {
      rows.push(`| ${first ? `\`${service.typeName}\`` : ""} | ${methods.join(", ")} | ${cells} |`);
      first = false;
    }
  }
  return [head, rule, ...rows].join("\n");
}

// `npx tsx platform/auth/policy-table.ts` prints the table for docs/security.md.
if (process.argv[1] && resolve(process.argv[1]) === import.meta.filename) {
  console.log(policyTable((await contractServices()).filter((s) => !isTestContract(s))));
}

import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { beforeAll, describe, expect, it } from "vitest";
import { accessPolicyOf, isPublicMethod } from "./access-policy.js";
import { contractServices, isTestContract, policyTable } from "./policy-table.js";

let services: DescService[];
beforeAll(async () => {
  services = await contractServices();
});

describe("the access policies of the contracts", () => {
  it("finds every service of the contracts", () => {
    const names = services.map((s) => s.typeName);
    for (const n of ["raptorflow.v3.OrchestratorService", "raptorflow.agent.v1.AgentService", "raptorflow.identity.v1.IdentityService", "raptorflow.v1.IcpService", "raptorflow.v2.MemoryService"]) {
      expect(names).toContain(n);
    }
    expect(services.reduce((n, s) => n + s.methods.length, 0)).toBeGreaterThan(100);
  });

  it("declares who may call on every RPC of every service: (raptorflow.api.v1.policy)", () => {
    const missing = services.flatMap((s) => s.methods.filter((m) => !accessPolicyOf(m)).map((m) => `${s.typeName}/${m.name}`));
    expect(missing).toEqual([]);
  });

  it("keeps public methods to the ones that must be (signing in, refreshing, signing out, the public keys) and lets admins call every other one", () => {
    const product = services.filter((s) => !isTestContract(s));
    const publicMethods = product.flatMap((s) => s.methods.filter(isPublicMethod).map((m) => `${s.typeName}/${m.name}`));
    expect(publicMethods.sort()).toEqual([
      "raptorflow.identity.v1.IdentityService/CreateToken",
      "raptorflow.identity.v1.IdentityService/GetJsonWebKeySet",
      "raptorflow.identity.v1.IdentityService/RefreshToken",
      "raptorflow.identity.v1.IdentityService/RevokeToken",
    ]);
    for (const s of product) {
      for (const m of s.methods) {
        const p = accessPolicyOf(m)!;
        if (p.public) expect(p.roles.size, `${m.name} is public and lists roles`).toBe(0);
        else expect(p.roles.has("admin"), `${s.typeName}/${m.name} leaves out admin`).toBe(true);
      }
    }
  });

  it("keeps agents internal: only the orchestrator's service identity (and admins) call AgentService", () => {
    const agentService = services.find((s) => s.typeName === "raptorflow.agent.v1.AgentService")!;
    for (const m of agentService.methods) expect([...accessPolicyOf(m)!.roles].sort()).toEqual(["admin", "service"]);
  });

  it("is the table docs/security.md shows (print it with `npx tsx platform/auth/policy-table.ts`)", () => {
    const doc = readFileSync(join(import.meta.dirname, "..", "..", "docs", "security.md"), "utf8");
    const start = doc.indexOf("<!-- policy-table:start -->");
    const end = doc.indexOf("<!-- policy-table:end -->");
    expect(start, "docs/security.md has the policy-table markers").toBeGreaterThan(0);
    const shown = doc.slice(start + "<!-- policy-table:start -->".length, end).trim();
    expect(shown).toBe(policyTable(services.filter((s) => !isTestContract(s))));
  });
});

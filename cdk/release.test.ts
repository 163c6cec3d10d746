import { App } from "aws-cdk-lib";
import { describe, expect, it } from "vitest";
import { configFromContext, contextPrefix, defaultConfig, slotWeights, type ReleaseState } from "./config.js";
import { runRelease, type ReleaseIo } from "./release.js";
import { releasePlan } from "./release-plan.js";

/** fakeIo records every deployment; the alarm fires when `firesAt` says so. */
function fakeIo(current: ReleaseState | undefined, options: { firesAt?: (deployed: ReleaseState) => boolean; failDeploy?: (s: ReleaseState) => boolean } = {}) {
  const deployed: ReleaseState[] = [];
  const io: ReleaseIo = {
    currentRelease: async () => current,
    deploy: async (state) => {
      if (options.failDeploy?.(state)) throw new Error("stack update failed");
      deployed.push(state);
    },
    alarmFiring: async () => (deployed.length > 0 && options.firesAt ? options.firesAt(deployed.at(-1)!) : false),
    sleep: async () => undefined,
    log: () => undefined,
  };
  return { io, deployed };
}

const live: ReleaseState = { live: "blue", tags: { blue: "v1" }, candidateWeight: 0 };

describe("a blue/green release with App Mesh", () => {
  it("starts the new tag on the idle slot, moves 10% -> 50% -> 100%, then makes it live", async () => {
    // GIVEN v1 live on blue, WHEN v2 is released with no alarm
    const { io, deployed } = fakeIo(live);
    const result = await runRelease({ provider: "appmesh", tag: "v2", bakeMinutes: 1, pollSeconds: 30 }, io);
    // THEN the weights walk the plan and green ends up live alone
    expect(deployed.map((s) => s.candidateWeight)).toEqual([0, ...releasePlan.steps, 0]);
    expect(deployed.slice(0, -1).every((s) => s.tags.blue === "v1" && s.tags.green === "v2" && s.live === "blue")).toBe(true);
    expect(result).toEqual({ outcome: "released", state: { live: "green", tags: { green: "v2" }, candidateWeight: 0 } });
    expect(releasePlan.steps).toEqual([10, 50, 100]);
  });

  it("rolls every route back to the live slot when the release alarm fires", async () => {
    // GIVEN the alarm fires once 50% of the traffic reaches v2
    const { io, deployed } = fakeIo(live, { firesAt: (s) => s.candidateWeight >= 50 });
    const result = await runRelease({ provider: "appmesh", tag: "v2", bakeMinutes: 1 }, io);
    // THEN the last deployment is v1 alone on blue
    expect(deployed.map((s) => s.candidateWeight)).toEqual([0, 10, 50, 0]);
    expect(result.outcome).toBe("rolled-back");
    expect(deployed.at(-1)).toEqual(live);
  });

  it("rolls back when a deployment fails half way", async () => {
    const { io, deployed } = fakeIo(live, { failDeploy: (s) => s.candidateWeight === 50 });
    const result = await runRelease({ provider: "appmesh", tag: "v2", bakeMinutes: 0 }, io);
    expect(result.outcome).toBe("rolled-back");
    expect(deployed.at(-1)).toEqual(live);
  });

  it("releases from green to blue just as well, and does nothing when the tag is already live", async () => {
    const onGreen: ReleaseState = { live: "green", tags: { green: "v2" }, candidateWeight: 0 };
    const { io } = fakeIo(onGreen);
    expect((await runRelease({ provider: "appmesh", tag: "v3", bakeMinutes: 0 }, io)).state).toEqual({ live: "blue", tags: { blue: "v3" }, candidateWeight: 0 });
    const same = fakeIo(onGreen);
    expect((await runRelease({ provider: "appmesh", tag: "v2" }, same.io)).outcome).toBe("unchanged");
    expect(same.deployed).toEqual([]);
  });

  it("puts the first deployment on blue", async () => {
    const { io, deployed } = fakeIo(undefined);
    await runRelease({ provider: "appmesh", tag: "v1" }, io);
    expect(deployed).toEqual([live]);
  });
});

describe("a release with Service Connect", () => {
  it("deploys the tag once on the live slot: ECS runs the canary and its alarm rollback", async () => {
    const { io, deployed } = fakeIo(live);
    const result = await runRelease({ provider: "serviceconnect", tag: "v2" }, io);
    expect(deployed).toEqual([{ live: "blue", tags: { blue: "v2" }, candidateWeight: 0 }]);
    expect(result.outcome).toBe("released");
  });

  it("reports a rollback when ECS (and so the stack update) rolled back", async () => {
    const { io } = fakeIo(live, { failDeploy: () => true });
    expect(await runRelease({ provider: "serviceconnect", tag: "v2" }, io)).toEqual({ outcome: "rolled-back", state: live });
  });
});

describe("the release state in CDK context", () => {
  it("reads it from -c (a JSON string) over cdk.json's environments, and splits the traffic by it", () => {
    const app = new App({
      context: {
        [`${contextPrefix}envName`]: "production",
        [`${contextPrefix}environments`]: { production: { domainName: "api.example.org", meshProvider: "serviceconnect" } },
        [`${contextPrefix}release`]: JSON.stringify({ live: "green", tags: { green: "v7", blue: "v8" }, candidateWeight: 50 }),
      },
    });
    const config = configFromContext(app.node);
    expect(config.envName).toBe("production");
    expect(config.domainName).toBe("api.example.org");
    expect(config.internalDomainName).toBe(defaultConfig.internalDomainName);
    expect(slotWeights(config.release)).toEqual([
      { slot: "green", weight: 50 },
      { slot: "blue", weight: 50 },
    ]);
  });
});

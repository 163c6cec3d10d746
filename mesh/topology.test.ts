import { describe, expect, it } from "vitest";
import { callersOf, envPrefix, exposureOf, healthCheckOf, isServiceName, listenPort, metricsListenPort, metricsPortOf, serviceNames, topology, upstreamAddress } from "./topology.js";

describe("the topology", () => {
  it("lists every service once in serviceNames, upstreams before their callers", () => {
    expect([...serviceNames].sort()).toEqual(Object.keys(topology).sort());
    for (const [i, name] of serviceNames.entries()) {
      expect(topology[name].name).toBe(name);
      for (const u of topology[name].upstreams) expect(serviceNames.indexOf(u), `${u} before ${name}`).toBeLessThan(i);
    }
  });

  it("gives every service its own port and a sane scaling range", () => {
    const ports = serviceNames.map((n) => topology[n].port);
    expect(new Set(ports).size).toBe(ports.length);
    for (const name of serviceNames) {
      const { scaling, callPolicy } = topology[name];
      expect(scaling.minTasks, name).toBeGreaterThanOrEqual(1);
      expect(scaling.maxTasks, name).toBeGreaterThanOrEqual(scaling.minTasks);
      expect(scaling.cpu).toBeGreaterThan(0);
      expect(scaling.memoryMiB).toBeGreaterThan(0);
      expect(callPolicy.timeoutMs).toBeGreaterThan(0);
      expect(callPolicy.retry.maxAttempts).toBeGreaterThanOrEqual(1);
    }
  });

  it("holds the seed's scaling table", () => {
    expect(topology.orchestrator.scaling).toMatchObject({ minTasks: 2, maxTasks: 20, cpu: 1024, memoryMiB: 2048, spot: false });
    expect(topology["v1-agents"].scaling).toMatchObject({ minTasks: 1, maxTasks: 10, cpu: 512, memoryMiB: 1024, spot: false });
    expect(topology["v2-agents"].scaling).toMatchObject({ minTasks: 3, maxTasks: 50, cpu: 512, memoryMiB: 1024, spot: true });
    expect(topology.gateway.scaling).toMatchObject({ minTasks: 2, maxTasks: 15, cpu: 512, memoryMiB: 1024, spot: false });
  });

  it("probes gRPC services with grpc.health.v1 unless they say otherwise, and HTTP services on a path", () => {
    for (const name of serviceNames) {
      const spec = topology[name];
      const health = healthCheckOf(spec);
      if (spec.protocol === "grpc" && !spec.health) expect(health.kind).toBe("grpc");
      if (health.kind === "http") expect(health.path).toMatch(/^\//);
      expect(health.timeoutSeconds).toBeLessThan(health.intervalSeconds);
    }
  });

  it("exposes at most one service to the internet, and knows who calls whom", () => {
    expect(serviceNames.filter((n) => exposureOf(topology[n]) === "public").length).toBeLessThanOrEqual(1);
    for (const name of serviceNames) {
      for (const caller of callersOf(name)) expect(topology[caller].upstreams).toContain(name);
    }
  });

  it("reads ports and addresses from the environment, failing on a bad port", () => {
    const name = serviceNames[0];
    expect(isServiceName(name)).toBe(true);
    expect(isServiceName("nope")).toBe(false);
    expect(listenPort(name, {})).toBe(topology[name].port);
    expect(listenPort(name, { [`${envPrefix(name)}_PORT`]: "0" })).toBe(0);
    expect(() => listenPort(name, { [`${envPrefix(name)}_PORT`]: "x" })).toThrow(`${envPrefix(name)}_PORT`);
    expect(upstreamAddress(name, { [`${envPrefix(name)}_ADDR`]: "svc:1" })).toBe("svc:1");
    expect(upstreamAddress(name, {})).toBe(`127.0.0.1:${topology[name].port}`);
  });

  it("gives every service a metrics port of its own, apart from every service port", () => {
    const ports = serviceNames.flatMap((n) => [topology[n].port, metricsPortOf(topology[n])]);
    expect(new Set(ports).size).toBe(ports.length);
    const name = serviceNames[0];
    const key = `${envPrefix(name)}_METRICS_PORT`;
    expect(metricsListenPort(name, {})).toBe(metricsPortOf(topology[name]));
    expect(metricsListenPort(name, { [`${envPrefix(name)}_PORT`]: "0" })).toBe(0);
    expect(metricsListenPort(name, { [key]: "9999" })).toBe(9999);
    expect(() => metricsListenPort(name, { [key]: "nope" })).toThrow(key);
  });
});

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { launchMesh, stopMesh, type LaunchOptions, type StartedService } from "../../mesh/local-runner.js";
import type { ServiceName } from "../../mesh/topology.js";

/** TestMesh is the whole mesh running as real processes on free ports. */
export interface TestMesh {
  /** services are the child processes. */
  readonly services: readonly StartedService[];
  /** address returns `127.0.0.1:<port>` of a service. */
  address(name: ServiceName): string;
  /** url returns the gateway's base URL. */
  readonly gatewayUrl: string;
  /** rest sends a JSON request to the gateway as a REST client would and returns the status and the parsed body. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  rest(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }>;
  /** stop stops every process. */
  stop(): Promise<void>;
}

/** startTestMesh launches the services exactly as `raptorflow start` does, on ports the OS picks. */
export async function startTestMesh(env: Record<string, string> = {}, options: LaunchOptions = {}): Promise<TestMesh> {
  // Each mesh gets its own data folder: embedded databases are one process's each.
  const dataDir = mkdtempSync(join(tmpdir(), "raptorflow-mesh-"));
  const services = await launchMesh({
    ...process.env,
    NODE_ENV: "test",
    RAPTORFLOW_DATA_DIR: dataDir,
    GATEWAY_PORT: "0",
    ORCHESTRATOR_PORT: "0",
    V1_AGENTS_PORT: "0",
    V2_AGENTS_PORT: "0",
    IDENTITY_PORT: "0",
    ...env,
  }, options);
  const address = (name: ServiceName): string => `127.0.0.1:${services.find((s) => s.name === name)!.port}`;
  const gatewayUrl = `http://${address("gateway")}`;
  return {
    services,
    address,
    gatewayUrl,
    async rest(method, path, body) {
      const res = await fetch(`${gatewayUrl}${path}`, {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, json: text ? JSON.parse(text) : undefined };
    },
    async stop() {
      await stopMesh(services);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

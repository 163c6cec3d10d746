import { parseArgs } from "node:util";
import { isServiceName, serviceNames } from "../mesh/topology.js";
import { serve } from "../mesh/serve.js";
import { startMesh } from "../mesh/local-runner.js";

const usage = `Usage: raptorflow <command> [options]

Commands:
  start              run the whole mesh on this machine (embedded defaults)
  serve <service>    run one service: ${serviceNames.join(", ")}
  migrate            apply database migrations
  help [command]     show help

Run "raptorflow <command> --help" for a command's options.`;

const help: Record<string, string> = {
  start: `Usage: raptorflow start

Runs every service of the mesh as its own process, each on its own port, and
prints where each listens. Ports come from GATEWAY_PORT, ORCHESTRATOR_PORT,
V1_AGENTS_PORT and V2_AGENTS_PORT (defaults 8080, 50051, 50052, 50053; 0 picks
a free port). Stops every service on Ctrl-C or SIGTERM.`,
  serve: `Usage: raptorflow serve <service>

Runs one service in this process, as a container does. <service> is one of:
${serviceNames.join(", ")}. The port is <SERVICE>_PORT (for example
ORCHESTRATOR_PORT); upstreams are found at <SERVICE>_ADDR (host:port) or on
127.0.0.1 at their port.`,
  migrate: `Usage: raptorflow migrate

Applies database migrations. The embedded default keeps runs and records in
memory for now, so there is nothing to apply yet; the data layer adds
PostgreSQL migrations here.`,
};

/** main runs the command line and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    const topic = rest[0];
    console.log(topic && help[topic] ? help[topic] : usage);
    return 0;
  }
  if (!Object.hasOwn(help, command)) {
    console.error(`raptorflow: unknown command "${command}"\n\n${usage}`);
    return 2;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: { help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true });
  } catch (e) {
    console.error(`raptorflow ${command}: ${(e as Error).message}\n\n${help[command]}`);
    return 2;
  }
  if (parsed.values.help) {
    console.log(help[command]);
    return 0;
  }
  const positionals = parsed.positionals;
  try {
    switch (command) {
      case "start":
        if (positionals.length) return bad(command, `unexpected argument "${positionals[0]}"`);
        return await startMesh();
      case "serve": {
        const name = positionals[0];
        if (!name) return bad(command, "missing <service>");
        if (!isServiceName(name)) return bad(command, `unknown service "${name}"; one of: ${serviceNames.join(", ")}`);
        if (positionals.length > 1) return bad(command, `unexpected argument "${positionals[1]}"`);
        return await serve(name);
      }
      case "migrate":
        if (positionals.length) return bad(command, `unexpected argument "${positionals[0]}"`);
        console.log("migrate: nothing to apply (the embedded default keeps state in memory; no database is configured)");
        return 0;
    }
  } catch (e) {
    console.error(`raptorflow ${command}: ${(e as Error).message}`);
    return 1;
  }
  return 0;
}

function bad(command: string, message: string): number {
  console.error(`raptorflow ${command}: ${message}\n\n${help[command]}`);
  return 2;
}

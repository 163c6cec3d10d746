import { parseArgs } from "node:util";
import { isServiceName, listenPort, serviceNames } from "../mesh/topology.js";
import { runUntilStopped, serve } from "../mesh/serve.js";
import { startMesh } from "../mesh/local-runner.js";

const usage = `Usage: raptorflow <command> [options]

Commands:
  start              run the whole mesh on this machine (embedded defaults)
  serve <service>    run one service: ${serviceNames.join(", ")}
  migrate            apply database migrations
  init               first run: create an organization and its admin, print how to get a token
  token              mint a short-lived access token with the configured signing key
  signing-key        print a new signing key set for IDENTITY_SIGNING_KEYS
  gateway            REST/Connect/gRPC-Web gateway for any gRPC service, from descriptors
  help [command]     show help

Run "raptorflow <command> --help" for a command's options.`;

const help: Record<string, string> = {
  start: `Usage: raptorflow start

Runs every service of the mesh as its own process, each on its own port, and
prints where each listens. Ports come from GATEWAY_PORT, ORCHESTRATOR_PORT,
V1_AGENTS_PORT, V2_AGENTS_PORT and IDENTITY_PORT (defaults 8080, 50051, 50052,
50053, 50054; 0 picks a free port). Stops every service on Ctrl-C or SIGTERM.`,
  serve: `Usage: raptorflow serve <service>

Runs one service in this process, as a container does. <service> is one of:
${serviceNames.join(", ")}. The port is <SERVICE>_PORT (for example
ORCHESTRATOR_PORT); upstreams are found at <SERVICE>_ADDR (host:port) or on
127.0.0.1 at their port.`,
  gateway: `Usage: raptorflow gateway [--descriptor-set <file.binpb>] --upstream <package.Service>=<url> [--upstream ...] [--port <n>]

Serves any gRPC service over REST (from its google.api.http annotations),
Connect and gRPC-Web. Descriptors come from --descriptor-set (a binary
FileDescriptorSet with its imports, e.g. "buf build -o set.binpb"), or, without
it, from each upstream's gRPC server reflection.

Options:
  --descriptor-set <file>   the descriptors; omit to use server reflection
  --upstream <svc>=<url>    a service and where it runs; <svc> "*" means every
                            service in the descriptors; <url> is http://host:port,
                            https://host:port or host:port (repeatable)
  --port <n>                the HTTP port (default GATEWAY_PORT or 8080; 0 picks one)
  --timeout-ms <n>          the default upstream deadline (default 30000)`,
  migrate: `Usage: raptorflow migrate

Applies the pending database migrations of every service that owns a schema
(today: orchestrator, v1-agents, v2-agents, identity). The database is DATABASE_URL, or, without it, each
service's embedded PostgreSQL in RAPTORFLOW_DATA_DIR (default .data). Services
also migrate at start-up unless DATABASE_MIGRATE_ON_START=false.`,
  init: `Usage: raptorflow init --email <email> [--name <organization name>] [--password-stdin]

First run: creates an organization and its first admin user in the identity
service's database (DATABASE_URL, or the embedded PostgreSQL in
RAPTORFLOW_DATA_DIR), then prints how to get a token. Nothing ships with a
default password: with --password-stdin the password is read from stdin
(printf '%s' "$PW" | raptorflow init --email ... --password-stdin), otherwise
a strong one is generated and printed once. With the embedded database, run
it while the mesh is stopped.

Options:
  --email <email>      the admin's email (required)
  --name <name>        the organization's display name (default "My organization")
  --password-stdin     read the password from stdin instead of generating one`,
  token: `Usage: raptorflow token --org <org> --role <role> [--ttl <duration>] [--subject <subject>]

Mints a short-lived access token with the configured signing key and prints
it alone on stdout, for development and scripts:
  curl -H "authorization: Bearer $(raptorflow token --org acme --role analyst)" ...
The key is the one the identity service signs with: IDENTITY_SIGNING_KEYS,
IDENTITY_SIGNING_KEYS_FILE, or in the embedded default
RAPTORFLOW_DATA_DIR/identity/keys.json (made on first use). Issuer and
audience come from AUTH_ISSUER and AUTH_AUDIENCE. Whoever can read the key
can mint any token.

Options:
  --org <org>          the organization id (as raptorflow init printed it, or "default")
  --role <role>        admin, analyst, marketer, viewer or service
  --ttl <duration>     the token's lifetime, 1s to 24h (default 15m)
  --subject <subject>  the token's subject (default services/raptorflow-cli)`,
  "signing-key": `Usage: raptorflow signing-key [--alg EdDSA|ES256]

Prints a new JWK Set with one private signing key (Ed25519 by default), for
IDENTITY_SIGNING_KEYS (or a file named by IDENTITY_SIGNING_KEYS_FILE). Keep it
in a secret store. To rotate, see docs/security.md.`,
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
    parsed = parseArgs({
      args: rest,
      options: {
        help: { type: "boolean", short: "h" },
        ...(command === "gateway"
          ? {
              "descriptor-set": { type: "string" },
              upstream: { type: "string", multiple: true },
              port: { type: "string" },
              "timeout-ms": { type: "string" },
            }
          : {}),
        ...(command === "token"
          ? { org: { type: "string" }, role: { type: "string" }, ttl: { type: "string" }, subject: { type: "string" } }
          : command === "init"
            ? { email: { type: "string" }, name: { type: "string" }, "password-stdin": { type: "boolean" } }
            : command === "signing-key"
              ? { alg: { type: "string" } }
              : {}),
      },
      allowPositionals: true,
      strict: true,
    });
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
      case "gateway": {
        if (positionals.length) return bad(command, `unexpected argument "${positionals[0]}"`);
        const v = parsed.values as Record<string, string | string[] | boolean | undefined>;
        const port = wholeNumber(command, "--port", v.port as string | undefined, listenPort("gateway"));
        const timeoutMs = wholeNumber(command, "--timeout-ms", v["timeout-ms"] as string | undefined, 30_000);
        if (port === undefined || timeoutMs === undefined) return 2;
        // Loaded here so other commands do not pay for the gateway's modules.
        const { buildStandaloneGateway, parseUpstreamFlag } = await import("../services/gateway/standalone.js");
        let upstreams;
        try {
          upstreams = ((v.upstream as string[] | undefined) ?? []).map(parseUpstreamFlag);
        } catch (e) {
          return bad(command, (e as Error).message);
        }
        if (upstreams.length === 0) return bad(command, "name at least one --upstream <package.Service>=<url>");
        return await runUntilStopped("gateway", async () => {
          const app = await buildStandaloneGateway({
            descriptorSet: v["descriptor-set"] as string | undefined,
            upstreams,
            timeoutMs,
            logger: process.env.NODE_ENV !== "test",
          });
          await app.listen({ port, host: process.env.HOST ?? "0.0.0.0" });
          const addr = app.server.address();
          return { port: typeof addr === "object" && addr ? addr.port : port, close: () => app.close() };
        });
      }
      case "init":
      case "token":
      case "signing-key": {
        if (positionals.length) return bad(command, `unexpected argument "${positionals[0]}"`);
        const commands = await import("./identity-commands.js");
        const flags = parsed.values as { org?: string; role?: string; ttl?: string; subject?: string; email?: string; name?: string; alg?: string; "password-stdin"?: boolean };
        try {
          const out = command === "token" ? await commands.tokenCommand(flags) : command === "init" ? await commands.initCommand(flags) : await commands.signingKeyCommand(flags);
          console.log(out);
        } catch (e) {
          if (e instanceof commands.UsageError) return bad(command, e.message);
          throw e;
        }
        return 0;
      }
      case "migrate": {
        if (positionals.length) return bad(command, `unexpected argument "${positionals[0]}"`);
        const { openOrchestratorDatabase } = await import("../services/orchestrator/store/open-store.js");
        const { openV1Database } = await import("../services/v1-agents/server.js");
        const { openV2Database } = await import("../services/v2-agents/server.js");
        const { openIdentityDatabase } = await import("../services/identity/store/open-store.js");
        for (const [name, open] of [
          ["orchestrator", openOrchestratorDatabase],
          ["v1-agents", openV1Database],
          ["v2-agents", openV2Database],
          ["identity", openIdentityDatabase],
        ] as const) {
          const db = await open();
          try {
            const applied = await db.migrate();
            console.log(`${name} (${db.mode}): ${applied.length ? `applied ${applied.join(", ")}` : "up to date"}`);
          } finally {
            await db.close();
          }
        }
        return 0;
      }
    }
  } catch (e) {
    console.error(`raptorflow ${command}: ${(e as Error).message}`);
    return 1;
  }
  return 0;
}

/** wholeNumber reads a flag's whole-number value; a bad one prints the problem and gives undefined. */
function wholeNumber(command: string, flag: string, raw: string | undefined, fallback: number): number | undefined {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) {
    bad(command, `${flag} must be a whole number, got "${raw}"`);
    return undefined;
  }
  return Number(raw);
}

function bad(command: string, message: string): number {
  console.error(`raptorflow ${command}: ${message}\n\n${help[command]}`);
  return 2;
}

import { connect } from "node:net";
import { text } from "node:stream/consumers";
import { Code, ConnectError } from "@connectrpc/connect";
import { isOrganizationId } from "../mesh/call-context.js";
import { listenPort } from "../mesh/topology.js";
import { authSettings } from "../platform/auth/auth-from-env.js";
import { isRole, roles } from "../platform/auth/roles.js";
import { createAccessTokenIssuer, maxAccessTokenTtlMs, parseDuration } from "../platform/auth/access-tokens.js";
import { createFirstAdmin, generatePassword } from "../services/identity/first-run.js";
import { generateSigningKey, loadSigningKeys, type SigningAlgorithm } from "../platform/auth/signing-keys.js";
import { createPgIdentityStore } from "../services/identity/store/pg-identity-store.js";
import { openIdentityDatabase } from "../services/identity/store/open-store.js";

type Env = Record<string, string | undefined>;

/** minPasswordLength is the shortest first admin password `init` takes from stdin (a generated one has 24 characters). */
const minPasswordLength = 12;

/** UsageError is a bad flag or value: the command prints it with its help and exits 2. */
export class UsageError extends Error {}

/**
 * tokenCommand is `raptorflow token`: it mints an access token with the
 * configured signing key (the one the identity service signs with) and
 * returns it, for the caller to print alone on stdout.
 */
export async function tokenCommand(flags: { org?: string; role?: string; ttl?: string; subject?: string }, env: Env = process.env): Promise<string> {
  if (!flags.org) throw new UsageError("missing --org <org>");
  if (!flags.role) throw new UsageError(`missing --role <role>: one of ${roles.join(", ")}`);
  const org = flags.org.startsWith("organizations/") ? flags.org.slice("organizations/".length) : flags.org;
  if (!isOrganizationId(org)) throw new UsageError(`--org: "${flags.org}" is not an organization id (lower-case letters, digits, -)`);
  if (!isRole(flags.role)) throw new UsageError(`--role must be one of ${roles.join(", ")}, got "${flags.role}"`);
  const ttlMs = parseDuration(flags.ttl ?? "15m");
  if (ttlMs === undefined || ttlMs < 1_000 || ttlMs > maxAccessTokenTtlMs) throw new UsageError(`--ttl must be a duration from 1s to 24h such as 15m or 1h, got "${flags.ttl}"`);
  const subject = flags.subject ?? "services/raptorflow-cli";
  if (!/^(users|apiKeys|services)\/[A-Za-z0-9._-]{1,128}$/.test(subject)) throw new UsageError(`--subject must be users/<id>, apiKeys/<id> or services/<name>, got "${subject}"`);
  const { issuer, audience } = authSettings(env);
  const keys = await loadSigningKeys(env);
  const issued = await createAccessTokenIssuer({ keys, issuer, audience, ttlMs }).issue({ subject, organization: org, role: flags.role });
  return issued.token;
}

/**
 * initCommand is `raptorflow init`: it creates an organization and its
 * first admin in the identity database and returns what to print: where
 * they are, the password when it was generated (shown this once), and how
 * to get a token.
 */
export async function initCommand(flags: { email?: string; name?: string; "password-stdin"?: boolean }, env: Env = process.env): Promise<string> {
  if (!flags.email) throw new UsageError("missing --email <email>");
  let password: string;
  let generated = false;
  if (flags["password-stdin"]) {
    password = (await text(process.stdin)).replace(/\r?\n$/, "");
    if (password.length < minPasswordLength) throw new UsageError(`--password-stdin: the password must have at least ${minPasswordLength} characters`);
  } else {
    password = generatePassword();
    generated = true;
  }
  if (!env.DATABASE_URL) await refuseWhileIdentityRuns(env);
  const db = await openIdentityDatabase(env);
  let created;
  try {
    await db.migrate();
    created = await createFirstAdmin(createPgIdentityStore(db), { email: flags.email, password, organizationName: flags.name ?? "My organization" });
  } catch (e) {
    if (!(e instanceof ConnectError)) throw e;
    // A bad email or name is a usage error; a taken email means the first run already happened.
    if (e.code === Code.InvalidArgument) throw new UsageError(e.rawMessage);
    throw new Error(e.code === Code.AlreadyExists ? `${e.rawMessage}: the first run is done; sign in with that account` : e.rawMessage);
  } finally {
    await db.close();
  }
  const { organization, user } = created;
  const gateway = `localhost:${listenPort("gateway", env)}`;
  const body = JSON.stringify({ organization: `organizations/${organization.id}`, password: { email: user.email, password: "<password>" } });
  return [
    `Created the organization "${organization.displayName}" (organizations/${organization.id}) and its admin ${user.email}.`,
    ...(generated ? ["", "Generated password, shown this once (only its scrypt hash is stored):", `  ${password}`] : []),
    "",
    "Sign in once the mesh runs (npm start):",
    `  curl -s -X POST ${gateway}/v3/tokens -H 'content-type: application/json' \\`,
    `    -d '${body}'`,
    "Or mint a short-lived token with the local signing key, for scripts:",
    `  raptorflow token --org ${organization.id} --role admin`,
  ].join("\n");
}

/** signingKeyCommand is `raptorflow signing-key`: a new JWK Set with one private key, for IDENTITY_SIGNING_KEYS. */
export async function signingKeyCommand(flags: { alg?: string }): Promise<string> {
  const alg = flags.alg ?? "EdDSA";
  if (alg !== "EdDSA" && alg !== "ES256") throw new UsageError(`--alg must be EdDSA or ES256, got "${alg}"`);
  return JSON.stringify({ keys: [await generateSigningKey(alg as SigningAlgorithm)] });
}

/**
 * refuseWhileIdentityRuns stops `init` when something answers on the
 * identity service's port: the embedded database belongs to one process at
 * a time, and two would damage it.
 */
async function refuseWhileIdentityRuns(env: Env): Promise<void> {
  const port = listenPort("identity", env);
  const open = await new Promise<boolean>((resolve) => {
    const socket = connect({ host: "127.0.0.1", port, timeout: 500 });
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
    socket.once("timeout", () => (socket.destroy(), resolve(false)));
  });
  if (open) {
    throw new Error(`the identity service seems to be running (port ${port} answers): stop the mesh first; its embedded database is one process's at a time`);
  }
}

import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";

type Env = Record<string, string | undefined>;

/**
 * MeshTls is mutual TLS between the services of the mesh, for deployments
 * without a service mesh (App Mesh, Service Connect with TLS, Istio …) doing
 * it: every server presents `cert` and asks every client for a certificate
 * signed by `ca`; every client presents `cert` and checks the server's
 * against `ca`.
 */
export interface MeshTls {
  /** ca is the PEM of the certificate authority (or bundle) that signs every service's certificate. */
  readonly ca: Buffer;
  /** cert is this service's certificate chain (PEM). */
  readonly cert: Buffer;
  /** key is its private key (PEM). */
  readonly key: Buffer;
  /** serverName, when set, is the name clients expect in every server's certificate, whatever address they dial. */
  readonly serverName?: string;
}

/**
 * meshTlsFromEnv reads mutual TLS from `MESH_TLS_CA`, `MESH_TLS_CERT` and
 * `MESH_TLS_KEY` (paths to PEM files, as a mounted secret gives them) and
 * `MESH_TLS_SERVER_NAME`; undefined when none is set (plaintext: the
 * platform's mesh encrypts). Some but not all, or a file it cannot read,
 * fails fast with the variable's name — never the file's content.
 */
export function meshTlsFromEnv(env: Env = process.env): MeshTls | undefined {
  const vars = ["MESH_TLS_CA", "MESH_TLS_CERT", "MESH_TLS_KEY"] as const;
  const set = vars.filter((v) => env[v]);
  if (set.length === 0) {
    if (env.MESH_TLS_SERVER_NAME) throw new Error("MESH_TLS_SERVER_NAME is set but MESH_TLS_CA, MESH_TLS_CERT and MESH_TLS_KEY are not");
    return undefined;
  }
  if (set.length !== vars.length) {
    throw new Error(`mutual TLS needs MESH_TLS_CA, MESH_TLS_CERT and MESH_TLS_KEY together; missing ${vars.filter((v) => !env[v]).join(", ")}`);
  }
  const [ca, cert, key] = vars.map((v) => readPem(env, v));
  return { ca, cert, key, serverName: env.MESH_TLS_SERVER_NAME || undefined };
}

/** readPem reads a PEM file named by an environment variable, failing with the variable's name. */
export function readPem(env: Env, variable: string): Buffer {
  const path = env[variable]!;
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (e) {
    throw new Error(`${variable}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!pem.includes("-----BEGIN ")) throw new Error(`${variable}: ${path} is not a PEM file`);
  return pem;
}

/** serverCredentials are a mesh server's: mutual TLS (client certificates required) with `tls`, plaintext without. */
export function serverCredentials(tls: MeshTls | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(tls.ca, [{ cert_chain: tls.cert, private_key: tls.key }], true);
}

/** channelCredentials are a mesh client's: its certificate, checking the server's against the CA, with `tls`; plaintext without. */
export function channelCredentials(tls: MeshTls | undefined): { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions } {
  if (!tls) return { credentials: grpc.credentials.createInsecure(), options: {} };
  return {
    credentials: grpc.credentials.createSsl(tls.ca, tls.key, tls.cert),
    options: tls.serverName ? { "grpc.ssl_target_name_override": tls.serverName, "grpc.default_authority": tls.serverName } : {},
  };
}

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** hasOpenssl tells whether the `openssl` command is here (Debian's openssl package); the TLS tests need it to make certificates. */
export const hasOpenssl: boolean = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    console.warn("openssl is not installed: the TLS and mutual TLS tests are skipped (apt-get install openssl)");
    return false;
  }
})();

/** Issued is a certificate and its key, as PEM files in the folder and as text. */
export interface Issued {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** TestPki is a throwaway certificate authority in a temporary folder. */
export interface TestPki {
  /** ca is the authority's own certificate. */
  readonly ca: Issued;
  /** issue makes a certificate signed by the authority, for `localhost` and 127.0.0.1, usable by servers and clients. */
  issue(name: string): Issued;
  /** dispose removes the folder. */
  dispose(): void;
}

/**
 * createTestPki makes a certificate authority with openssl (P-256 keys,
 * one day), for tests of TLS and mutual TLS: node:crypto makes keys but
 * not X.509 certificates.
 */
export function createTestPki(label = "raptorflow-test"): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "raptorflow-pki-"));
  const run = (args: string[]): void => void execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const read = (name: string): Issued => ({
    certFile: join(dir, `${name}.crt`),
    keyFile: join(dir, `${name}.key`),
    cert: readFileSync(join(dir, `${name}.crt`)),
    key: readFileSync(join(dir, `${name}.key`)),
  });
  const newKey = (name: string): void => run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${name}.key`]);
  newKey("ca");
  run(["req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "1", "-subj", `/CN=${label} CA`, "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "ca.crt"]);
  writeFileSync(join(dir, "leaf.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n");
  return {
    ca: read("ca"),
    issue(name) {
      newKey(name);
      run(["req", "-new", "-key", `${name}.key`, "-subj", `/CN=${name}`, "-out", `${name}.csr`]);
      run(["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1", "-sha256", "-extfile", "leaf.ext", "-out", `${name}.crt`]);
      return read(name);
    },
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

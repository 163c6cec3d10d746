import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from "node:crypto";

/** PasswordHasherOptions are the scrypt parameters new hashes are made with. */
export interface PasswordHasherOptions {
  /** cost is log2 of scrypt's N (CPU and memory cost); 15 (N = 32768) unless told. */
  readonly cost?: number;
  /** blockSize is scrypt's r; 8 unless told. */
  readonly blockSize?: number;
  /** parallelization is scrypt's p; 1 unless told. */
  readonly parallelization?: number;
}

/**
 * PasswordHasher hashes passwords with scrypt and checks them. A hash is
 * self-describing, `scrypt$N$r$p$salt$hash` (salt and hash base64url), so a
 * stored hash is always checked with the parameters it was made with and
 * the parameters of new hashes can change without breaking old ones.
 */
export interface PasswordHasher {
  /** hash returns the self-describing scrypt hash of a password, with a fresh 16-byte salt. */
  hash(password: string): Promise<string>;
  /**
   * verify tells whether a password matches a stored hash. Without a usable
   * hash (no user, no password set, a malformed value) it still runs scrypt
   * with the current parameters and returns false, so the time taken does
   * not tell whether an account exists.
   */
  verify(password: string, stored: string | null | undefined): Promise<boolean>;
  /** needsRehash tells whether a stored hash was made with other parameters than the current ones. */
  needsRehash(stored: string): boolean;
}

interface Parameters {
  readonly N: number;
  readonly r: number;
  readonly p: number;
}

const saltBytes = 16;
const hashBytes = 32;

/** maxPasswordLength bounds what is hashed, so a huge "password" cannot be used to waste CPU. */
export const maxPasswordLength = 1024;

/**
 * createPasswordHasher makes a PasswordHasher. scrypt is memory-hard: with
 * the defaults (N = 2^15, r = 8, p = 1) each hash needs 32 MiB and takes
 * tens of milliseconds, which is what makes guessing stolen hashes expensive.
 * Hashing runs on libuv's thread pool, not on the event loop.
 */
export function createPasswordHasher(options: PasswordHasherOptions = {}): PasswordHasher {
  const current: Parameters = { N: 2 ** (options.cost ?? 15), r: options.blockSize ?? 8, p: options.parallelization ?? 1 };
  if (!acceptable(current)) throw new Error(`scrypt parameters out of range: N=${current.N} r=${current.r} p=${current.p}`);
  // Compared against when there is no usable stored hash; never equal to a real scrypt output by chance.
  const dummySalt = randomBytes(saltBytes);
  const dummyHash = Buffer.alloc(hashBytes);
  return {
    async hash(password) {
      const salt = randomBytes(saltBytes);
      const hash = await derive(bounded(password), salt, hashBytes, current);
      return format(current, salt, hash);
    },
    async verify(password, stored) {
      const parsed = stored ? parse(stored) : undefined;
      if (!parsed || password.length > maxPasswordLength) {
        timingSafeEqual(await derive(password.slice(0, maxPasswordLength), dummySalt, hashBytes, current), dummyHash);
        return false;
      }
      const actual = await derive(password, parsed.salt, parsed.hash.length, parsed);
      return timingSafeEqual(actual, parsed.hash);
    },
    needsRehash(stored) {
      const parsed = parse(stored);
      return !parsed || parsed.N !== current.N || parsed.r !== current.r || parsed.p !== current.p || parsed.hash.length !== hashBytes;
    },
  };
}

function bounded(password: string): string {
  if (password.length > maxPasswordLength) throw new RangeError(`a password may be at most ${maxPasswordLength} characters`);
  return password;
}

function derive(password: string, salt: Buffer, length: number, { N, r, p }: Parameters): Promise<Buffer> {
  // Node's default maxmem (32 MiB) is just short of what N = 2^15, r = 8 needs (128·N·r plus a little):
  // allow twice the working set.
  const options: ScryptOptions = { N, r, p, maxmem: 256 * N * r * p };
  return new Promise((resolve, reject) => scrypt(password.normalize("NFC"), salt, length, options, (e, key) => (e ? reject(e) : resolve(key))));
}

function format({ N, r, p }: Parameters, salt: Buffer, hash: Buffer): string {
  return `scrypt$${N}$${r}$${p}$${salt.toString("base64url")}$${hash.toString("base64url")}`;
}

/** parse reads a stored hash; undefined when it is not one this hasher can check (or its parameters are unreasonable). */
function parse(stored: string): (Parameters & { salt: Buffer; hash: Buffer }) | undefined {
  const m = /^scrypt\$(\d{1,8})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(stored);
  if (!m) return undefined;
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const salt = Buffer.from(m[4], "base64url");
  const hash = Buffer.from(m[5], "base64url");
  // A stored value decides the work done to check it: bound it, so a corrupt row cannot stall the service.
  if (!acceptable({ N, r, p }) || salt.length < 16 || hash.length < 16 || hash.length > 64) return undefined;
  return { N, r, p, salt, hash };
}

function acceptable({ N, r, p }: Parameters): boolean {
  const powerOfTwo = Number.isInteger(N) && N >= 2 && (N & (N - 1)) === 0;
  // At most 256 MiB of memory (128·N·r) and 16 times the default work per check.
  return powerOfTwo && Number.isInteger(r) && r >= 1 && r <= 32 && Number.isInteger(p) && p >= 1 && p <= 16 && N * r <= 2 ** 21 && N * r * p <= 2 ** 22;
}

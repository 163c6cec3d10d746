import { describe, expect, it } from "vitest";
import { createPasswordHasher, maxPasswordLength } from "./password-hash.js";

describe("password hashing (scrypt)", () => {
  // The production parameters, used sparingly: each hash takes tens of milliseconds.
  const hasher = createPasswordHasher();
  // Cheap parameters for everything that is not about the production cost.
  const cheap = createPasswordHasher({ cost: 10 });

  it("makes a self-describing, salted hash with N = 2^15, r = 8, p = 1, and checks passwords against it", async () => {
    const stored = await hasher.hash("correct horse battery staple");
    expect(stored).toMatch(/^scrypt\$32768\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(await hasher.verify("correct horse battery staple", stored)).toBe(true);
    expect(await hasher.verify("Correct horse battery staple", stored)).toBe(false);
    expect(hasher.needsRehash(stored)).toBe(false);
  });

  it("salts: one password hashes differently each time", async () => {
    expect(await cheap.hash("same")).not.toBe(await cheap.hash("same"));
  });

  it("checks a hash with the parameters it was made with, and says when it is due for the current ones", async () => {
    const old = await cheap.hash("pw");
    expect(old.startsWith("scrypt$1024$8$1$")).toBe(true);
    expect(await hasher.verify("pw", old)).toBe(true);
    expect(hasher.needsRehash(old)).toBe(true);
    expect(cheap.needsRehash(old)).toBe(false);
  });

  it("says no, without throwing, when there is no usable hash", async () => {
    // (It runs scrypt on a dummy hash then too, so timing does not tell whether an account exists;
    // that is not asserted here: timings do not belong in tests.)
    for (const stored of [undefined, null, "", "bcrypt$2b$10$abc", "scrypt$32768$8$1$short$short"]) {
      expect(await hasher.verify("pw", stored)).toBe(false);
    }
  });

  it("refuses stored parameters that would make one check take gigabytes", async () => {
    const real = await cheap.hash("pw");
    const [, , , , salt, hash] = real.split("$");
    expect(await cheap.verify("pw", `scrypt$1073741824$8$1$${salt}$${hash}`)).toBe(false);
    expect(await cheap.verify("pw", `scrypt$1024$1024$1$${salt}$${hash}`)).toBe(false);
    expect(await cheap.verify("pw", `scrypt$1000$8$1$${salt}$${hash}`)).toBe(false);
    expect(await cheap.verify("pw", `scrypt$1024$8$1$${salt}$${hash}`)).toBe(true);
  });

  it("treats composed and decomposed accents as the same password", async () => {
    const stored = await cheap.hash("caf\u00e9");
    expect(await cheap.verify("cafe\u0301", stored)).toBe(true);
  });

  it("bounds the password's length", async () => {
    const long = "x".repeat(maxPasswordLength + 1);
    await expect(cheap.hash(long)).rejects.toThrow(RangeError);
    expect(await cheap.verify(long, await cheap.hash("x"))).toBe(false);
  });

  it("refuses unreasonable parameters", () => {
    expect(() => createPasswordHasher({ cost: 0 })).toThrow(/out of range/);
    expect(() => createPasswordHasher({ cost: 24 })).toThrow(/out of range/);
    expect(() => createPasswordHasher({ blockSize: 0 })).toThrow(/out of range/);
  });
});

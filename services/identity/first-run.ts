import { randomBytes } from "node:crypto";
import type { IdentityStore, Organization, User } from "./store/identity-store.js";

/** FirstAdmin describes the organization and admin a first run creates. */
export interface FirstAdmin {
  /** organizationName is the organization's display name. */
  readonly organizationName: string;
  /** email is the admin's email. */
  readonly email: string;
  /** password is the admin's password: given by the operator or generated, never a default. */
  readonly password: string;
}

/**
 * createFirstAdmin creates an organization and a user who is its admin
 * (`raptorflow init`). An email that already has a user is ALREADY_EXISTS,
 * and nothing is created.
 */
export async function createFirstAdmin(store: IdentityStore, first: FirstAdmin): Promise<{ organization: Organization; user: User }> {
  // The user first: an email that is taken must not leave an organization without members behind.
  const user = await store.createUser({ email: first.email, password: first.password });
  const organization = await store.createOrganization({ displayName: first.organizationName });
  await store.addMembership({ organizationId: organization.id, userId: user.id, role: "admin" });
  return { organization, user };
}

/** generatePassword makes a password for someone who gave none: 18 random bytes (144 bits), base64url, 24 characters. */
export function generatePassword(): string {
  return randomBytes(18).toString("base64url");
}

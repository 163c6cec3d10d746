/** Role is what a member (or an API key, or a service) may do in an organization. */
export type Role = "admin" | "analyst" | "marketer" | "viewer" | "service";

/** roles are every Role, as the identity schema's check constraints list them. */
export const roles: readonly Role[] = ["admin", "analyst", "marketer", "viewer", "service"];

/** isRole tells whether a string is one of `roles`. */
export function isRole(s: string): s is Role {
  return (roles as readonly string[]).includes(s);
}

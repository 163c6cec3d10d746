import { EntitySchema } from "@mikro-orm/core";
import { Migration } from "@mikro-orm/migrations";

/** OrganizationRow is a customer organization (a tenant). */
export interface OrganizationRow {
  id: string;
  displayName: string;
  createTime: Date;
}

/** UserRow is a person who signs in; the email is stored lower-cased, the password as a self-describing scrypt hash. */
export interface UserRow {
  id: string;
  email: string;
  passwordHash: string | null;
  displayName: string;
  disabled: boolean;
  createTime: Date;
}

/** MembershipRow gives a user a role in an organization. */
export interface MembershipRow {
  organizationId: string;
  userId: string;
  role: string;
  createTime: Date;
}

/** RefreshTokenRow is one refresh token of a family (one sign-in); only the SHA-256 of the token is kept. */
export interface RefreshTokenRow {
  id: string;
  familyId: string;
  organizationId: string;
  userId: string;
  role: string;
  tokenHash: string;
  expireTime: Date;
  usedTime: Date | null;
  revokedTime: Date | null;
  revokeReason: string | null;
  createTime: Date;
}

/** ApiKeyRow is an organization's API key: its public prefix and the SHA-256 of its secret. */
export interface ApiKeyRow {
  id: string;
  organizationId: string;
  prefix: string;
  keyHash: string;
  role: string;
  displayName: string;
  createTime: Date;
  lastUsedTime: Date | null;
  revokedTime: Date | null;
}

/** schemaName is the identity service's own PostgreSQL schema. */
export const schemaName = "identity";

/** OrganizationEntity maps `identity.organizations`. */
export const OrganizationEntity = new EntitySchema<OrganizationRow>({
  name: "OrganizationRow",
  tableName: "organizations",
  properties: {
    id: { type: "uuid", primary: true },
    displayName: { type: "text", fieldName: "display_name" },
    createTime: { type: "datetime", fieldName: "create_time" },
  },
});

/** UserEntity maps `identity.users`. */
export const UserEntity = new EntitySchema<UserRow>({
  name: "UserRow",
  tableName: "users",
  properties: {
    id: { type: "uuid", primary: true },
    email: { type: "text" },
    passwordHash: { type: "text", nullable: true, fieldName: "password_hash" },
    displayName: { type: "text", fieldName: "display_name" },
    disabled: { type: "boolean" },
    createTime: { type: "datetime", fieldName: "create_time" },
  },
});

/** MembershipEntity maps `identity.memberships`. */
export const MembershipEntity = new EntitySchema<MembershipRow>({
  name: "MembershipRow",
  tableName: "memberships",
  properties: {
    organizationId: { type: "uuid", primary: true, fieldName: "organization_id" },
    userId: { type: "uuid", primary: true, fieldName: "user_id" },
    role: { type: "text" },
    createTime: { type: "datetime", fieldName: "create_time" },
  },
});

/** RefreshTokenEntity maps `identity.refresh_tokens`. */
export const RefreshTokenEntity = new EntitySchema<RefreshTokenRow>({
  name: "RefreshTokenRow",
  tableName: "refresh_tokens",
  properties: {
    id: { type: "uuid", primary: true },
    familyId: { type: "uuid", fieldName: "family_id" },
    organizationId: { type: "uuid", fieldName: "organization_id" },
    userId: { type: "uuid", fieldName: "user_id" },
    role: { type: "text" },
    tokenHash: { type: "text", fieldName: "token_hash" },
    expireTime: { type: "datetime", fieldName: "expire_time" },
    usedTime: { type: "datetime", nullable: true, fieldName: "used_time" },
    revokedTime: { type: "datetime", nullable: true, fieldName: "revoked_time" },
    revokeReason: { type: "text", nullable: true, fieldName: "revoke_reason" },
    createTime: { type: "datetime", fieldName: "create_time" },
  },
});

/** ApiKeyEntity maps `identity.api_keys`. */
export const ApiKeyEntity = new EntitySchema<ApiKeyRow>({
  name: "ApiKeyRow",
  tableName: "api_keys",
  properties: {
    id: { type: "uuid", primary: true },
    organizationId: { type: "uuid", fieldName: "organization_id" },
    prefix: { type: "text" },
    keyHash: { type: "text", fieldName: "key_hash" },
    role: { type: "text" },
    displayName: { type: "text", fieldName: "display_name" },
    createTime: { type: "datetime", fieldName: "create_time" },
    lastUsedTime: { type: "datetime", nullable: true, fieldName: "last_used_time" },
    revokedTime: { type: "datetime", nullable: true, fieldName: "revoked_time" },
  },
});

/** entities are every table the identity service owns. */
export const entities = [OrganizationEntity, UserEntity, MembershipEntity, RefreshTokenEntity, ApiKeyEntity];

/**
 * Migration20261126000000 creates the identity tables: organizations, users,
 * memberships (a user's role in an organization), refresh tokens (kept as
 * SHA-256 digests, grouped in families for rotation and theft detection) and
 * API keys (a public prefix and the SHA-256 of the secret). Foreign keys stay
 * inside the identity schema; other services refer to organizations and
 * users by id only.
 */
export class Migration20261126000000 extends Migration {
  override async up(): Promise<void> {
    // The role list is written out here, not built from code: a migration must not change after it ships.
    const role = `"role" text not null check ("role" in ('admin', 'analyst', 'marketer', 'viewer', 'service'))`;
    this.addSql(`create table "identity"."organizations" (
      "id" uuid primary key,
      "display_name" text not null,
      "create_time" timestamptz not null)`);
    this.addSql(`create table "identity"."users" (
      "id" uuid primary key,
      "email" text not null constraint "users_email_key" unique constraint "users_email_lower" check ("email" = lower("email")),
      "password_hash" text null,
      "display_name" text not null default '',
      "disabled" boolean not null default false,
      "create_time" timestamptz not null)`);
    this.addSql(`create table "identity"."memberships" (
      "organization_id" uuid not null references "identity"."organizations" ("id") on delete cascade,
      "user_id" uuid not null references "identity"."users" ("id") on delete cascade,
      ${role},
      "create_time" timestamptz not null,
      primary key ("organization_id", "user_id"))`);
    this.addSql(`create index "memberships_user" on "identity"."memberships" ("user_id")`);
    // A refresh token belongs to a membership: removing someone from an organization removes their sessions there.
    this.addSql(`create table "identity"."refresh_tokens" (
      "id" uuid primary key,
      "family_id" uuid not null,
      "organization_id" uuid not null,
      "user_id" uuid not null,
      ${role},
      "token_hash" text not null constraint "refresh_tokens_token_hash_key" unique,
      "expire_time" timestamptz not null,
      "used_time" timestamptz null,
      "revoked_time" timestamptz null,
      "revoke_reason" text null,
      "create_time" timestamptz not null,
      foreign key ("organization_id", "user_id") references "identity"."memberships" ("organization_id", "user_id") on delete cascade)`);
    this.addSql(`create index "refresh_tokens_family" on "identity"."refresh_tokens" ("family_id")`);
    this.addSql(`create table "identity"."api_keys" (
      "id" uuid primary key,
      "organization_id" uuid not null references "identity"."organizations" ("id") on delete cascade,
      "prefix" text not null constraint "api_keys_prefix_key" unique,
      "key_hash" text not null,
      ${role},
      "display_name" text not null default '',
      "create_time" timestamptz not null,
      "last_used_time" timestamptz null,
      "revoked_time" timestamptz null)`);
    this.addSql(`create index "api_keys_org_id" on "identity"."api_keys" ("organization_id", "id" desc)`);
  }

  override async down(): Promise<void> {
    for (const t of ["api_keys", "refresh_tokens", "memberships", "users", "organizations"]) {
      this.addSql(`drop table if exists "identity"."${t}"`);
    }
  }
}

/** migrations are the identity service's versioned migrations, oldest first. */
export const migrations = [{ name: "Migration20261126000000_identity", class: Migration20261126000000 }];

/*
 * Names Tenantry creates inside PostgreSQL: the tenant's roles, and the names it must never take
 * for a tenant database or role. The config layer refuses a tenant whose names would collide with
 * what PostgreSQL itself owns; the constructs and the init script use the same derivation.
 */

/** The versions every part Tenantry runs works with: the init script needs psql's \getenv (15+). */
export const POSTGRES_VERSIONS = { min: 15, max: 17, default: 16 } as const;

import { unrestorableName } from '../runtime/agent/jobs/postgres/restore-rules';

/** Databases PostgreSQL creates itself: the init script would take them over (owner, PUBLIC's CONNECT). */
const SYSTEM_DATABASES = ['postgres', 'template0', 'template1'];

/** Why `name` may not be a tenant database, or undefined when it may. */
export function reservedDatabase(name: string): string | undefined {
  if (SYSTEM_DATABASES.includes(name)) return `"${name}" is one of PostgreSQL's own databases (${SYSTEM_DATABASES.join(', ')})`;
  if (name.startsWith('pg_')) return `names starting with "pg_" are reserved by PostgreSQL`;
  // The backup agent's restore names its copies after the database (runtime/agent/jobs/postgres/restore-rules.ts).
  const unrestorable = unrestorableName(name);
  if (unrestorable) return `${unrestorable} (the backup agent could not restore it)`;
  return undefined;
}

/** Why `name` may not be a role Tenantry creates, or undefined when it may. */
export function reservedRole(name: string): string | undefined {
  // PostgreSQL refuses CREATE ROLE pg_…; "postgres" is the superuser of every server Tenantry runs.
  if (name === 'postgres') return '"postgres" is the superuser';
  if (name.startsWith('pg_')) return 'role names starting with "pg_" are reserved by PostgreSQL';
  return undefined;
}

export interface TenantRoles {
  /** The application's LOGIN role: owns the tenant's databases. */
  readonly appRole: string;
  /** SELECT on the tenant's tables, read-only by default. */
  readonly readonlyRole: string;
  /** What the backup agent connects as: reads everything in the tenant's databases, writes nothing of theirs. */
  readonly backupRole: string;
  /** What the backup agent streams WAL and takes base backups as (point-in-time recovery): REPLICATION only. */
  readonly replicationRole: string;
}

/** Role names derive from the tenant name; "-" is not valid in an unquoted identifier. */
export function tenantRoles(tenant: string): TenantRoles {
  const base = tenant.replace(/-/g, '_');
  return { appRole: `${base}_app`, readonlyRole: `${base}_readonly`, backupRole: `${base}_backup`, replicationRole: `${base}_replication` };
}

/** The replication slot that keeps the tenant's WAL on its server until the backup agent has it. */
export function pitrSlotName(tenant: string): string {
  return `tenantry_${tenant.replace(/-/g, '_')}`;
}

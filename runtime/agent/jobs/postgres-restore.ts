/**
 * The parts of a Postgres restore that are facts about names and archives, apart from the driver
 * that talks to the server (postgres.ts).
 *
 * A restore never writes into the database it replaces. It creates `<db>__restoring_<stamp>`
 * with the archive's own CREATE DATABASE, loads and checks it there, gives it the archive's
 * database-level properties (owner, `ALTER DATABASE … SET`, `ALTER ROLE … IN DATABASE … SET`,
 * comment, grants, connection limit: pg_restore only brings those with --create, under the
 * archive's own name), and only then swaps names: the existing database becomes
 * `<db>__before_restore_<stamp>` and stays until the operator drops it.
 */
import type { Client } from 'pg';

/** Postgres truncates identifiers longer than this many bytes (NAMEDATALEN - 1). */
const MAX_IDENTIFIER_BYTES = 63;
export const RESTORING_INFIX = '__restoring_';
export const BEFORE_RESTORE_INFIX = '__before_restore_';

/** `<database><infix><stamp>`, the database's part shortened so the whole fits in 63 bytes. */
export function affixedName(database: string, infix: string, stamp: string): string {
  return `${namePrefix(database, infix)}${stamp}`;
}

/** `<database><infix>`, shortened as affixedName does for a stamp of `stampLength` characters. */
export function namePrefix(database: string, infix: string, stampLength = 14): string {
  let base = database;
  while (Buffer.byteLength(`${base}${infix}`) + stampLength > MAX_IDENTIFIER_BYTES) base = [...base].slice(0, -1).join('');
  return `${base}${infix}`;
}

/** A restore's stamp: UTC, to the second, digits only (sorts by time, needs no quoting). */
export function restoreStamp(now: Date): string {
  return now.toISOString().replace(/\D/g, '').slice(0, 14);
}

/**
 * TOC entries of the database itself, which pg_restore lists and restores only with --create.
 * Lines of `pg_restore --create --list`: `<id>; <catalog> <oid> <type> <schema> <name> <owner>`.
 */
const DATABASE_ENTRY = /^\d+; \d+ \d+ (DATABASE - |DATABASE PROPERTIES - |COMMENT - DATABASE |ACL - DATABASE |SECURITY LABEL - DATABASE )/;

export function databaseEntries(toc: string): string {
  return toc.split('\n').filter((line) => DATABASE_ENTRY.test(line)).join('\n') + '\n';
}

export interface DatabaseProperties {
  /** The archive's CREATE DATABASE (encoding, locale, template), renamed. */
  create: string;
  /** Everything else about the database (owner, settings, comment, grants, connection limit), renamed. */
  rest: string;
}

/**
 * Splits pg_restore's SQL for the database entries into its CREATE DATABASE and the rest, with the
 * database's name (as pg_dump quotes it, `quoted`) replaced by `renamedQuoted` where a statement
 * names the database. psql's meta-commands and the session settings pg_restore prepends are left out.
 */
export function renameDatabaseSql(sql: string, quoted: string, renamedQuoted: string): DatabaseProperties {
  const lines = sql.split('\n').filter((line) => !/^(\\|--|SET |SELECT pg_catalog\.set_config\()/.test(line) && line.trim() !== '');
  const named = new RegExp(`^((?:CREATE|ALTER|COMMENT ON|GRANT|REVOKE|SECURITY LABEL)\\b.*?\\bDATABASE )${escapeRegExp(quoted)}(?=[ ;])`);
  const renamed = lines.map((line) => line.replace(named, (_, head: string) => `${head}${renamedQuoted}`));
  const createAt = renamed.findIndex((line) => line.startsWith('CREATE DATABASE '));
  if (createAt < 0) throw new Error('the archive has no CREATE DATABASE entry');
  return { create: renamed[createAt], rest: renamed.filter((_, i) => i !== createAt).join('\n') };
}

/** Role names `pg_dumpall --globals-only` creates (`CREATE ROLE name;`). */
export function rolesOfGlobals(globals: string): string[] {
  const roles: string[] = [];
  for (const match of globals.matchAll(/^CREATE ROLE ("(?:[^"]|"")+"|[^\s;]+);$/gm)) {
    const name = match[1];
    roles.push(name.startsWith('"') ? name.slice(1, -1).replace(/""/g, '"') : name);
  }
  return roles;
}

/**
 * Whether archive SQL names a role (given as pg_dump quotes it) where SQL names roles: an owner,
 * a grantee, a policy's roles, default privileges, a role's settings in the database.
 */
export function sqlNamesRole(sql: string, quotedRole: string): boolean {
  const role = escapeRegExp(quotedRole);
  return new RegExp(`(?:\\bOWNER TO|\\bTO|\\bFROM|\\bFOR ROLE|\\bAUTHORIZATION|\\bGRANTED BY|\\bALTER ROLE|,)\\s+${role}(?=[\\s,;]|$)`, 'm').test(sql);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Each partition under a hash-partitioned table, mapped to its topmost hash-partitioned ancestor
 * ("schema.table" labels). The hash of an enum (or of a composite or array holding one) is the
 * hash of its OID, and a restore gives types new OIDs: the same rows land in other hash
 * partitions. List and range partitions compare values, which a restore keeps, so those are
 * compared one by one.
 */
export async function hashPartitionRoots(db: Client): Promise<Record<string, string>> {
  const { rows } = await db.query<{ label: string; root: string }>(`
    SELECT n.nspname || '.' || c.relname AS label, r.root
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    CROSS JOIN LATERAL (
      SELECT an.nspname || '.' || ac.relname AS root
      FROM pg_partition_ancestors(c.oid) WITH ORDINALITY AS a(relid, depth)
      JOIN pg_partitioned_table p ON p.partrelid = a.relid AND p.partstrat = 'h'
      JOIN pg_class ac ON ac.oid = a.relid JOIN pg_namespace an ON an.oid = ac.relnamespace
      ORDER BY a.depth DESC LIMIT 1) r
    WHERE c.relkind = 'r' AND c.relispartition`);
  return Object.fromEntries(rows.map((row) => [row.label, row.root]));
}

/** Row counts with every hash partition's rows counted under its root (hashPartitionRoots). */
export function rollUpHashPartitions(counts: Record<string, number>, roots: Record<string, string>): Record<string, number> {
  const rolled: Record<string, number> = {};
  for (const [table, rows] of Object.entries(counts)) {
    const key = roots[table] === undefined ? table : `${roots[table]} (all hash partitions)`;
    rolled[key] = (rolled[key] ?? 0) + rows;
  }
  return rolled;
}

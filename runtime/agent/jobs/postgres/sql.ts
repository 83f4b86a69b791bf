/** Catalog queries every Postgres step shares: the tables a dump covers, their row counts, the role's rights. */
import type { Client } from 'pg';
import type { RowCounts } from './layout';

/** Ordinary tables with data of their own: not catalogs, not partitioned parents, not extension-owned. */
export const TABLES_SQL = `
  SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname) AS qualified, n.nspname || '.' || c.relname AS label
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  ORDER BY 2`;

export interface TableRef {
  oid: number;
  qualified: string;
  label: string;
}

/** Whether the connected role is a superuser (it then reads role passwords and every large object). */
export async function isSuperuser(db: Client): Promise<boolean> {
  return (await db.query<{ rolsuper: boolean }>('SELECT rolsuper FROM pg_roles WHERE rolname = current_user')).rows[0]?.rolsuper ?? false;
}

/**
 * Locks every table the dump reads (ACCESS SHARE, as pg_dump does), then fails when one changed
 * between the snapshot and the lock in a way the snapshot cannot see: a table replaced under its
 * name (another OID), or rewritten by TRUNCATE or ALTER TABLE (another relfilenode; a snapshot
 * taken before such a rewrite sees the table empty). With the locks held nothing can change
 * them until the dump's transaction ends.
 */
export async function lockUnchanged(session: Client, tables: TableRef[]): Promise<void> {
  if (tables.length === 0) return;
  await session.query(`LOCK TABLE ${tables.map((t) => `ONLY ${t.qualified}`).join(', ')} IN ACCESS SHARE MODE`);
  // pg_class as of the snapshot against the catalog and relcache as of now.
  const { rows } = await session.query<{ label: string; replaced: boolean }>(
    `SELECT label, replaced FROM (
       SELECT n.nspname || '.' || c.relname AS label,
              to_regclass(pg_catalog.format('%I.%I', n.nspname, c.relname)) IS DISTINCT FROM c.oid AS replaced,
              c.relfilenode <> 0 AND c.relfilenode IS DISTINCT FROM pg_relation_filenode(c.oid) AS rewritten
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY($1::oid[])) t
     WHERE replaced OR rewritten ORDER BY NOT replaced, label`,
    [tables.map((t) => t.oid)],
  );
  const [first] = rows;
  if (first?.replaced) throw new Error(`table ${first.label} was replaced while the backup started; the next run copies it`);
  if (rows.length > 0) {
    throw new Error(`${rows.map((r) => r.label).join(', ')} changed (TRUNCATE or a rewriting ALTER TABLE) while the backup started; the next run copies it`);
  }
}

/** count(*) of each table in the session's snapshot. */
export async function countRows(db: Client, tables: readonly TableRef[]): Promise<RowCounts> {
  const counts: RowCounts = {};
  for (const { qualified, label } of tables) {
    counts[label] = Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ONLY ${qualified}`)).rows[0].n);
  }
  return counts;
}

/** Same keys in the order TABLES_SQL lists them, so manifests read the same whichever way a count was taken. */
export function sortKeys(counts: RowCounts): RowCounts {
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export function compareCounts(expected: RowCounts, actual: RowCounts): string[] {
  const problems: string[] = [];
  for (const [table, rows] of Object.entries(expected)) {
    if (!(table in actual)) problems.push(`${table} is missing`);
    else if (actual[table] !== rows) problems.push(`${table} has ${actual[table]} rows, expected ${rows}`);
  }
  for (const table of Object.keys(actual)) if (!(table in expected)) problems.push(`${table} was not in the dump`);
  return problems;
}

/** Tables, views, sequences and the like a tenant created: a database holding none is empty. */
export async function userRelationCount(db: Client): Promise<number> {
  const result = await db.query<{ n: string }>(`
    SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'`);
  return Number(result.rows[0].n);
}

/**
 * A Postgres backup: every database dumped inside an exported snapshot, and the row counts of
 * every table taken in that same snapshot, so verification compares a restored copy with exactly
 * what was dumped, not with a source that has moved on. Measurements: docs/benchmarks.md.
 */
import * as path from 'path';
import type { Client } from 'pg';
import { allOrNothing } from '../../concurrency';
import { runTool, toolVersion } from '../../exec';
import type { BackupOutcome, DriverContext } from '../driver';
import { CHUNK_COMPRESSION, dumpChunks, planSplit } from './chunks';
import { archiveOf, chunksOf, DatabaseDetails, GLOBALS_FILE, PG_DUMP_COMPRESSION, PostgresDetails } from './layout';
import type { PostgresServer, PostgresSettings } from './server';
import { countRows, isSuperuser, lockUnchanged, sortKeys, TableRef, TABLES_SQL } from './sql';
import type { PostgresTools } from './tools';

/** How long the dump's session and pg_dump wait for a table lock before the run fails. */
const LOCK_WAIT = '60s';

/** Dumps the roles and every database of `pg` into `dir` with `tools`. */
export async function dumpServer(pg: PostgresSettings, server: PostgresServer, tools: PostgresTools, dir: string, ctx: DriverContext): Promise<BackupOutcome> {
  const { version, superuser } = await server.withDatabase(pg.databases[0], async (db) => ({
    version: (await db.query<{ server_version: string }>('SHOW server_version')).rows[0].server_version,
    superuser: await isSuperuser(db),
  }));
  let warnedNoStdbuf = false;
  const warnNoStdbuf = () => {
    if (warnedNoStdbuf) return;
    warnedNoStdbuf = true;
    ctx.log.warn("coreutils' stdbuf does not work here: chunks are copied with psql's own stdout buffer, about 10 % slower");
  };
  const databases: PostgresDetails['databases'] = {};
  const dumpDatabases = async (signal: AbortSignal) => {
    for (const database of pg.databases) {
      databases[database] = await dumpDatabase(pg, server, tools, database, dir, { ...ctx, signal }, warnNoStdbuf);
      ctx.log.info('database dumped', { database, tables: Object.keys(databases[database].tables).length, split: (databases[database].split ?? []).map((t) => t.label).join(', ') });
    }
  };
  // The roles are dumped, and the tool versions read, while the databases are dumped.
  await allOrNothing([(signal) => dumpGlobals(server, tools, dir, superuser, { ...ctx, signal }), dumpDatabases], ctx.signal);
  const env = server.toolEnv(tools);
  const [pgDump, pgDumpall] = await Promise.all([toolVersion('pg_dump', env), toolVersion('pg_dumpall', env)]);
  const split = Object.values(databases).some((d) => (d.split ?? []).length > 0);
  const chunkTools = split ? await Promise.all([toolVersion('psql', env), toolVersion('zstd', env)]) : undefined;
  const details: PostgresDetails = { databases, compression: `archive gzip:${PG_DUMP_COMPRESSION}, chunks zstd:${CHUNK_COMPRESSION}`, rolePasswords: superuser };
  return {
    source: { version, address: server.address },
    tools: { pg_dump: pgDump, pg_dumpall: pgDumpall, ...(chunkTools ? { psql: chunkTools[0], zstd: chunkTools[1] } : {}) },
    details: { ...details },
    formatVersion: chunkTools ? 2 : 1,
  };
}

/** Role passwords can only be read by a superuser; other roles get the roles without them. */
async function dumpGlobals(server: PostgresServer, tools: PostgresTools, dir: string, superuser: boolean, ctx: DriverContext): Promise<void> {
  const args = ['--globals-only', `--file=${path.join(dir, GLOBALS_FILE)}`, `--database=${server.maintenanceDatabase}`];
  if (!superuser) {
    args.push('--no-role-passwords');
    ctx.log.warn('backup role is not a superuser: globals.sql has the roles without their passwords', { user: server.user });
  }
  await runTool('pg_dumpall', args, { env: server.toolEnv(tools), signal: ctx.signal });
}

/**
 * pg_dump and the chunk copies of the big tables run side by side in one exported snapshot.
 * Every table is locked by this session first and checked to still be the table the snapshot
 * saw (lockUnchanged), so no DDL changes them until the dump ends. Nothing waits for a lock for long: this session and pg_dump
 * give up after LOCK_WAIT, the chunk sessions at once (they could only queue behind a schema
 * change that itself waits for the dump). Row counts come from the same snapshot: from the
 * chunk copies' own counts for split tables, from count(*) for the rest.
 */
async function dumpDatabase(
  pg: PostgresSettings,
  server: PostgresServer,
  tools: PostgresTools,
  database: string,
  dir: string,
  ctx: DriverContext,
  warnNoStdbuf: () => void,
): Promise<DatabaseDetails> {
  const session = await server.connect(database);
  try {
    await session.query(`SET lock_timeout = '${LOCK_WAIT}'`);
    const snapshot = await snapshotWithReadableLargeObjects(session, database);
    const bytes = Number((await session.query<{ bytes: string }>('SELECT pg_database_size(current_database()) AS bytes')).rows[0].bytes);
    const tables = (await session.query<TableRef>(TABLES_SQL)).rows;
    const planned = await planSplit(session, pg.splitTablesLargerThanMb * 1024 * 1024, pg.parallelJobs);
    const hashPartitioned = (await session.query<{ any: boolean }>("SELECT EXISTS (SELECT FROM pg_partitioned_table WHERE partstrat = 'h') AS any")).rows[0].any;
    await lockUnchanged(session, tables);
    const env = server.toolEnv(tools);
    if (planned.length > 0 && !tools.largeOutputBuffer) warnNoStdbuf();
    const dump = (signal: AbortSignal) =>
      runTool(
        'pg_dump',
        [
          '--format=directory', `--jobs=${pg.parallelJobs}`, `--compress=${PG_DUMP_COMPRESSION}`, `--snapshot=${snapshot}`, `--lock-wait-timeout=${LOCK_WAIT}`,
          // A hash of an enum, or of a composite, array or domain holding one, depends on OIDs
          // a restore changes: such rows may belong to another partition there. pg_dump routes
          // them through the root by itself only for a key column that is an enum.
          ...(hashPartitioned ? ['--load-via-partition-root'] : []),
          ...planned.map((table) => `--exclude-table-data=${table.pattern}`),
          `--file=${path.join(dir, archiveOf(database))}`, `--dbname=${database}`,
        ],
        { env, signal },
      ).then(() => undefined);
    const chunks = (signal: AbortSignal) => dumpChunks(dir, chunksOf(database), planned, snapshot, { database, env, workers: pg.parallelJobs, signal, tools });
    const count = (signal: AbortSignal) => {
      // A failed dump need not wait for the counts: closing the session ends its query.
      signal.addEventListener('abort', () => void session.end().catch(() => undefined), { once: true });
      const split = new Set(planned.map((t) => t.label));
      return countRows(session, tables.filter((t) => !split.has(t.label)));
    };
    const [split, counts] = await allOrNothing([chunks, count, dump], ctx.signal);
    await session.query('COMMIT');
    for (const table of split) counts[table.label] = table.parts.reduce((sum, part) => sum + part.rows, 0);
    return split.length > 0 ? { tables: sortKeys(counts), split, bytes } : { tables: counts, bytes };
  } finally {
    await session.end().catch(() => undefined);
  }
}

/** The function the init script creates in each tenant database (runtime/render/postgres.ts). */
const GRANT_LARGE_OBJECTS = 'tenantry.grant_large_objects_to_backup()';
const SNAPSHOT_ATTEMPTS = 3;

/**
 * Large objects the session's role cannot read, as of the transaction's snapshot (the one pg_dump
 * checks large-object privileges against). Ownership, a grant to the role, to a role it is a
 * member of, or to PUBLIC make one readable; superusers and lo_compat_privileges read them all.
 */
const UNREADABLE_LARGE_OBJECTS_SQL = `
  SELECT count(*) AS n FROM pg_largeobject_metadata m
  WHERE NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
    AND current_setting('lo_compat_privileges') = 'off'
    AND NOT pg_has_role(current_user, m.lomowner, 'USAGE')
    AND NOT EXISTS (SELECT FROM aclexplode(m.lomacl) a
                    WHERE a.privilege_type = 'SELECT'
                      AND CASE WHEN a.grantee = 0 THEN true ELSE pg_has_role(current_user, a.grantee, 'USAGE') END)`;

/**
 * Opens the dump's REPEATABLE READ transaction and exports its snapshot, after granting the backup
 * role SELECT on the app's large objects (pg_read_all_data does not cover them). One created
 * between that grant and the snapshot would make pg_dump fail, so the snapshot is checked and,
 * if needed, taken again after another grant.
 */
async function snapshotWithReadableLargeObjects(session: Client, database: string): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const granter = await session.query(`SELECT has_function_privilege(to_regprocedure($1), 'EXECUTE') AS callable WHERE to_regprocedure($1) IS NOT NULL`, [GRANT_LARGE_OBJECTS]);
    if (granter.rows[0]?.callable) await session.query(`SELECT ${GRANT_LARGE_OBJECTS}`);
    await session.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const snapshot = (await session.query<{ id: string }>('SELECT pg_export_snapshot() AS id')).rows[0].id;
    const unreadable = Number((await session.query<{ n: string }>(UNREADABLE_LARGE_OBJECTS_SQL)).rows[0].n);
    if (unreadable === 0) return snapshot;
    await session.query('ROLLBACK');
    if (attempt === SNAPSHOT_ATTEMPTS || !granter.rows[0]?.callable) {
      throw new Error(
        `${database}: the backup role cannot read ${unreadable} large object(s)${granter.rows[0]?.callable ? ` (still, after ${attempt} grants)` : ` and ${GRANT_LARGE_OBJECTS} is missing or not callable by it`}: ` +
          'run the Postgres init script again (it creates the function and its grants), or grant it SELECT on them',
      );
    }
  }
}

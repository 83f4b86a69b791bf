/**
 * Loading one database of a backup into a database that exists, and comparing what was loaded
 * with the dump: the step verification and restore share.
 */
import * as path from 'path';
import { allOrNothing } from '../../concurrency';
import { runTool } from '../../exec';
import type { DriverContext } from '../driver';
import { loadChunks } from './chunks';
import { archiveOf, DatabaseDetails, RowCounts } from './layout';
import { hashPartitionRoots, rollUpHashPartitions } from './restore-rules';
import { PostgresServer, quoteIdent, RESTORE_SESSION } from './server';
import { compareCounts, countRows, TableRef, TABLES_SQL } from './sql';
import type { PostgresTools } from './tools';

/** What a load runs with: the server as the connecting credential, the tools, and how many workers each step uses. */
export interface Loader {
  readonly server: PostgresServer;
  readonly tools: PostgresTools;
  readonly parallelJobs: number;
}

/**
 * Definitions (pre-data), then the archive's data and the big tables' chunks side by side, then
 * indexes and constraints (post-data), each step with `parallelJobs` workers.
 *
 * Loading rows runs the tenant's code (CHECK constraints, generated columns, domain checks, all
 * calling the tenant's functions), and so do index expressions and constraint validation: only
 * creating the definitions, with their owners, needs the restore credential's rights. The data,
 * the chunks and post-data run as `role` (the database's owner), so tenant code runs with the
 * tenant's rights. Without `role` (verify: the scratch copy and every object in it are the
 * backup role's own) everything runs as the connecting role.
 */
export async function loadDatabase(
  loader: Loader,
  dir: string,
  source: string,
  target: string,
  how: { extra: string[]; details: DatabaseDetails; role?: string },
  ctx: DriverContext,
): Promise<void> {
  const archive = path.join(dir, archiveOf(source));
  await pgRestore(loader, archive, target, ['--section=pre-data', ...how.extra], ctx);
  if (how.role !== undefined) await checkLoadableAs(loader.server, target, how.role);
  const env = { ...loader.server.toolEnv(loader.tools), PGOPTIONS: RESTORE_SESSION };
  const asOwner = how.role === undefined ? [] : [`--role=${how.role}`];
  await allOrNothing(
    [
      (signal) => pgRestore(loader, archive, target, ['--section=data', ...asOwner, ...how.extra], { ...ctx, signal }),
      (signal) =>
        loadChunks(dir, how.details.split ?? [], {
          database: target, env, workers: loader.parallelJobs, signal, tools: loader.tools,
          ...(how.role === undefined ? {} : { role: quoteIdent(how.role) }),
        }),
    ],
    ctx.signal,
  );
  await pgRestore(loader, archive, target, ['--section=post-data', ...asOwner, ...how.extra], ctx);
}

/**
 * Row counts of every table of `database` against the dump's. Hash partitions are compared by
 * their root's total (see hashPartitionRoots); every other table, list and range partitions
 * included, one by one.
 */
export function compareWithDump(server: PostgresServer, database: string, expected: RowCounts): Promise<string[]> {
  return server.withDatabase(database, async (db) => {
    const actual = await countRows(db, (await db.query<TableRef>(TABLES_SQL)).rows);
    const roots = await hashPartitionRoots(db);
    return compareCounts(rollUpHashPartitions(expected, roots), rollUpHashPartitions(actual, roots));
  });
}

/** Tables the owner cannot load as itself are refused, rather than loaded with the restore credential's rights. */
async function checkLoadableAs(server: PostgresServer, database: string, role: string): Promise<void> {
  const { rows } = await server.withDatabase(database, (db) =>
    db.query<{ label: string; owner: string }>(
      `SELECT n.nspname || '.' || c.relname AS label, pg_get_userbyid(c.relowner) AS owner
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'p', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
         AND NOT pg_has_role($1, c.relowner, 'USAGE') ORDER BY 1`,
      [role],
    ),
  );
  if (rows.length === 0) return;
  throw new Error(
    `${rows.map((r) => `${r.label} (owned by ${r.owner})`).join(', ')} cannot be loaded as the database's owner ${role}: a restore loads rows as the owner, ` +
      `so the tenant's code (CHECK constraints, triggers' functions, index expressions) never runs with the restore credential's rights; ` +
      `give them to ${role} (ALTER TABLE … OWNER TO) on the source, or make ${role} a member of their owners, and back up again`,
  );
}

function pgRestore(loader: Loader, archive: string, database: string, extra: string[], ctx: DriverContext): Promise<string> {
  return runTool('pg_restore', ['--exit-on-error', `--jobs=${loader.parallelJobs}`, ...extra, `--dbname=${database}`, archive], {
    env: { ...loader.server.toolEnv(loader.tools), PGOPTIONS: RESTORE_SESSION },
    signal: ctx.signal,
  });
}

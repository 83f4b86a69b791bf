/**
 * Large tables, dumped and restored in parallel chunks.
 *
 * `pg_dump -j` parallelises across tables, never within one, so a database whose data sits in one
 * big table dumps and restores at the speed of a single COPY. Tables at least
 * `splitTablesLargerThanMb` big are therefore left out of pg_dump's data (`--exclude-table-data`;
 * their definitions, indexes and grants stay in the archive) and copied instead in ranges of
 * their physical row position (ctid), each range by its own psql session that imports the dump's
 * exported snapshot, so every chunk and the archive see one and the same database state. Chunks
 * are zstd-compressed and written in COPY's binary format when every column type has binary I/O
 * (cheaper to parse on restore), in text otherwise. A restore loads the chunks in parallel after the archive's pre-data section
 * (tables) and before its post-data section (indexes, constraints), so indexes are built once,
 * over all rows.
 *
 * Ranges of ctid are read with a TID range scan (PostgreSQL 14 and later); on older servers
 * nothing is split. Binary COPY data loads into the same or a newer PostgreSQL major version (the
 * binary forms of built-in types do not change); a column of an extension's type needs that
 * extension on the target, as any restore does. Measurements: docs/benchmarks.md.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Client } from 'pg';
import { inPool } from '../../concurrency';
import { runPipeline, ToolCommand, withLargeOutputBuffer } from '../../exec';
import type { PostgresTools } from './tools';

/** zstd level for chunks: zstd's default, smallest of the fast levels on pgbench's rows (docs/benchmarks.md). */
export const CHUNK_COMPRESSION = 3;
/** Chunks per table: at least one per worker, and one per this many bytes of table. */
const CHUNK_TARGET_BYTES = 1024 ** 3;

export interface SplitPart {
  /** Relative to the backup directory. */
  file: string;
  /** Rows in the chunk, as the server counted them while copying. */
  rows: number;
}

/** A table whose data is in chunk files instead of the pg_dump archive. */
export interface SplitTable {
  /** "schema.table", as in the row counts. */
  label: string;
  /** The client encoding the chunks were written in (the database's): text values are in it. */
  encoding: string;
  /** Quoted `schema.table` for SQL. */
  qualified: string;
  /** Quoted, comma-separated column list (generated columns excluded: COPY cannot load them). */
  columns: string;
  format: 'binary' | 'text';
  parts: SplitPart[];
}

interface PlannedTable extends Omit<SplitTable, 'parts'> {
  /** The table's OID when planned: the name must still mean this table once it is locked. */
  oid: number;
  /** `--exclude-table-data` pattern: both names double-quoted, so nothing in them is a wildcard. */
  pattern: string;
  /** Block ranges [from, to); `to` is undefined for the last, which runs to the end. */
  ranges: [number, number | undefined][];
}

/**
 * Tables worth splitting: ordinary tables (partitions included, they are tables of their own) of
 * at least `thresholdBytes` counted as pg_table_size (the main data, its TOAST table and both
 * their free-space and visibility maps; indexes are not copied, so not counted: a table of big
 * values lives mostly in TOAST), not owned by an extension. Names with control characters stay with
 * pg_dump: psql's \copy reads its command up to the end of a line. So do partitions under a hash-
 * partitioned table: a hash of an enum depends on OIDs that differ in the restored database, so
 * their rows may belong to another partition there (pg_dump loads them through the root).
 */
const CANDIDATES_SQL = `
  SELECT c.oid, n.nspname, c.relname,
         pg_catalog.format('%I.%I', n.nspname, c.relname) AS qualified,
         pg_table_size(c.oid) AS bytes,
         pg_relation_size(c.oid) / current_setting('block_size')::int AS blocks,
         (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
            FROM pg_attribute a
           WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') AS columns,
         (SELECT bool_and(a.attname !~ '[[:cntrl:]]') FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0) AS plain_names
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    AND pg_table_size(c.oid) >= $1
    AND n.nspname !~ '[[:cntrl:]]' AND c.relname !~ '[[:cntrl:]]'
    AND NOT (c.relispartition AND EXISTS (
      SELECT 1 FROM pg_partition_ancestors(c.oid) a JOIN pg_partitioned_table p ON p.partrelid = a.relid WHERE p.partstrat = 'h'))
  ORDER BY 2, 3`;

/**
 * Whether binary COPY can carry every column: each type involved, through domains, array
 * elements, composite fields and range subtypes, has both a binary send and receive function,
 * and none is an OID alias (regclass, regtype, …): their binary form is the bare OID, which names
 * another object, or none, in the restored database; as text they are names. (The binary forms
 * of arrays and composites name their element and field type OIDs; PostgreSQL 15 and 17 load
 * them into a database where those user-defined types have other OIDs, which the tests check
 * with an enum array and a composite of an enum.)
 */
const BINARY_IO_SQL = `
  WITH RECURSIVE types(oid) AS (
    SELECT a.atttypid FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
    UNION
    SELECT x.child FROM types JOIN pg_type t ON t.oid = types.oid
    CROSS JOIN LATERAL (
      SELECT t.typbasetype WHERE t.typtype = 'd'
      UNION ALL SELECT t.typelem WHERE t.typcategory = 'A' AND t.typelem <> 0
      UNION ALL SELECT a.atttypid FROM pg_attribute a WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
      UNION ALL SELECT r.rngsubtype FROM pg_range r WHERE r.rngtypid = t.oid OR r.rngmultitypid = t.oid
    ) x(child)
  )
  SELECT coalesce(bool_and(t.typsend <> 0 AND t.typreceive <> 0
           AND NOT (t.typnamespace = 'pg_catalog'::regnamespace AND t.typname IN (
             'regclass', 'regtype', 'regproc', 'regprocedure', 'regoper', 'regoperator', 'regconfig',
             'regdictionary', 'regnamespace', 'regrole', 'regcollation'))), true) AS binary
  FROM types JOIN pg_type t ON t.oid = types.oid`;

/** Returns the tables to split, or none when the server cannot scan ctid ranges. */
export async function planSplit(session: Client, thresholdBytes: number, workers: number): Promise<PlannedTable[]> {
  const { version, encoding } = (
    await session.query<{ version: string; encoding: string }>("SELECT current_setting('server_version_num') AS version, pg_encoding_to_char(encoding) AS encoding FROM pg_database WHERE datname = current_database()")
  ).rows[0];
  if (Number(version) < 140000) return [];
  const { rows } = await session.query<{ oid: number; nspname: string; relname: string; qualified: string; bytes: string; blocks: string; columns: string | null; plain_names: boolean }>(
    CANDIDATES_SQL,
    [thresholdBytes],
  );
  const planned: PlannedTable[] = [];
  for (const row of rows) {
    const blocks = Number(row.blocks);
    if (row.columns === null || !row.plain_names || blocks === 0) continue;
    const binary = (await session.query<{ binary: boolean }>(BINARY_IO_SQL, [row.oid])).rows[0].binary;
    const count = Math.min(blocks, Math.max(workers, Math.ceil(Number(row.bytes) / CHUNK_TARGET_BYTES)));
    planned.push({
      oid: row.oid,
      label: `${row.nspname}.${row.relname}`,
      encoding,
      qualified: row.qualified,
      columns: row.columns,
      format: binary ? 'binary' : 'text',
      pattern: `"${row.nspname.replace(/"/g, '""')}"."${row.relname.replace(/"/g, '""')}"`,
      ranges: blockRanges(blocks, count),
    });
  }
  return planned;
}

export interface ChunkSession {
  database: string;
  /** libpq settings (PGHOST, PGPASSWORD, …) for psql. */
  env: NodeJS.ProcessEnv;
  workers: number;
  signal?: AbortSignal;
  /** The server's major version (17 and later also get transaction_timeout switched off), and whether stdbuf works. */
  tools: Pick<PostgresTools, 'serverMajor' | 'largeOutputBuffer'>;
  /** Loads only: the role (quoted) the rows are loaded as, so the table's CHECKs run with its rights. */
  role?: string;
}

/**
 * Settings of every chunk session, whatever the server, database or role set, as pg_dump and
 * pg_restore fix theirs: no timeout cuts a copy short, and text values are written and read in
 * one format (dates, intervals, floats at full precision; names schema-qualified).
 */
const CHUNK_SESSION = [
  'statement_timeout=0', 'idle_in_transaction_session_timeout=0', 'lock_timeout=0',
  'datestyle=ISO', 'intervalstyle=postgres', 'extra_float_digits=3', 'search_path=',
].map((setting) => `-c ${setting}`).join(' ');

/** libpq environment of a chunk session: the fixed settings (after `extraOptions`) and the encoding. */
export function chunkSessionEnv(env: NodeJS.ProcessEnv, encoding: string, serverMajor: number, extraOptions = ''): NodeJS.ProcessEnv {
  const options = [extraOptions, CHUNK_SESSION, serverMajor >= 17 ? '-c transaction_timeout=0' : ''].filter(Boolean).join(' ');
  return { ...env, PGOPTIONS: options, PGCLIENTENCODING: encoding };
}

/** `count` ranges of about equal size over `blocks` blocks, [from, to); the last is open-ended. */
export function blockRanges(blocks: number, count: number): [number, number | undefined][] {
  const bounds = Array.from({ length: count + 1 }, (_, i) => Math.floor((i * blocks) / count));
  return bounds.slice(0, -1).map((from, i) => [from, i === count - 1 ? undefined : bounds[i + 1]]);
}

/** `ctid >= '(from,0)' AND ctid < '(to,0)'`: the comparison types the literals, no cast needed. */
export function rangeCondition([from, to]: [number, number | undefined]): string {
  const lower = from > 0 ? `ctid >= '(${from},0)'` : '';
  const upper = to !== undefined ? `ctid < '(${to},0)'` : '';
  return [lower, upper].filter(Boolean).join(' AND ') || 'true';
}

const chunkFile = (directory: string, table: number, part: number, format: SplitTable['format']) =>
  `${directory}/${table + 1}.${part + 1}.${format === 'binary' ? 'bin' : 'txt'}.zst`;

/**
 * Copies every planned chunk into `<dir>/<directory>/` with `workers` psql sessions at a time,
 * each inside `snapshot`, its rows piped through zstd.
 */
export async function dumpChunks(dir: string, directory: string, tables: PlannedTable[], snapshot: string, session: ChunkSession): Promise<SplitTable[]> {
  const jobs = tables.flatMap((table, t) => table.ranges.map((range, p) => ({ table, t, p, range })));
  if (jobs.length > 0) await fs.promises.mkdir(path.join(dir, directory));
  const rows = await inPool(jobs, session.workers, session.signal, async ({ table, t, p, range }, signal) => {
    const file = chunkFile(directory, t, p, table.format);
    // psql's command output (the "COPY n" status among it) goes to a file: stdout carries the rows.
    const status = `${file}.psql-output`;
    const psql: ToolCommand = {
      file: 'psql',
      args: [
        '--no-psqlrc', '--set=ON_ERROR_STOP=1', `--output=${status}`, `--dbname=${session.database}`,
        '--command=BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
        `--command=SET TRANSACTION SNAPSHOT '${snapshot}'`,
        // Never a silently filtered copy: with row security on, a policy would hide rows.
        '--command=SET row_security = off',
        // The dump's own session holds this lock already. Waiting could only mean queueing
        // behind a schema change that itself waits for the dump: give way and fail instead.
        `--command=LOCK TABLE ONLY ${table.qualified} IN ACCESS SHARE MODE NOWAIT`,
        `--command=\\copy (SELECT ${table.columns} FROM ONLY ${table.qualified} WHERE ${rangeCondition(range)}) TO pstdout (FORMAT ${table.format})`,
        '--command=COMMIT',
      ],
    };
    const zstd: ToolCommand = { file: 'zstd', args: ['--quiet', `-${CHUNK_COMPRESSION}`, '-o', `./${file}`] };
    await runPipeline(withLargeOutputBuffer(psql, session.tools.largeOutputBuffer), zstd, { env: chunkSessionEnv(session.env, table.encoding, session.tools.serverMajor), cwd: dir, signal }).catch((error: Error) => {
      if (!/could not obtain lock on relation/.test(error.message)) throw error;
      throw new Error(`${error.message} (a schema change on ${table.label} was waiting for the backup, which gave way to it; the next run copies the table)`);
    });
    const output = await fs.promises.readFile(path.join(dir, status), 'utf8');
    await fs.promises.rm(path.join(dir, status));
    return copiedRows(output, `${table.label} chunk ${p + 1}`);
  });
  let job = 0;
  return tables.map(({ label, encoding, qualified, columns, format, ranges }, t) => ({
    label,
    encoding,
    qualified,
    columns,
    format,
    parts: ranges.map((_, p) => ({ file: chunkFile(directory, t, p, format), rows: rows[job++] })),
  }));
}

/** Loads every chunk into `database` (whose tables exist, without indexes yet), `workers` at a time. */
export async function loadChunks(dir: string, tables: SplitTable[], session: ChunkSession): Promise<void> {
  const jobs = tables.flatMap((table) => table.parts.map((part) => ({ table, part })));
  await inPool(jobs, session.workers, session.signal, async ({ table, part }, signal) => {
    const zstd: ToolCommand = { file: 'zstd', args: ['--decompress', '--stdout', '--quiet', `./${part.file}`] };
    const psql: ToolCommand = {
      file: 'psql',
      args: [
        '--no-psqlrc', '--set=ON_ERROR_STOP=1', `--dbname=${session.database}`,
        ...(session.role === undefined ? [] : [`--command=SET ROLE ${session.role}`]),
        `--command=COPY ${table.qualified} (${table.columns}) FROM STDIN (FORMAT ${table.format})`,
      ],
    };
    const { stdout } = await runPipeline(zstd, psql, { env: chunkSessionEnv(session.env, table.encoding, session.tools.serverMajor, session.env.PGOPTIONS), cwd: dir, signal });
    const loaded = copiedRows(stdout, `${table.label} from ${part.file}`);
    if (loaded !== part.rows) throw new Error(`${table.label}: ${part.file} loaded ${loaded} rows, the backup recorded ${part.rows}`);
  });
}

function copiedRows(output: string, what: string): number {
  const match = /^COPY (\d+)$/m.exec(output);
  if (!match) throw new Error(`${what}: psql did not report a row count (output: ${output.trim().slice(-300) || 'none'})`);
  return Number(match[1]);
}

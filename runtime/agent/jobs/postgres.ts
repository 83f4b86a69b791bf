/**
 * Postgres: per database, a directory-format archive plus the chunks of its big tables
 * (postgres-tables.ts), and the roles (globals.sql).
 *
 * Measured on a pgbench database (scale 70, 1.1 GB on disk, one table holding 99.9 % of it),
 * 2 cores, PG 15, 127.0.0.1; the machine is shared, so ranges are given:
 *
 * | what                                              | time      | size (bytes) |
 * |---------------------------------------------------|-----------|--------------|
 * | plain `pg_dump | gzip` (-6)                       | 4.2-5.3 s | 19,669,295   |
 * | plain pg_dump to /dev/null (no compression)       | 2.8-3.2 s | -            |
 * | -Fd -j2 -Z5 (every table in the archive)          | 3.0-5.2 s | 19,666,919   |
 * | two ctid halves, binary COPY, to /dev/null        | 1.45 s    | -            |
 * | two ctid halves, binary COPY, each `| zstd -3`    | 1.9-2.2 s | 10.0 MB      |
 * | the same with zstd -1 / text COPY                 | 2.2-2.5 s / 2.3-3.0 s | 11.5 / 5.7 MB |
 *
 * pg_dump -j parallelises across tables, so with one big table the second worker idles and no
 * compression level reaches half of `pg_dump | gzip`'s time (gzip levels 1-3 are 1.8 % larger
 * than it; 5 is the fastest that matches its size, and stays the level of the archive, which
 * PG 15's pg_dump cannot compress with zstd). Chunks of one table copied side by side use both
 * cores, and zstd compresses them at a fraction of gzip's cost to half its size. Restoring, binary
 * COPY is cheaper to parse than text (5.0 s against 7.0 s for the 7 M rows in one session).
 * bench/backup.ts repeats the end-to-end comparison; docs/benchmarks.md has its figures.
 *
 * Every dump runs inside an exported snapshot, and the row counts of every table are taken in
 * that same snapshot: verification then compares a restored copy with exactly what was dumped,
 * not with a source that has moved on.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Client } from 'pg';
import { secretFromEnv } from '../config';
import type { JobConfig } from '../config';
import { allOrNothing } from '../concurrency';
import { errorMessage, UserError } from '../errors';
import { largeOutputBufferWorks, runTool, toolVersion } from '../exec';
import type { Manifest } from '../manifest';
import { BackupOutcome, DriverContext, JobDriver, RestoreRequest, selectParts } from './driver';
import {
  affixedName, BEFORE_RESTORE_INFIX, databaseEntries, DatabaseProperties, hashPartitionRoots, isAffixedName, renameDatabaseSql,
  restoreStamp, RESTORING_INFIX, RESTORING_MARK, rolesOfGlobals, rollUpHashPartitions, sqlNamesRole, unrestorableName, globalsForMissingRoles,
} from './postgres-restore';
import { CHUNK_COMPRESSION, dumpChunks, loadChunks, planSplit, SplitTable } from './postgres-tables';

type PostgresJob = Extract<JobConfig, { kind: 'postgres' }>;

/** Who the agent connects as: the backup role (backup, verify) or the operator's restore credential. */
interface Credential {
  user: string;
  password: string;
}

export const PG_DUMP_COMPRESSION = 5;
const GLOBALS_FILE = 'globals.sql';
const archiveOf = (database: string) => `${database}.dump`;
/** Chunks of the database's big tables (postgres-tables.ts). */
const chunksOf = (database: string) => `${database}.tables`;

/** Row count per table ("schema.table"), as taken in the dump's snapshot. */
export type RowCounts = Record<string, number>;

interface PostgresDetails {
  /**
   * Row counts of every table; `split`: the tables whose data is in chunk files, not the archive;
   * `bytes`: the database's size on the server at dump time (pg_database_size; absent in backups
   * of older agents), what a restore needs beside the database it replaces.
   */
  databases: Record<string, { tables: RowCounts; split?: SplitTable[]; bytes?: number }>;
  compression: string;
  rolePasswords: boolean;
}

/** Ordinary tables with data of their own: not catalogs, not partitioned parents, not extension-owned. */
export const TABLES_SQL = `
  SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname) AS qualified, n.nspname || '.' || c.relname AS label
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  ORDER BY 2`;

/** Where a PostgreSQL major version's client tools are installed: Alpine's layout, then Debian's. */
export const TOOL_DIRS = (major: number) => [`/usr/libexec/postgresql${major}`, `/usr/lib/postgresql/${major}/bin`];

/**
 * The client tools for a server of major version `serverMajor`: the oldest installed version not
 * older than the server. pg_dump refuses a newer server, and a newer pg_restore sets parameters an
 * older server does not know (pg_restore 17 sets transaction_timeout, which 16 and older reject).
 * undefined: none is installed in a known place, so the tools on PATH are used.
 */
export function pickToolDir(serverMajor: number, exists: (file: string) => boolean): string | undefined {
  for (let major = serverMajor; major <= serverMajor + 10; major++) {
    const dir = TOOL_DIRS(major).find((candidate) => exists(path.join(candidate, 'pg_dump')));
    if (dir) return dir;
  }
  return undefined;
}

/** Whether this process has said that stdbuf does not work (once is enough). */
let warnedNoStdbuf = false;

/** How long the dump's session and pg_dump wait for a table lock before the run fails. */
const LOCK_WAIT = '60s';

/**
 * Every agent session resolves unqualified names in pg_catalog only: a tenant's database holds the
 * tenant's own functions and operators (a public.format(text, name, name) is a better match for
 * format('%I.%I', …) than pg_catalog's), which would otherwise run with the agent's rights.
 */
export const SAFE_SEARCH_PATH = '-c search_path=pg_catalog';

/** Session settings that speed a restore up and that any role may set (pg_restore and psql read PGOPTIONS). */
export const RESTORE_SESSION = `${SAFE_SEARCH_PATH} -c maintenance_work_mem=512MB -c synchronous_commit=off`;

export class PostgresDriver implements JobDriver {
  private readonly pg: PostgresJob['postgres'];
  /** Set once the server's version is known (pickToolDir); undefined: the tools on PATH. */
  private toolDir?: string;
  private serverMajor = 0;

  constructor(job: PostgresJob) {
    this.pg = job.postgres;
  }

  async backup(dir: string, ctx: DriverContext): Promise<BackupOutcome> {
    const credential = this.backupCredential(ctx);
    const first = await this.connect(this.pg.databases[0], credential, ctx);
    let version: string;
    let superuser: boolean;
    try {
      version = (await first.query<{ server_version: string }>('SHOW server_version')).rows[0].server_version;
      await this.chooseTools(first, ctx);
      superuser = await isSuperuser(first);
    } finally {
      await first.end();
    }
    const databases: PostgresDetails['databases'] = {};
    const dumpDatabases = async (signal: AbortSignal) => {
      for (const database of this.pg.databases) {
        databases[database] = await this.dumpDatabase(database, dir, credential, { ...ctx, signal });
        ctx.log.info('database dumped', { database, tables: Object.keys(databases[database].tables).length, split: (databases[database].split ?? []).map((t) => t.label).join(', ') });
      }
    };
    // The roles are dumped, and the tool versions read, while the databases are dumped.
    await allOrNothing([(signal) => this.dumpGlobals(dir, superuser, credential, { ...ctx, signal }), dumpDatabases], ctx.signal);
    const tools = this.toolEnv(credential);
    const [pgDump, pgDumpall] = await Promise.all([toolVersion('pg_dump', tools), toolVersion('pg_dumpall', tools)]);
    const split = Object.values(databases).some((d) => (d.split ?? []).length > 0);
    const chunkTools = split ? await Promise.all([toolVersion('psql', tools), toolVersion('zstd', tools)]) : undefined;
    const details: PostgresDetails = { databases, compression: `archive gzip:${PG_DUMP_COMPRESSION}, chunks zstd:${CHUNK_COMPRESSION}`, rolePasswords: superuser };
    return {
      source: { version, address: `${this.pg.host}:${this.pg.port}` },
      tools: { pg_dump: pgDump, pg_dumpall: pgDumpall, ...(chunkTools ? { psql: chunkTools[0], zstd: chunkTools[1] } : {}) },
      details: { ...details },
      formatVersion: chunkTools ? 2 : 1,
    };
  }

  /** Role passwords can only be read by a superuser; other roles get the roles without them. */
  private async dumpGlobals(dir: string, superuser: boolean, credential: Credential, ctx: DriverContext): Promise<void> {
    const args = ['--globals-only', `--file=${path.join(dir, GLOBALS_FILE)}`, `--database=${this.maintenanceDatabase}`];
    if (!superuser) {
      args.push('--no-role-passwords');
      ctx.log.warn('backup role is not a superuser: globals.sql has the roles without their passwords', { user: credential.user });
    }
    await runTool('pg_dumpall', args, { env: this.toolEnv(credential), signal: ctx.signal });
  }

  /**
   * pg_dump and the chunk copies of the big tables run side by side in one exported snapshot.
   * Every table is locked by this session first and checked to still be the table the snapshot
   * saw (lockUnchanged), so no DDL changes them until the dump ends. Nothing waits for a lock for long: this session and pg_dump
   * give up after LOCK_WAIT, the chunk sessions at once (they could only queue behind a schema
   * change that itself waits for the dump). Row counts come from the same snapshot: from the
   * chunk copies' own counts for split tables, from count(*) for the rest.
   */
  private async dumpDatabase(database: string, dir: string, credential: Credential, ctx: DriverContext): Promise<PostgresDetails['databases'][string]> {
    const session = await this.connect(database, credential, ctx);
    try {
      await session.query(`SET lock_timeout = '${LOCK_WAIT}'`);
      const snapshot = await snapshotWithReadableLargeObjects(session, database);
      const bytes = Number((await session.query<{ bytes: string }>('SELECT pg_database_size(current_database()) AS bytes')).rows[0].bytes);
      const tables = (await session.query<TableRef>(TABLES_SQL)).rows;
      const planned = await planSplit(session, this.pg.splitTablesLargerThanMb * 1024 * 1024, this.pg.parallelJobs);
      const hashPartitioned = (await session.query<{ any: boolean }>("SELECT EXISTS (SELECT FROM pg_partitioned_table WHERE partstrat = 'h') AS any")).rows[0].any;
      await lockUnchanged(session, tables);
      const env = this.toolEnv(credential);
      if (planned.length > 0 && !largeOutputBufferWorks(env) && !warnedNoStdbuf) {
        warnedNoStdbuf = true;
        ctx.log.warn("coreutils' stdbuf does not work here: chunks are copied with psql's own stdout buffer, about 10 % slower");
      }
      const dump = (signal: AbortSignal) =>
        runTool(
          'pg_dump',
          [
            '--format=directory', `--jobs=${this.pg.parallelJobs}`, `--compress=${PG_DUMP_COMPRESSION}`, `--snapshot=${snapshot}`, `--lock-wait-timeout=${LOCK_WAIT}`,
            // A hash of an enum, or of a composite, array or domain holding one, depends on OIDs
            // a restore changes: such rows may belong to another partition there. pg_dump routes
            // them through the root by itself only for a key column that is an enum.
            ...(hashPartitioned ? ['--load-via-partition-root'] : []),
            ...planned.map((table) => `--exclude-table-data=${table.pattern}`),
            `--file=${path.join(dir, archiveOf(database))}`, `--dbname=${database}`,
          ],
          { env, signal },
        ).then(() => undefined);
      const chunks = (signal: AbortSignal) =>
        dumpChunks(dir, chunksOf(database), planned, snapshot, { database, env, workers: this.pg.parallelJobs, signal, serverMajor: this.serverMajor });
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

  async check(dir: string, details: Record<string, unknown>): Promise<string> {
    const { databases } = details as unknown as PostgresDetails;
    const summaries: string[] = [];
    for (const [database, { split = [] }] of Object.entries(databases)) {
      const toc = await runTool('pg_restore', ['--list', path.join(dir, archiveOf(database))], { env: this.toolPath() });
      const entries = toc.split('\n').filter((line) => line.trim() !== '' && !line.startsWith(';')).length;
      const parts = split.flatMap((table) => table.parts);
      for (const part of parts) checkZstdFile(path.join(dir, part.file));
      summaries.push(`${database}: ${entries} archive entries${parts.length > 0 ? `, ${split.length} tables in ${parts.length} chunks` : ''}`);
    }
    if (!fs.existsSync(path.join(dir, GLOBALS_FILE))) throw new Error(`${GLOBALS_FILE} is missing`);
    return summaries.join(', ');
  }

  /**
   * Restores each database into a scratch database on the source server, compares the row count
   * of every table with the counts taken at dump time (compareWithDump), and drops the scratch
   * database again.
   * Runs as the backup role: it needs CREATEDB, and restores without owners and grants (the
   * scratch copy is its own), which row counts do not need.
   */
  async verify(dir: string, manifest: Manifest, ctx: DriverContext): Promise<string> {
    const { databases } = manifest.details as unknown as PostgresDetails;
    const credential = this.backupCredential(ctx);
    await this.withMaintenance(credential, ctx, (db) => this.chooseTools(db, ctx, archiveMajor(manifest)));
    const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
    const summaries: string[] = [];
    for (const [database, { tables }] of Object.entries(databases)) {
      const scratch = scratchName(database, stamp);
      await this.createDatabase(scratch, credential, ctx);
      try {
        await this.restoreDatabase(dir, database, scratch, { extra: ['--no-owner', '--no-privileges'], details: databases[database] }, credential, ctx);
        const problems = await this.compareWithDump(scratch, tables, credential, ctx);
        if (problems.length > 0) throw new Error(`${database}: restored copy differs from the dump's snapshot: ${problems.join('; ')}`);
        const rows = Object.values(tables).reduce((a, b) => a + b, 0);
        summaries.push(`${database}: ${Object.keys(tables).length} tables, ${rows} rows match`);
      } finally {
        await this.dropDatabase(scratch, credential, ctx);
      }
    }
    return summaries.join(', ');
  }

  /**
   * Preflight for every database first (target, roles, tool and server versions; free space is
   * logged, not checked: PostgreSQL reports none over SQL), then each database in turn: restored
   * and checked under a temporary name, given its database-level properties, and swapped into
   * place (restoreAndSwap). Nothing existing is written before its own swap.
   */
  async restore(request: RestoreRequest, ctx: DriverContext): Promise<string> {
    const { databases } = request.manifest.details as unknown as PostgresDetails;
    const sources = selectParts(Object.keys(databases), request.only, 'database');
    if (request.target !== undefined && sources.length > 1) {
      throw new UserError(`--target names one database but the backup has ${sources.length} (${sources.join(', ')}); add --only <database>`);
    }
    for (const source of sources) {
      const problem = unrestorableName(request.target ?? source);
      if (problem) throw new UserError(`"${request.target ?? source}" cannot be restored into: ${problem}`);
    }
    const credential = this.restoreCredential(request, ctx);
    await this.withMaintenance(credential, ctx, (db) => this.chooseTools(db, ctx, archiveMajor(request.manifest)));
    for (const source of sources) {
      await this.reopenAfterInterruptedSwap(request.target ?? source, credential, ctx);
      await this.checkTarget(request.target ?? source, request.force, credential, ctx);
    }
    await this.checkVersions(request.manifest, ctx);
    await this.checkRoles(request, sources, credential, ctx);
    for (const source of sources) logSpaceNeeded(request.manifest, source, databases[source], ctx);
    if (request.withGlobals) await this.applyGlobals(request.dir, credential, ctx);
    const stamp = restoreStamp(new Date());
    const done: string[] = [];
    for (const source of sources) done.push(await this.restoreAndSwap(request, source, request.target ?? source, stamp, credential, ctx));
    return `restored ${done.join('; ')} on ${this.pg.host}:${this.pg.port}`;
  }

  /**
   * Creates the roles of globals.sql this server lacks (globalsForMissingRoles), in one
   * transaction that stops at the first error. Roles that exist are left exactly as they are.
   */
  private async applyGlobals(dir: string, credential: Credential, ctx: DriverContext): Promise<void> {
    const globals = await fs.promises.readFile(path.join(dir, GLOBALS_FILE), 'utf8');
    const missing = await this.withMaintenance(credential, ctx, async (db) =>
      (await db.query<{ name: string }>('SELECT r.name FROM unnest($1::text[]) r(name) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r.name)', [rolesOfGlobals(globals)])).rows.map((r) => r.name),
    );
    if (missing.length === 0) return;
    ctx.log.info('creating the roles this server lacks from globals.sql (--with-globals)', { roles: missing.join(', ') });
    await runTool('psql', ['--quiet', '--no-psqlrc', '--set=ON_ERROR_STOP=1', '--single-transaction', `--dbname=${this.maintenanceDatabase}`], {
      env: this.toolEnv(credential),
      signal: ctx.signal,
      input: globalsForMissingRoles(globals, new Set(missing)),
    });
  }

  /** A non-empty target is replaced (and kept aside) only with --force. */
  private async checkTarget(target: string, force: boolean, credential: Credential, ctx: DriverContext): Promise<void> {
    const exists = await this.withMaintenance(credential, ctx, async (db) => (await db.query('SELECT 1 FROM pg_database WHERE datname = $1', [target])).rowCount === 1);
    if (!exists) return;
    const relations = await this.withDatabase(target, credential, ctx, userRelationCount);
    if (relations > 0 && !force) {
      throw new UserError(`database "${target}" already holds ${relations} tables or other relations; restore into another --target, or pass --force to replace it (it is kept as ${target}${BEFORE_RESTORE_INFIX}<time>)`);
    }
  }

  /** pg_restore must read the archive; a server older than the source may reject its SQL. */
  private async checkVersions(manifest: Manifest, ctx: DriverContext): Promise<void> {
    const needed = archiveMajor(manifest);
    const tool = await toolVersion('pg_restore', this.toolPath());
    const major = Number(/\(PostgreSQL\) (\d+)/.exec(tool)?.[1] ?? 0);
    if (needed > 0 && major < needed) {
      throw new UserError(`${tool} cannot read an archive written by pg_dump ${needed}: install PostgreSQL ${needed}'s client tools (or newer) where the agent runs`);
    }
    const sourceMajor = Number(/^(\d+)/.exec(manifest.source.version ?? '')?.[1] ?? 0);
    if (sourceMajor > this.serverMajor) ctx.log.warn('restoring into an older PostgreSQL than the backup came from: definitions it does not know fail the restore (the existing database stays as it is)', { source: sourceMajor, server: this.serverMajor });
  }

  /**
   * The roles the archives name (owners, grantees, policies' roles, role settings) must exist, or
   * be created by --with-globals: among the roles of globals.sql, those the server lacks and an
   * archive names.
   */
  private async checkRoles(request: RestoreRequest, sources: string[], credential: Credential, ctx: DriverContext): Promise<void> {
    const roles = rolesOfGlobals(await fs.promises.readFile(path.join(request.dir, GLOBALS_FILE), 'utf8'));
    const absent = await this.withMaintenance(credential, ctx, async (db) => {
      const { rows } = await db.query<{ name: string; quoted: string }>('SELECT r.name, quote_ident(r.name) AS quoted FROM unnest($1::text[]) r(name) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r.name)', [roles]);
      return rows;
    });
    if (absent.length === 0) return;
    const missing = new Set<string>();
    for (const source of sources) {
      const sql = await runTool('pg_restore', ['--create', '--schema-only', '--file=-', path.join(request.dir, archiveOf(source))], { env: this.toolPath(), signal: ctx.signal });
      for (const role of absent) if (sqlNamesRole(sql, role.quoted)) missing.add(role.name);
    }
    if (missing.size === 0) return;
    const names = [...missing].sort().join(', ');
    if (request.withGlobals) {
      ctx.log.info('roles the backup needs are created from globals.sql (--with-globals)', { roles: names });
      return;
    }
    throw new UserError(
      `the backup needs roles this server does not have: ${names}; nothing was changed. Create them, or run again with --with-globals ` +
        `to create the backup's roles from its globals.sql: tenantry-agent ${request.commandLine} --with-globals`,
    );
  }

  /**
   * Restores `source` into `<target>__restoring_<stamp>`, checks its row counts against the dump's,
   * gives it the archive's database-level properties, and swaps it into place. Any failure before
   * the swap drops the temporary database and leaves the target as it was.
   */
  private async restoreAndSwap(request: RestoreRequest, source: string, target: string, stamp: string, credential: Credential, ctx: DriverContext): Promise<string> {
    const details = (request.manifest.details as unknown as PostgresDetails).databases[source];
    const temp = affixedName(target, RESTORING_INFIX, stamp);
    await this.dropLeftovers(target, credential, ctx);
    let created = false;
    try {
      const properties = await this.databaseProperties(path.join(request.dir, archiveOf(source)), source, temp, credential, ctx);
      // Superusers ignore a connection limit, so the restore's sessions get in and nobody else does.
      await this.withMaintenance(credential, ctx, async (db) => {
        await db.query(properties.create.replace(/;$/, ' CONNECTION LIMIT = 0;'));
        created = true;
        // The agent's mark: only a database carrying it is ever dropped as a leftover (dropLeftovers).
        await db.query(`COMMENT ON DATABASE ${quoteIdent(temp)} IS '${RESTORING_MARK}'`);
        // Its owner from the start: the rows and indexes are created as that role (restoreDatabase),
        // which needs the rights a database's owner has on its public schema.
        await db.query(`ALTER DATABASE ${quoteIdent(temp)} OWNER TO ${quoteIdent(properties.owner)}`);
      });
      ctx.log.info('restoring into a temporary database', { database: target, temporary: temp });
      await this.restoreDatabase(request.dir, source, temp, { extra: [], details, role: properties.owner }, credential, ctx);
      const problems = await this.compareWithDump(temp, details.tables, credential, ctx);
      if (problems.length > 0) throw new Error(`the restored copy differs from the dump's snapshot: ${problems.join('; ')}`);
      await this.withMaintenance(credential, ctx, (db) => db.query(`ALTER DATABASE ${quoteIdent(temp)} CONNECTION LIMIT -1;\n${properties.rest}`));
    } catch (error) {
      const left = created ? await this.discard(temp, credential, ctx) : '';
      const hint = /role "[^"]*" does not exist/.test(errorMessage(error)) && !request.withGlobals ? '; run again with --with-globals to create the backup\'s roles first' : '';
      throw new Error(`${source}: restore failed before anything existing was changed ("${target}" is as it was${left}): ${errorMessage(error)}${hint}`);
    }
    const aside = await this.swap(target, temp, affixedName(target, BEFORE_RESTORE_INFIX, stamp), credential, ctx).catch(async (error: unknown) => {
      const left = await this.discard(temp, credential, ctx);
      throw new Error(`${source}: restored, but could not be swapped into place ("${target}" is as it was${left}): ${errorMessage(error)}`);
    });
    const what = source === target ? target : `${source} -> ${target}`;
    return aside ? `${what} (the previous database is kept as "${aside}"; drop it once you no longer need it: DROP DATABASE ${quoteIdent(aside)};)` : what;
  }

  /** The archive's CREATE DATABASE and database-level properties, for `temp` instead of `source`. */
  private async databaseProperties(archive: string, source: string, temp: string, credential: Credential, ctx: DriverContext): Promise<DatabaseProperties & { owner: string }> {
    const toc = await runTool('pg_restore', ['--create', '--list', archive], { env: this.toolPath(), signal: ctx.signal });
    const owner = databaseOwner(toc, source);
    // Beside the backup's files: the backup container has a read-only root and no writable /tmp
    // (pg_restore cannot read its list from a pipe: it opens the file by name).
    const list = path.join(path.dirname(archive), `.restore-${process.pid}-${source}.list`);
    await fs.promises.writeFile(list, databaseEntries(toc));
    try {
      const sql = await runTool('pg_restore', ['--create', `--use-list=${list}`, '--file=-', archive], { env: this.toolPath(), signal: ctx.signal });
      const [quoted, renamed] = await this.withMaintenance(credential, ctx, async (db) => {
        const { rows } = await db.query<{ a: string; b: string }>('SELECT quote_ident($1) AS a, quote_ident($2) AS b', [source, temp]);
        return [rows[0].a, rows[0].b];
      });
      return { ...renameDatabaseSql(sql, quoted, renamed), owner };
    } finally {
      await fs.promises.rm(list, { force: true });
    }
  }

  /**
   * Renames the existing target aside and the restored database into its place, in one
   * transaction. Renaming needs the target free of sessions: new connections are refused first
   * (ALLOW_CONNECTIONS false), then the application's sessions are ended; clients reconnect to
   * the restored database under the same name. The kept database gets its own ALLOW_CONNECTIONS
   * back. Returns the kept database's name, or undefined when there was none.
   */
  private swap(target: string, temp: string, aside: string, credential: Credential, ctx: DriverContext): Promise<string | undefined> {
    return this.withMaintenance(credential, ctx, async (db) => {
      const existing = (await db.query<{ allow: boolean }>('SELECT datallowconn AS allow FROM pg_database WHERE datname = $1', [target])).rows[0];
      if (!existing) {
        await db.query(`ALTER DATABASE ${quoteIdent(temp)} RENAME TO ${quoteIdent(target)}`);
        return undefined;
      }
      // Bounded so that a stopped agent (STOP_DEADLINE_MS) still gets to reopen the target below.
      const deadline = Date.now() + SWAP_DEADLINE_MS;
      if (existing.allow) await db.query(`ALTER DATABASE ${quoteIdent(target)} WITH ALLOW_CONNECTIONS false`);
      try {
        for (let attempt = 1; ; attempt++) {
          const ended = (await db.query<{ n: string }>('SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [target])).rows[0].n;
          if (Number(ended) > 0) ctx.log.warn('ended sessions on the database being replaced', { database: target, sessions: Number(ended) });
          try {
            await db.query('BEGIN');
            // RENAME waits up to 5 s for ended sessions to go; never past the deadline.
            await db.query(`SET LOCAL statement_timeout = ${Math.max(1, deadline - Date.now())}`);
            await db.query(`ALTER DATABASE ${quoteIdent(target)} RENAME TO ${quoteIdent(aside)}`);
            await db.query(`ALTER DATABASE ${quoteIdent(temp)} RENAME TO ${quoteIdent(target)}`);
            await db.query(`ALTER DATABASE ${quoteIdent(aside)} WITH ALLOW_CONNECTIONS ${existing.allow}`);
            await db.query('COMMIT');
            return aside;
          } catch (error) {
            await db.query('ROLLBACK').catch(() => undefined);
            const retry = /being accessed by other users/.test(errorMessage(error)) && attempt < SWAP_ATTEMPTS && Date.now() < deadline;
            if (!retry) throw error;
          }
        }
      } catch (error) {
        await db.query(`ALTER DATABASE ${quoteIdent(target)} WITH ALLOW_CONNECTIONS ${existing.allow}`).catch(() => undefined);
        throw error;
      }
    });
  }

  /**
   * A swap killed between closing the target and the rename (SIGKILL, a lost connection) leaves
   * the target refusing connections, beside a fully restored temporary database (its connection
   * limit no longer 0: restoreAndSwap opens it just before the swap). The next restore of the
   * target opens it again before anything else (its checks connect to it, and the swap would take
   * the closed state for the target's own). A
   * target that refused connections on its own before that interrupted swap is opened as well;
   * the log says so.
   */
  private async reopenAfterInterruptedSwap(target: string, credential: Credential, ctx: DriverContext): Promise<void> {
    await this.withMaintenance(credential, ctx, async (db) => {
      const { rows } = await db.query<{ datname: string }>(
        `SELECT r.datname FROM pg_database r WHERE starts_with(r.datname, $1) AND r.datconnlimit <> 0
           AND EXISTS (SELECT FROM pg_database t WHERE t.datname = $2 AND NOT t.datallowconn)`,
        [`${target}${RESTORING_INFIX}`, target],
      );
      if (!rows.some((r) => isAffixedName(r.datname, target, RESTORING_INFIX))) return;
      ctx.log.warn('an interrupted restore left the database refusing connections; it accepts them again', { database: target });
      await db.query(`ALTER DATABASE ${quoteIdent(target)} WITH ALLOW_CONNECTIONS true`);
    });
  }

  /** Drops a half-restored database; when it cannot, says what is left and how to drop it. */
  private async discard(temp: string, credential: Credential, ctx: DriverContext): Promise<string> {
    try {
      await this.dropDatabase(temp, credential, ctx);
      return ', the half-restored copy is dropped';
    } catch (error) {
      ctx.log.error('could not drop the half-restored database', { database: temp, error: errorMessage(error) });
      return `; the half-restored copy "${temp}" is left behind: drop it with DROP DATABASE ${quoteIdent(temp)};`;
    }
  }

  /**
   * Half-restored databases of an earlier restore of `target` that could not drop them (a server
   * that died): exactly `<target>__restoring_<stamp>`, and still carrying the mark the restore gave
   * them at creation. A database merely named so is someone else's, and stays.
   */
  private async dropLeftovers(target: string, credential: Credential, ctx: DriverContext): Promise<void> {
    const candidates = await this.withMaintenance(credential, ctx, async (db) =>
      (await db.query<{ datname: string; mark: string | null }>("SELECT datname, shobj_description(oid, 'pg_database') AS mark FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1", [`${target}${RESTORING_INFIX}`])).rows,
    );
    for (const { datname: name, mark } of candidates) {
      if (!isAffixedName(name, target, RESTORING_INFIX)) continue;
      if (mark !== RESTORING_MARK) {
        ctx.log.warn('not dropping a database named like a half-restored copy: the agent did not mark it as one', { database: name });
        continue;
      }
      ctx.log.warn('dropping a half-restored database an earlier restore left behind', { database: name });
      await this.dropDatabase(name, credential, ctx);
    }
  }

  /**
   * Row counts of every table of `database` against the dump's. Hash partitions are compared by
   * their root's total (see hashPartitionRoots); every other table, list and range partitions
   * included, one by one.
   */
  private compareWithDump(database: string, expected: RowCounts, credential: Credential, ctx: DriverContext): Promise<string[]> {
    return this.withDatabase(database, credential, ctx, async (db) => {
      const actual = await countRows(db, (await db.query<TableRef>(TABLES_SQL)).rows);
      const roots = await hashPartitionRoots(db);
      return compareCounts(rollUpHashPartitions(expected, roots), rollUpHashPartitions(actual, roots));
    });
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
  private async restoreDatabase(
    dir: string,
    source: string,
    target: string,
    how: { extra: string[]; details: PostgresDetails['databases'][string]; role?: string },
    credential: Credential,
    ctx: DriverContext,
  ): Promise<void> {
    const archive = path.join(dir, archiveOf(source));
    await this.pgRestore(archive, target, ['--section=pre-data', ...how.extra], credential, ctx);
    if (how.role !== undefined) await this.checkLoadableAs(target, how.role, credential, ctx);
    const env = { ...this.toolEnv(credential), PGOPTIONS: RESTORE_SESSION };
    const asOwner = how.role === undefined ? [] : [`--role=${how.role}`];
    await allOrNothing(
      [
        (signal) => this.pgRestore(archive, target, ['--section=data', ...asOwner, ...how.extra], credential, { ...ctx, signal }),
        (signal) =>
          loadChunks(dir, how.details.split ?? [], {
            database: target, env, workers: this.pg.parallelJobs, signal, serverMajor: this.serverMajor,
            ...(how.role === undefined ? {} : { role: quoteIdent(how.role) }),
          }),
      ],
      ctx.signal,
    );
    await this.pgRestore(archive, target, ['--section=post-data', ...asOwner, ...how.extra], credential, ctx);
  }

  /** Tables the owner cannot load as itself are refused, rather than loaded with the restore credential's rights. */
  private async checkLoadableAs(database: string, role: string, credential: Credential, ctx: DriverContext): Promise<void> {
    const { rows } = await this.withDatabase(database, credential, ctx, (db) =>
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

  private pgRestore(archive: string, database: string, extra: string[], credential: Credential, ctx: DriverContext): Promise<string> {
    return runTool('pg_restore', ['--exit-on-error', `--jobs=${this.pg.parallelJobs}`, ...extra, `--dbname=${database}`, archive], {
      env: { ...this.toolEnv(credential), PGOPTIONS: RESTORE_SESSION },
      signal: ctx.signal,
    });
  }

  /**
   * A new database lets PUBLIC connect by default; on a shared server another tenant's backup
   * role (pg_read_all_data) could then read what is restored into it. It is created closed to
   * connections, PUBLIC loses its rights, and only then does it open.
   */
  private createDatabase(name: string, credential: Credential, ctx: DriverContext): Promise<void> {
    return this.withMaintenance(credential, ctx, async (db) => {
      await db.query(`CREATE DATABASE ${quoteIdent(name)} WITH ALLOW_CONNECTIONS false`);
      await db.query(`REVOKE ALL ON DATABASE ${quoteIdent(name)} FROM PUBLIC`);
      await db.query(`ALTER DATABASE ${quoteIdent(name)} WITH ALLOW_CONNECTIONS true`);
    });
  }

  private dropDatabase(name: string, credential: Credential, ctx: DriverContext): Promise<void> {
    return this.withMaintenance(credential, ctx, async (db) => {
      await db.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
    });
  }

  private backupCredential(ctx: DriverContext): Credential {
    return { user: this.pg.user, password: secretFromEnv(this.pg.passwordEnv, ctx.env) };
  }

  /**
   * A restore creates databases owned by other roles and brings back their grants: more than the
   * backup role may do. Its credential is passed by an operator for this command only; without it
   * the restore stops here, before it touches anything, and says how to pass it.
   */
  beforeRestore(request: Pick<RestoreRequest, 'commandLine' | 'target'>, ctx: DriverContext): void {
    if (request.target !== undefined) checkTargetName(request.target);
    this.restoreCredential(request, ctx);
  }

  private restoreCredential(request: Pick<RestoreRequest, 'commandLine'>, ctx: DriverContext): Credential {
    const { userEnv, passwordEnv, source } = this.pg.restoreCredential;
    const user = ctx.env[userEnv];
    const password = ctx.env[passwordEnv];
    if (user && password) return { user, password };
    throw new UserError(
      `restore needs an elevated Postgres credential, which this container does not hold (its backup role ${this.pg.user} may only read): ` +
        `set ${userEnv} and ${passwordEnv} in your shell${source ? ` from ${source}` : ''}, then run ` +
        `docker exec -e ${userEnv} -e ${passwordEnv} ${os.hostname()} tenantry-agent ${request.commandLine}`,
    );
  }

  /** CREATE/DROP DATABASE need a connection to another database, one that survives the restore. */
  private withMaintenance<T>(credential: Credential, ctx: DriverContext, use: (db: Client) => Promise<T>): Promise<T> {
    return this.withDatabase(this.maintenanceDatabase, credential, ctx, use);
  }

  private get maintenanceDatabase(): string {
    return this.pg.maintenanceDatabase ?? 'postgres';
  }

  private async withDatabase<T>(database: string, credential: Credential, ctx: DriverContext, use: (db: Client) => Promise<T>): Promise<T> {
    const client = await this.connect(database, credential, ctx);
    try {
      return await use(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  private async connect(database: string, credential: Credential, ctx: DriverContext): Promise<Client> {
    const client = new Client({
      host: this.pg.host,
      port: this.pg.port,
      user: credential.user,
      password: credential.password,
      database,
      application_name: 'tenantry-agent',
      // A database's or role's timeouts are for its applications: the agent's queries (count(*)
      // of a big table, a session idling in the dump's transaction) must not be cut short.
      options: `${SAFE_SEARCH_PATH} -c statement_timeout=0 -c idle_in_transaction_session_timeout=0`,
      connectionTimeoutMillis: 10_000,
    });
    // Without a listener, a server that goes away while the connection idles crashes the agent.
    client.on('error', (error) => ctx.log.warn('postgres connection lost', { database, error: error.message }));
    await client.connect();
    // PostgreSQL 17's transaction_timeout would end a long dump's transaction; older servers
    // reject the name, hence the guard.
    await client.query("SELECT set_config('transaction_timeout', '0', false) WHERE current_setting('server_version_num')::int >= 170000");
    return client;
  }

  private toolEnv(credential: Credential): NodeJS.ProcessEnv {
    return { ...this.toolPath(), PGHOST: this.pg.host, PGPORT: String(this.pg.port), PGUSER: credential.user, PGPASSWORD: credential.password, PGCONNECT_TIMEOUT: '10', PGAPPNAME: 'tenantry-agent', PGOPTIONS: SAFE_SEARCH_PATH };
  }

  /** PATH with the chosen tools first, when a version-matched directory was found. */
  private toolPath(): NodeJS.ProcessEnv {
    return this.toolDir ? { PATH: [this.toolDir, process.env.PATH].filter(Boolean).join(':') } : {};
  }

  /**
   * Picks the client tools for the server `db` is connected to (pickToolDir), and for a restore
   * not older than the pg_dump that wrote the archive (`archiveMajor`): pg_restore cannot read
   * the archive format of a newer pg_dump.
   */
  private async chooseTools(db: Client, ctx: DriverContext, archiveMajor = 0): Promise<void> {
    this.serverMajor = Math.floor(Number((await db.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0].v) / 10000);
    const major = Math.max(this.serverMajor, archiveMajor);
    this.toolDir = pickToolDir(major, fs.existsSync);
    if (!this.toolDir) ctx.log.warn('no client tools installed for this server version; using those on PATH', { serverMajor: this.serverMajor, needed: major });
  }
}

/** Renaming waits up to 5 s for ended sessions to go; a client that reconnected in between gets another try. */
const SWAP_ATTEMPTS = 3;
/**
 * The whole swap, from closing the target to the rename, stays this far under the agent's stop
 * deadline (STOP_DEADLINE_MS, 9 s): a stopped restore still reopens the target itself.
 */
const SWAP_DEADLINE_MS = 6000;

/**
 * The server needs room for the restored copy beside the database it replaces (kept until the
 * operator drops it). PostgreSQL reports no free disk space over SQL, so this is said, not
 * checked; running out fails the restore in the temporary database and leaves the existing one.
 */
function logSpaceNeeded(manifest: Manifest, source: string, details: PostgresDetails['databases'][string], ctx: DriverContext): void {
  const archived = manifest.files.filter((f) => f.path.startsWith(`${archiveOf(source)}/`) || f.path.startsWith(`${chunksOf(source)}/`)).reduce((sum, f) => sum + f.size, 0);
  ctx.log.info('free space on the server is not checked (PostgreSQL reports none over SQL): the restored copy needs about the size the database had at dump time, beside the one it replaces', {
    database: source,
    ...(details.bytes !== undefined ? { bytesAtDump: details.bytes } : {}),
    compressedBytes: archived,
  });
}

/** Whether the connected role is a superuser (it then reads role passwords and every large object). */
async function isSuperuser(db: Client): Promise<boolean> {
  return (await db.query<{ rolsuper: boolean }>('SELECT rolsuper FROM pg_roles WHERE rolname = current_user')).rows[0]?.rolsuper ?? false;
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

export interface TableRef {
  oid: number;
  qualified: string;
  label: string;
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

async function userRelationCount(db: Client): Promise<number> {
  const result = await db.query<{ n: string }>(`
    SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'`);
  return Number(result.rows[0].n);
}

/**
 * A --target is a database name, used as given: libpq would read one with "=" in it, or one
 * that starts like a URI, as a connection string (other host, other user, other options), and
 * PostgreSQL would silently cut one longer than 63 bytes to another name.
 */
export function checkTargetName(target: string): void {
  const problem =
    Buffer.byteLength(target) > 63 ? 'is longer than 63 bytes (PostgreSQL would shorten it to another name)'
    : /[\p{Cc}]/u.test(target) ? 'holds control characters'
    : target.includes('=') || /^postgres(ql)?:\/\//i.test(target) ? 'would be read by libpq as a connection string, not a database name'
    : undefined;
  if (problem) throw new UserError(`--target ${JSON.stringify(target)} ${problem}; name the database to restore into, e.g. --target app_copy`);
}

/**
 * The owner of the archive's database, from `pg_restore --create --list`: its DATABASE entry
 * reads `<id>; <catalog> <oid> DATABASE - <name> <owner>`, and the name is known, so an owner
 * with spaces in it is read whole.
 */
export function databaseOwner(toc: string, database: string): string {
  const head = `DATABASE - ${database} `;
  for (const line of toc.split('\n')) {
    if (/^\d+; \d+ \d+ DATABASE - /.test(line) && line.includes(head)) return line.slice(line.indexOf(head) + head.length);
  }
  throw new Error(`the archive has no DATABASE entry for ${database}`);
}

/** The major version of the pg_dump that wrote a backup, from its manifest (0 when unknown). */
export function archiveMajor(manifest: Pick<Manifest, 'tools'>): number {
  const match = /\(PostgreSQL\) (\d+)/.exec(manifest.tools.pg_dump ?? '');
  return match ? Number(match[1]) : 0;
}

/** Same keys in the order TABLES_SQL lists them, so manifests read the same whichever way a count was taken. */
function sortKeys(counts: RowCounts): RowCounts {
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** A chunk the cheap per-run check can vouch for: present, and a zstd frame (its magic number). */
function checkZstdFile(file: string): void {
  const header = Buffer.alloc(4);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, header, 0, 4, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (header.readUInt32LE(0) !== 0xfd2fb528) throw new Error(`${path.basename(file)} is not a zstd file`);
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

/** `tenantry_verify_<db>_<stamp>`, within Postgres's 63-byte identifier limit. */
function scratchName(database: string, stamp: string): string {
  const safe = database.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  return `tenantry_verify_${safe.slice(0, 63 - 'tenantry_verify_'.length - stamp.length - 1)}_${stamp}`;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

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
import { UserError } from '../errors';
import { largeOutputBufferWorks, runTool, toolVersion } from '../exec';
import type { Manifest } from '../manifest';
import { BackupOutcome, DriverContext, JobDriver, RestoreRequest, selectParts } from './driver';
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
type RowCounts = Record<string, number>;

interface PostgresDetails {
  /** Row counts of every table; `split`: the tables whose data is in chunk files, not the archive. */
  databases: Record<string, { tables: RowCounts; split?: SplitTable[] }>;
  compression: string;
  rolePasswords: boolean;
}

/** Ordinary tables with data of their own: not catalogs, not partitioned parents, not extension-owned. */
export const TABLES_SQL = `
  SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS qualified, n.nspname || '.' || c.relname AS label
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  ORDER BY 2`;

/** Where a PostgreSQL major version's client tools are installed: Alpine's layout, then Debian's. */
const TOOL_DIRS = (major: number) => [`/usr/libexec/postgresql${major}`, `/usr/lib/postgresql/${major}/bin`];

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

/** Session settings that speed a restore up and that any role may set (pg_restore and psql read PGOPTIONS). */
export const RESTORE_SESSION = '-c maintenance_work_mem=512MB -c synchronous_commit=off';

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
      const tables = (await session.query<TableRef>(TABLES_SQL)).rows;
      const planned = await planSplit(session, this.pg.splitTablesLargerThanMb * 1024 * 1024, this.pg.parallelJobs);
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
      return split.length > 0 ? { tables: sortKeys(counts), split } : { tables: counts };
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
   * of every table with the counts taken at dump time, and drops the scratch database again.
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
        await this.restoreDatabase(dir, database, scratch, { create: false, extra: ['--no-owner', '--no-privileges'], details: databases[database] }, credential, ctx);
        const restored = await this.withDatabase(scratch, credential, ctx, async (db) => countRows(db, (await db.query<TableRef>(TABLES_SQL)).rows));
        const problems = compareCounts(tables, restored);
        if (problems.length > 0) throw new Error(`${database}: restored copy differs from the dump's snapshot: ${problems.join('; ')}`);
        const rows = Object.values(tables).reduce((a, b) => a + b, 0);
        summaries.push(`${database}: ${Object.keys(tables).length} tables, ${rows} rows match`);
      } finally {
        await this.dropDatabase(scratch, credential, ctx);
      }
    }
    return summaries.join(', ');
  }

  async restore(request: RestoreRequest, ctx: DriverContext): Promise<string> {
    const { databases } = request.manifest.details as unknown as PostgresDetails;
    const sources = selectParts(Object.keys(databases), request.only, 'database');
    if (request.target !== undefined && sources.length > 1) {
      throw new UserError(`--target names one database but the backup has ${sources.length} (${sources.join(', ')}); add --only <database>`);
    }
    const credential = this.restoreCredential(request, ctx);
    await this.withMaintenance(credential, ctx, (db) => this.chooseTools(db, ctx, archiveMajor(request.manifest)));
    if (request.withGlobals) await this.applyGlobals(request.dir, credential, ctx);
    const done: string[] = [];
    for (const source of sources) {
      const target = request.target ?? source;
      const existing = await this.prepareTarget(target, request.force, credential, ctx);
      // The archive's own CREATE DATABASE brings back the owner, privileges and settings. An
      // empty database keeps its own; a copy under another name belongs to the restoring role.
      const create = existing === 'absent' && target === source;
      if (existing === 'absent' && !create) await this.createDatabase(target, credential, ctx);
      await this.restoreDatabase(request.dir, source, target, { create, extra: [], details: databases[source] }, credential, ctx);
      done.push(source === target ? target : `${source} -> ${target}`);
    }
    return `restored ${done.join(', ')} on ${this.pg.host}:${this.pg.port}`;
  }

  /** Roles that already exist make psql report errors; those are expected, so psql continues. */
  private async applyGlobals(dir: string, credential: Credential, ctx: DriverContext): Promise<void> {
    await runTool('psql', ['--quiet', '--no-psqlrc', `--file=${path.join(dir, GLOBALS_FILE)}`, `--dbname=${this.maintenanceDatabase}`], {
      env: this.toolEnv(credential),
      signal: ctx.signal,
    });
  }

  /**
   * Whether the target is an empty database to restore into, or absent (never there, or dropped
   * because --force replaces a non-empty one). A non-empty target without --force is refused.
   */
  private async prepareTarget(target: string, force: boolean, credential: Credential, ctx: DriverContext): Promise<'empty' | 'absent'> {
    const exists = await this.withMaintenance(credential, ctx, async (db) => (await db.query('SELECT 1 FROM pg_database WHERE datname = $1', [target])).rowCount === 1);
    if (!exists) return 'absent';
    const relations = await this.withDatabase(target, credential, ctx, userRelationCount);
    if (relations === 0) return 'empty';
    if (!force) throw new UserError(`database "${target}" already holds ${relations} tables or other relations; restore into another --target, or pass --force to replace it`);
    ctx.log.warn('replacing a non-empty database (--force)', { database: target, relations });
    await this.dropDatabase(target, credential, ctx);
    return 'absent';
  }

  /**
   * Definitions (pre-data), then the archive's data and the big tables' chunks side by side, then
   * indexes and constraints (post-data), each step with `parallelJobs` workers.
   */
  private async restoreDatabase(
    dir: string,
    source: string,
    target: string,
    how: { create: boolean; extra: string[]; details: PostgresDetails['databases'][string] },
    credential: Credential,
    ctx: DriverContext,
  ): Promise<void> {
    const archive = path.join(dir, archiveOf(source));
    if (how.create) await this.pgRestore(archive, this.maintenanceDatabase, ['--section=pre-data', '--create', ...how.extra], credential, ctx);
    else await this.pgRestore(archive, target, ['--section=pre-data', ...how.extra], credential, ctx);
    const env = { ...this.toolEnv(credential), PGOPTIONS: RESTORE_SESSION };
    await allOrNothing(
      [
        (signal) => this.pgRestore(archive, target, ['--section=data', ...how.extra], credential, { ...ctx, signal }),
        (signal) => loadChunks(dir, how.details.split ?? [], { database: target, env, workers: this.pg.parallelJobs, signal, serverMajor: this.serverMajor }),
      ],
      ctx.signal,
    );
    await this.pgRestore(archive, target, ['--section=post-data', ...how.extra], credential, ctx);
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
  beforeRestore(request: Pick<RestoreRequest, 'commandLine'>, ctx: DriverContext): void {
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
      options: '-c statement_timeout=0 -c idle_in_transaction_session_timeout=0',
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
    return { ...this.toolPath(), PGHOST: this.pg.host, PGPORT: String(this.pg.port), PGUSER: credential.user, PGPASSWORD: credential.password, PGCONNECT_TIMEOUT: '10', PGAPPNAME: 'tenantry-agent' };
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
              to_regclass(format('%I.%I', n.nspname, c.relname)) IS DISTINCT FROM c.oid AS replaced,
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
async function countRows(db: Client, tables: readonly TableRef[]): Promise<RowCounts> {
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

/**
 * A Postgres restore: preflight for every database first (target, roles, tool and server
 * versions), then each database restored and checked under a temporary name and swapped into
 * place. The name and SQL rules it follows are in restore-rules.ts.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { errorMessage, UserError } from '../../errors';
import { runTool, toolVersion } from '../../exec';
import type { Manifest } from '../../manifest';
import { DriverContext, RestoreRequest, selectParts } from '../driver';
import { archiveOf, chunksOf, DatabaseDetails, GLOBALS_FILE, postgresDetails } from './layout';
import { compareWithDump, loadDatabase, Loader } from './load';
import {
  affixedName, BEFORE_RESTORE_INFIX, databaseEntries, DatabaseProperties, globalsForMissingRoles, isAffixedName, renameDatabaseSql,
  restoreStamp, RESTORING_INFIX, RESTORING_MARK, rolesOfGlobals, sqlNamesRole, unrestorableName,
} from './restore-rules';
import { Credential, PostgresServer, PostgresSettings, quoteIdent } from './server';
import { userRelationCount } from './sql';
import { archiveMajor } from './tools';

/** Renaming waits up to 5 s for ended sessions to go; a client that reconnected in between gets another try. */
const SWAP_ATTEMPTS = 3;
/**
 * The whole swap, from closing the target to the rename, stays this far under the agent's stop
 * deadline (STOP_DEADLINE_MS, 9 s): a stopped restore still reopens the target itself.
 */
const SWAP_DEADLINE_MS = 6000;

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
 * A restore creates databases owned by other roles and brings back their grants: more than the
 * backup role may do. Its credential is passed by an operator for this command only; without it
 * the restore stops here, before it touches anything, and says how to pass it.
 */
export function restoreCredential(pg: PostgresSettings, request: Pick<RestoreRequest, 'commandLine'>, env: NodeJS.ProcessEnv): Credential {
  const { userEnv, passwordEnv, source } = pg.restoreCredential;
  const user = env[userEnv];
  const password = env[passwordEnv];
  if (user && password) return { user, password };
  throw new UserError(
    `restore needs an elevated Postgres credential, which this container does not hold (its backup role ${pg.user} may only read): ` +
      `set ${userEnv} and ${passwordEnv} in your shell${source ? ` from ${source}` : ''}, then run ` +
      `docker exec -e ${userEnv} -e ${passwordEnv} ${os.hostname()} tenantry-agent ${request.commandLine}`,
  );
}

/** The databases of the backup a request restores; a usage mistake is refused before anything connects. */
export function restoredDatabases(request: Pick<RestoreRequest, 'manifest' | 'only' | 'target'>): string[] {
  const { databases } = postgresDetails(request.manifest.details);
  const sources = selectParts(Object.keys(databases), request.only, 'database');
  if (request.target !== undefined && sources.length > 1) {
    throw new UserError(`--target names one database but the backup has ${sources.length} (${sources.join(', ')}); add --only <database>`);
  }
  for (const source of sources) {
    const problem = unrestorableName(request.target ?? source);
    if (problem) throw new UserError(`"${request.target ?? source}" cannot be restored into: ${problem}`);
  }
  return sources;
}

/**
 * Preflight for every database of `sources` first (target, roles, tool and server versions; free
 * space is logged, not checked: PostgreSQL reports none over SQL), then each database in turn:
 * restored and checked under a temporary name, given its database-level properties, and swapped
 * into place (restoreAndSwap). Nothing existing is written before its own swap.
 */
export async function restoreBackup(loader: Loader, request: RestoreRequest, sources: string[], ctx: DriverContext): Promise<string> {
  const { server } = loader;
  const { databases } = postgresDetails(request.manifest.details);
  for (const source of sources) {
    await reopenAfterInterruptedSwap(server, request.target ?? source, ctx);
    await checkTarget(server, request.target ?? source, request.force);
  }
  await checkVersions(loader, request.manifest, ctx);
  await checkRoles(loader, request, sources, ctx);
  for (const source of sources) logSpaceNeeded(request.manifest, source, databases[source], ctx);
  if (request.withGlobals) await applyGlobals(loader, request.dir, ctx);
  const stamp = restoreStamp(new Date());
  const done: string[] = [];
  for (const source of sources) done.push(await restoreAndSwap(loader, request, source, request.target ?? source, stamp, ctx));
  return `restored ${done.join('; ')} on ${server.address}`;
}

/**
 * Creates the roles of globals.sql this server lacks (globalsForMissingRoles), in one
 * transaction that stops at the first error. Roles that exist are left exactly as they are.
 */
async function applyGlobals({ server, tools }: Loader, dir: string, ctx: DriverContext): Promise<void> {
  const globals = await fs.promises.readFile(path.join(dir, GLOBALS_FILE), 'utf8');
  const missing = await server.withMaintenance(async (db) =>
    (await db.query<{ name: string }>('SELECT r.name FROM unnest($1::text[]) r(name) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r.name)', [rolesOfGlobals(globals)])).rows.map((r) => r.name),
  );
  if (missing.length === 0) return;
  ctx.log.info('creating the roles this server lacks from globals.sql (--with-globals)', { roles: missing.join(', ') });
  await runTool('psql', ['--quiet', '--no-psqlrc', '--set=ON_ERROR_STOP=1', '--single-transaction', `--dbname=${server.maintenanceDatabase}`], {
    env: server.toolEnv(tools),
    signal: ctx.signal,
    input: globalsForMissingRoles(globals, new Set(missing)),
  });
}

/** A non-empty target is replaced (and kept aside) only with --force. */
async function checkTarget(server: PostgresServer, target: string, force: boolean): Promise<void> {
  const exists = await server.withMaintenance(async (db) => (await db.query('SELECT 1 FROM pg_database WHERE datname = $1', [target])).rowCount === 1);
  if (!exists) return;
  const relations = await server.withDatabase(target, userRelationCount);
  if (relations > 0 && !force) {
    throw new UserError(`database "${target}" already holds ${relations} tables or other relations; restore into another --target, or pass --force to replace it (it is kept as ${target}${BEFORE_RESTORE_INFIX}<time>)`);
  }
}

/** pg_restore must read the archive; a server older than the source may reject its SQL. */
async function checkVersions({ tools }: Loader, manifest: Manifest, ctx: DriverContext): Promise<void> {
  const needed = archiveMajor(manifest);
  const tool = await toolVersion('pg_restore', tools.path);
  const major = Number(/\(PostgreSQL\) (\d+)/.exec(tool)?.[1] ?? 0);
  if (needed > 0 && major < needed) {
    throw new UserError(`${tool} cannot read an archive written by pg_dump ${needed}: install PostgreSQL ${needed}'s client tools (or newer) where the agent runs`);
  }
  const sourceMajor = Number(/^(\d+)/.exec(manifest.source.version ?? '')?.[1] ?? 0);
  if (sourceMajor > tools.serverMajor) ctx.log.warn('restoring into an older PostgreSQL than the backup came from: definitions it does not know fail the restore (the existing database stays as it is)', { source: sourceMajor, server: tools.serverMajor });
}

/**
 * The roles the archives name (owners, grantees, policies' roles, role settings) must exist, or
 * be created by --with-globals: among the roles of globals.sql, those the server lacks and an
 * archive names.
 */
async function checkRoles({ server, tools }: Loader, request: RestoreRequest, sources: string[], ctx: DriverContext): Promise<void> {
  const roles = rolesOfGlobals(await fs.promises.readFile(path.join(request.dir, GLOBALS_FILE), 'utf8'));
  const absent = await server.withMaintenance(async (db) => {
    const { rows } = await db.query<{ name: string; quoted: string }>('SELECT r.name, quote_ident(r.name) AS quoted FROM unnest($1::text[]) r(name) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r.name)', [roles]);
    return rows;
  });
  if (absent.length === 0) return;
  const missing = new Set<string>();
  for (const source of sources) {
    const sql = await runTool('pg_restore', ['--create', '--schema-only', '--file=-', path.join(request.dir, archiveOf(source))], { env: tools.path, signal: ctx.signal });
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
async function restoreAndSwap(loader: Loader, request: RestoreRequest, source: string, target: string, stamp: string, ctx: DriverContext): Promise<string> {
  const { server } = loader;
  const details = postgresDetails(request.manifest.details).databases[source];
  const temp = affixedName(target, RESTORING_INFIX, stamp);
  await dropLeftovers(server, target, ctx);
  let created = false;
  try {
    const properties = await databaseProperties(loader, path.join(request.dir, archiveOf(source)), source, temp, ctx);
    // Superusers ignore a connection limit, so the restore's sessions get in and nobody else does.
    await server.withMaintenance(async (db) => {
      await db.query(properties.create.replace(/;$/, ' CONNECTION LIMIT = 0;'));
      created = true;
      // The agent's mark: only a database carrying it is ever dropped as a leftover (dropLeftovers).
      await db.query(`COMMENT ON DATABASE ${quoteIdent(temp)} IS '${RESTORING_MARK}'`);
      // Its owner from the start: the rows and indexes are created as that role (loadDatabase),
      // which needs the rights a database's owner has on its public schema.
      await db.query(`ALTER DATABASE ${quoteIdent(temp)} OWNER TO ${quoteIdent(properties.owner)}`);
    });
    ctx.log.info('restoring into a temporary database', { database: target, temporary: temp });
    await loadDatabase(loader, request.dir, source, temp, { extra: [], details, role: properties.owner }, ctx);
    const problems = await compareWithDump(server, temp, details.tables);
    if (problems.length > 0) throw new Error(`the restored copy differs from the dump's snapshot: ${problems.join('; ')}`);
    await server.withMaintenance((db) => db.query(`ALTER DATABASE ${quoteIdent(temp)} CONNECTION LIMIT -1;\n${properties.rest}`));
  } catch (error) {
    const left = created ? await discard(server, temp, ctx) : '';
    const hint = /role "[^"]*" does not exist/.test(errorMessage(error)) && !request.withGlobals ? '; run again with --with-globals to create the backup\'s roles first' : '';
    throw new Error(`${source}: restore failed before anything existing was changed ("${target}" is as it was${left}): ${errorMessage(error)}${hint}`);
  }
  const aside = await swap(server, target, temp, affixedName(target, BEFORE_RESTORE_INFIX, stamp), ctx).catch(async (error: unknown) => {
    const left = await discard(server, temp, ctx);
    throw new Error(`${source}: restored, but could not be swapped into place ("${target}" is as it was${left}): ${errorMessage(error)}`);
  });
  const what = source === target ? target : `${source} -> ${target}`;
  return aside ? `${what} (the previous database is kept as "${aside}"; drop it once you no longer need it: DROP DATABASE ${quoteIdent(aside)};)` : what;
}

/** The archive's CREATE DATABASE and database-level properties, for `temp` instead of `source`. */
async function databaseProperties({ server, tools }: Loader, archive: string, source: string, temp: string, ctx: DriverContext): Promise<DatabaseProperties & { owner: string }> {
  const toc = await runTool('pg_restore', ['--create', '--list', archive], { env: tools.path, signal: ctx.signal });
  const owner = databaseOwner(toc, source);
  // Beside the backup's files: the backup container has a read-only root and no writable /tmp
  // (pg_restore cannot read its list from a pipe: it opens the file by name).
  const list = path.join(path.dirname(archive), `.restore-${process.pid}-${source}.list`);
  await fs.promises.writeFile(list, databaseEntries(toc));
  try {
    const sql = await runTool('pg_restore', ['--create', `--use-list=${list}`, '--file=-', archive], { env: tools.path, signal: ctx.signal });
    const [quoted, renamed] = await server.withMaintenance(async (db) => {
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
function swap(server: PostgresServer, target: string, temp: string, aside: string, ctx: DriverContext): Promise<string | undefined> {
  return server.withMaintenance(async (db) => {
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
async function reopenAfterInterruptedSwap(server: PostgresServer, target: string, ctx: DriverContext): Promise<void> {
  await server.withMaintenance(async (db) => {
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
async function discard(server: PostgresServer, temp: string, ctx: DriverContext): Promise<string> {
  try {
    await server.dropDatabase(temp);
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
async function dropLeftovers(server: PostgresServer, target: string, ctx: DriverContext): Promise<void> {
  const candidates = await server.withMaintenance(async (db) =>
    (await db.query<{ datname: string; mark: string | null }>("SELECT datname, shobj_description(oid, 'pg_database') AS mark FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1", [`${target}${RESTORING_INFIX}`])).rows,
  );
  for (const { datname: name, mark } of candidates) {
    if (!isAffixedName(name, target, RESTORING_INFIX)) continue;
    if (mark !== RESTORING_MARK) {
      ctx.log.warn('not dropping a database named like a half-restored copy: the agent did not mark it as one', { database: name });
      continue;
    }
    ctx.log.warn('dropping a half-restored database an earlier restore left behind', { database: name });
    await server.dropDatabase(name);
  }
}

/**
 * The server needs room for the restored copy beside the database it replaces (kept until the
 * operator drops it). PostgreSQL reports no free disk space over SQL, so this is said, not
 * checked; running out fails the restore in the temporary database and leaves the existing one.
 */
function logSpaceNeeded(manifest: Manifest, source: string, details: DatabaseDetails, ctx: DriverContext): void {
  const archived = manifest.files.filter((f) => f.path.startsWith(`${archiveOf(source)}/`) || f.path.startsWith(`${chunksOf(source)}/`)).reduce((sum, f) => sum + f.size, 0);
  ctx.log.info('free space on the server is not checked (PostgreSQL reports none over SQL): the restored copy needs about the size the database had at dump time, beside the one it replaces', {
    database: source,
    ...(details.bytes !== undefined ? { bytesAtDump: details.bytes } : {}),
    compressedBytes: archived,
  });
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

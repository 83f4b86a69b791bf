/**
 * Recovers an extracted base backup to a target with a real `postgres` of the backup's major
 * version, reached only through a socket in a private folder (listen_addresses '' unless a port
 * is asked for) and trusted only there: the data directory's own pg_hba.conf, postgresql.conf and
 * postgresql.auto.conf are left as they are, since every recovery setting is given on the command
 * line (`-c`), and recovery.signal is consumed by the promotion. What the restored server starts
 * with later is the source's own configuration.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Client } from 'pg';
import { errorMessage } from '../errors';
import { GuardedChild, runTool, spawnGuarded } from '../exec';
import type { Logger } from '../log';

/** Where to stop replaying WAL. `latest`: everything the archive holds. */
export type RecoveryTarget =
  | { readonly time: string }
  /** `before`: stop before the record at `lsn` rather than after it (verification's point). */
  | { readonly lsn: string; readonly before?: boolean }
  | { readonly name: string }
  | { readonly latest: true };

export function describeTarget(target: RecoveryTarget): string {
  if ('time' in target) return `time ${target.time}`;
  if ('lsn' in target) return `LSN ${target.lsn}`;
  if ('name' in target) return `restore point "${target.name}"`;
  return 'the end of the archive';
}

/**
 * Postgres's recovery_target_* settings for `target`. A time target stops before the first
 * transaction committed after it, and before one committed exactly at it: what was committed
 * before that moment is there, nothing after. LSN and name stop after the record they name.
 */
function targetSettings(target: RecoveryTarget): Record<string, string> {
  // Postgres's timestamp input reads "2026-12-01 17:15:00.000+00", not every ISO 8601 spelling.
  if ('time' in target) return { recovery_target_time: new Date(target.time).toISOString().replace('T', ' ').replace('Z', '+00'), recovery_target_inclusive: 'off' };
  if ('lsn' in target) return { recovery_target_lsn: target.lsn, ...(target.before ? { recovery_target_inclusive: 'off' } : {}) };
  if ('name' in target) return { recovery_target_name: target.name };
  return {};
}

export interface RecoveryRequest {
  /** An extracted base backup (extractBaseBackup). */
  readonly pgdata: string;
  /** The archive restore_command reads: completed segments, history files, and the receiver's `.partial`. */
  readonly walFolder: string;
  readonly target: RecoveryTarget;
  /** PATH whose `postgres` and `pg_controldata` are of the backup's major version. */
  readonly PATH: string;
  /** A role of the source that exists in every backup (the job's replication role): how the superuser's name is found. */
  readonly probeRole: string;
  /** Also listen on 127.0.0.1 at this port (a scratch server others connect to). @default socket only */
  readonly port?: number;
  readonly log: Logger;
  readonly signal: AbortSignal;
}

/** What a recovery reached, for READY.json and verification. */
export interface RecoveredPoint {
  readonly reachedLsn: string;
  /** The commit time of the last transaction replayed; null when none was replayed. */
  readonly reachedTime: string | null;
  readonly timeline: number;
  readonly checks: string[];
}

/** A promoted recovery server, still running. */
export interface RecoveredServer {
  readonly point: Omit<RecoveredPoint, 'timeline'>;
  readonly pid: number;
  /** A session on `database` as the cluster's bootstrap superuser, over the private socket. */
  connect(database: string): Promise<Client>;
  /** Fast shutdown, then pg_controldata must say "shut down": returns the point with its timeline. */
  stop(): Promise<RecoveredPoint>;
  /** Kills it (a failure elsewhere): nothing of it is used afterwards. */
  abandon(): Promise<void>;
}

/**
 * Postgres refuses to run as root. An agent running as root (tests, an operator's root `docker
 * exec`) runs it as the owner of `files` (the WAL archive, which the receiver wrote mode 0600 as
 * the agent's own user, or a data directory recovery already handed over), else as the OS user
 * `postgres`.
 */
export function serverUser(files?: string): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const owner = files === undefined ? undefined : fs.statSync(files);
  if (owner !== undefined && owner.uid !== 0) return { uid: owner.uid, gid: owner.gid };
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((entry) => entry.startsWith('postgres:'));
  if (!line) throw new Error('the agent runs as root, which Postgres refuses, and there is no OS user "postgres" to run the recovery server as');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** The socket path must stay under 107 bytes: a short private folder, in the job's folder where /tmp is read-only. */
async function socketFolder(fallbackParent: string): Promise<string> {
  try {
    return await fs.promises.mkdtemp(path.join(os.tmpdir(), 'tenantry-recovery-'));
  } catch {
    return fs.promises.mkdtemp(path.join(fallbackParent, '.sock-'));
  }
}

const shellQuote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;
/** Any port: with listen_addresses '' it only names the socket file. */
const SOCKET_ONLY_PORT = 5432;
const POLL_MS = 50;

/**
 * Starts recovery and resolves once the server has reached the target and promoted, and every
 * database answers a query. Rejects, with the end of the server's log, when the server exits
 * first (a missing or damaged WAL segment, a target the archive does not reach) or the agent stops.
 */
export async function recover(request: RecoveryRequest): Promise<RecoveredServer> {
  const user = serverUser(request.walFolder);
  const socket = await socketFolder(path.dirname(request.pgdata));
  const logFile = path.join(socket, 'recovery.log');
  const hbaFile = path.join(socket, 'pg_hba.conf');
  await fs.promises.writeFile(hbaFile, 'local all all trust\n');
  await fs.promises.writeFile(path.join(request.pgdata, 'recovery.signal'), '');
  const addedConf = !fs.existsSync(path.join(request.pgdata, 'postgresql.conf'));
  // A Debian server keeps its postgresql.conf in /etc, outside the backup; postgres needs a file.
  if (addedConf) await fs.promises.writeFile(path.join(request.pgdata, 'postgresql.conf'), '');
  if (user) await runTool('chown', ['-R', `${user.uid}:${user.gid}`, request.pgdata, socket]);
  const wal = request.walFolder;
  const restoreCommand = `cp ${shellQuote(wal)}/%f %p 2>/dev/null || cp ${shellQuote(wal)}/%f.partial %p 2>/dev/null`;
  const settings: Record<string, string> = {
    port: String(request.port ?? SOCKET_ONLY_PORT),
    listen_addresses: request.port === undefined ? '' : '127.0.0.1',
    unix_socket_directories: socket,
    hba_file: hbaFile,
    ssl: 'off',
    archive_mode: 'off',
    // Off: with hot standby on, Postgres aborts recovery when max_connections (or another of the
    // settings the WAL records) is lower than the source's, and a container passes its tuned
    // values on its command line, outside the backup. Nothing connects before the promotion.
    hot_standby: 'off',
    logging_collector: 'off',
    restore_command: restoreCommand,
    recovery_target_timeline: 'latest',
    recovery_target_action: 'promote',
    ...targetSettings(request.target),
  };
  const args = ['-D', request.pgdata, ...Object.entries(settings).flatMap(([key, value]) => ['-c', `${key}=${value}`])];
  const logFd = fs.openSync(logFile, 'a');
  let server: GuardedChild;
  try {
    server = spawnGuarded('postgres', args, { env: { PATH: request.PATH, LC_ALL: 'C' }, stdio: ['ignore', logFd, logFd], user });
  } finally {
    fs.closeSync(logFd);
  }
  const exited = new Promise<string>((resolve) => server.child.once('exit', (code, signal) => resolve(signal ? `killed by ${signal}` : `exit ${code}`)));
  let exit: string | undefined;
  void exited.then((how) => (exit = how));
  const pid = server.child.pid ?? 0;
  request.log.info('recovery server started', { pid, target: describeTarget(request.target), pgdata: request.pgdata });
  let superuser = request.probeRole;
  const connect = async (database: string) => {
    const client = new Client({ host: socket, port: Number(settings.port), user: superuser, database, connectionTimeoutMillis: 5000 });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  };
  const logTail = () => fs.readFileSync(logFile, 'utf8').slice(-1500).trim();
  const cleanup = async () => {
    if (addedConf) await fs.promises.rm(path.join(request.pgdata, 'postgresql.conf'), { force: true });
    await fs.promises.rm(socket, { recursive: true, force: true });
  };
  const abandon = async () => {
    server.stop();
    await exited;
    await cleanup();
  };
  try {
    for (;;) {
      if (request.signal.aborted) throw new Error(`stopped: the agent received ${String(request.signal.reason)}`);
      if (exit !== undefined) throw new Error(`the recovery server ended before promotion (${exit}): ${logTail()}`);
      const inRecovery = await withSession(connect, 'template1', async (db) => (await db.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0].r).catch(() => undefined);
      if (inRecovery === false) break;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    superuser = await withSession(connect, 'template1', async (db) => (await db.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE oid = 10')).rows[0].rolname);
    const reached = await withSession(connect, 'template1', async (db) =>
      (await db.query<{ lsn: string; at: Date | null }>('SELECT pg_last_wal_replay_lsn()::text AS lsn, pg_last_xact_replay_timestamp() AS at')).rows[0],
    );
    const checks = await checkConsistent(request, connect);
    request.log.info('recovery promoted', { reachedLsn: reached.lsn, reachedTime: reached.at?.toISOString() ?? null });
    const point = { reachedLsn: reached.lsn, reachedTime: reached.at?.toISOString() ?? null, checks };
    return {
      point,
      pid,
      connect,
      abandon,
      stop: async () => {
        server.child.kill('SIGINT');
        await exited;
        const control = await runTool('pg_controldata', [request.pgdata], { env: { PATH: request.PATH, LC_ALL: 'C' } });
        const state = /Database cluster state:\s*(.+)/.exec(control)?.[1]?.trim();
        if (state !== 'shut down') throw new Error(`the recovered server did not shut down cleanly (pg_controldata: "${state}"): ${logTail()}`);
        const timeline = Number(/Latest checkpoint's TimeLineID:\s*(\d+)/.exec(control)?.[1]);
        await cleanup();
        return { ...point, timeline, checks: [...checks, 'pg_controldata: shut down'] };
      },
    };
  } catch (error) {
    await abandon();
    throw new Error(errorMessage(error));
  }
}

async function withSession<T>(connect: (database: string) => Promise<Client>, database: string, use: (db: Client) => Promise<T>): Promise<T> {
  const db = await connect(database);
  try {
    return await use(db);
  } finally {
    await db.end();
  }
}

/** pg_controldata says "in production", and every database that allows connections answers. */
async function checkConsistent(request: RecoveryRequest, connect: (database: string) => Promise<Client>): Promise<string[]> {
  const control = await runTool('pg_controldata', [request.pgdata], { env: { PATH: request.PATH, LC_ALL: 'C' } });
  const state = /Database cluster state:\s*(.+)/.exec(control)?.[1]?.trim();
  if (state !== 'in production') throw new Error(`recovery promoted but pg_controldata says "${state}", not "in production"`);
  const databases = await withSession(connect, 'template1', async (db) => (await db.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1')).rows.map((r) => r.datname));
  for (const database of databases) await withSession(connect, database, (db) => db.query('SELECT count(*) FROM pg_class'));
  return ['pg_controldata: in production', `databases answer: ${databases.join(', ')}`];
}

/**
 * Real servers for integration tests: Postgres, PgBouncer, Redis and Sentinel run as local
 * processes on 127.0.0.1 (see shared/TESTING.md). Every helper waits for readiness with a bounded
 * timeout, fails with the server's log tail, and stops its server by PID. Whatever a failed test
 * left running is killed after the test file (or at process exit outside jest), so no server,
 * port or temp dir outlives it.
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { randomBytes } from 'crypto';
import { Client } from 'pg';
import { portAccepts, signalThenKill, sleep, spawnWatched } from './processes';

const HOST = '127.0.0.1';
/** Below 32768: the kernel hands out ephemeral client ports from there up. */
const PORT_MIN = 10000;
const PORT_MAX = 32767;
const READY_TIMEOUT_MS = 30_000;
const LOG_TAIL_CHARS = 4000;
const INSTALL_HINT = 'apt-get update && apt-get install -y';

// ---------------------------------------------------------------------------------------------
// Ports and directories
// ---------------------------------------------------------------------------------------------

const handedOutPorts = new Set<number>();

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen({ port, host: HOST, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/**
 * A TCP port on 127.0.0.1 that was free when probed. Random rather than sequential so that jest
 * workers (separate processes, separate bookkeeping) rarely race for the same port.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = PORT_MIN + Math.floor(Math.random() * (PORT_MAX - PORT_MIN + 1));
    if (handedOutPorts.has(port)) continue;
    if (await canBind(port)) {
      handedOutPorts.add(port);
      return port;
    }
  }
  throw new Error(`no free TCP port found on ${HOST} in ${PORT_MIN}..${PORT_MAX} after 200 probes`);
}

interface OsUser {
  uid: number;
  gid: number;
}

let postgresUserCache: OsUser | undefined;

/** The `postgres` OS user: pgbouncer refuses root, and tests run every server as it alike. */
function postgresUser(): OsUser {
  if (postgresUserCache) return postgresUserCache;
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((entry) => entry.startsWith('postgres:'));
  if (!line) {
    throw new Error(`the 'postgres' OS user does not exist; install PostgreSQL: ${INSTALL_HINT} postgresql`);
  }
  const [, , uid, gid] = line.split(':');
  postgresUserCache = { uid: Number(uid), gid: Number(gid) };
  return postgresUserCache;
}

function tmpRoot(): string {
  const root = process.env.TMPDIR || path.resolve(__dirname, '..', '..', '.tmp');
  fs.mkdirSync(root, { recursive: true });
  return root;
}

const liveTempDirs = new Set<string>();

/**
 * A fresh directory under $TMPDIR (or <repo>/.tmp), owned by the postgres user so servers running
 * as that user can write there. Removed by the stop() of the server that owns it (see
 * `startPostgres`), or after the test file (at process exit outside jest), whichever comes first:
 * a directory that several servers share (one per Redis topology) must outlive each restart.
 */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(tmpRoot(), `${prefix}-`));
  const { uid, gid } = postgresUser();
  fs.chownSync(dir, uid, gid);
  liveTempDirs.add(dir);
  return dir;
}

/** Removes a directory made by `tempDir` now rather than after the test file. */
export function removeTempDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  liveTempDirs.delete(dir);
}

// ---------------------------------------------------------------------------------------------
// Process bookkeeping
// ---------------------------------------------------------------------------------------------

/**
 * Running servers by PID, with the signal that ends each one when a test file ends with it still
 * up: no time is left to wait for a graceful stop then.
 */
const running = new Map<number, NodeJS.Signals>();

function killEverythingLeft(): void {
  for (const [pid, signal] of running) killPid(pid, signal);
  running.clear();
  for (const dir of liveTempDirs) fs.rmSync(dir, { recursive: true, force: true });
  liveTempDirs.clear();
}

// Inside jest, `process` is a per-file copy whose 'exit' event never fires, so the cleanup runs
// as a file-level afterAll (after the tests' own afterAll hooks). Outside jest (a script using
// these helpers) the real process events do the same job.
if (typeof afterAll === 'function') {
  afterAll(killEverythingLeft);
} else {
  process.once('exit', killEverythingLeft);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killEverythingLeft();
      process.exit(128 + os.constants.signals[signal]);
    });
  }
}

/** Sends `signal`, then SIGKILL if the server is still there after the grace period. */
async function stopPid(pid: number, signal: NodeJS.Signals): Promise<void> {
  running.delete(pid);
  await signalThenKill(pid, signal);
}

function track(pid: number, emergencySignal: NodeJS.Signals): void {
  running.set(pid, emergencySignal);
}

function killPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

// ---------------------------------------------------------------------------------------------
// Readiness
// ---------------------------------------------------------------------------------------------

/**
 * Polls `ready` until it holds. Fails early when `exited` reports that the server died, and in
 * both failure cases quotes the server's log so the test output says why.
 */
async function waitForReady(
  what: string,
  ready: () => Promise<boolean>,
  logTail: () => string,
  exited: () => string | undefined = () => undefined,
): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await ready()) return;
    const exit = exited();
    if (exit) throw new Error(`${what} exited before it was ready (${exit}). Log tail:\n${logTail()}`);
    await sleep(100);
  }
  throw new Error(`${what} was not ready within ${READY_TIMEOUT_MS / 1000} s. Log tail:\n${logTail()}`);
}

function tailOfFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').slice(-LOG_TAIL_CHARS);
  } catch {
    return `(no log at ${file})`;
  }
}

// ---------------------------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------------------------

function findOnPath(name: string, extraDirs: string[] = []): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), ...extraDirs];
  return dirs.map((dir) => path.join(dir, name)).find((candidate) => isExecutable(candidate));
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function requireBinary(name: string, debianPackage: string, extraDirs: string[] = []): string {
  const found = findOnPath(name, extraDirs);
  if (!found) {
    throw new Error(`'${name}' is not installed; install it with: ${INSTALL_HINT} ${debianPackage}`);
  }
  return found;
}

/** Debian keeps one bin directory per major version; the newest one wins. */
function postgresBinDir(): string {
  const base = '/usr/lib/postgresql';
  const versions = fs.existsSync(base)
    ? fs
        .readdirSync(base)
        .filter((version) => isExecutable(path.join(base, version, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new Error(`PostgreSQL server binaries (initdb, pg_ctl) are missing; install them with: ${INSTALL_HINT} postgresql`);
  }
  return path.join(base, versions[0], 'bin');
}

/** Where test/install-servers.sh unpacks PostgreSQL versions Debian does not have (17). */
const POSTGRES_CACHE = '/var/cache/tenantry-postgres';
/** The versions the real-server tests run on: Debian's 15 and the fetched 17 (Tenantry supports 15-17). */
const VERSIONS_UNDER_TEST = [15, 17];

export interface PostgresVersion {
  major: number;
  /** initdb, pg_ctl, postgres and the client tools of that version. */
  binDir: string;
}

/**
 * Every PostgreSQL version the real-server tests must run on. A missing one fails with the command
 * that installs it: a test that silently ran on fewer versions would prove less than it says.
 */
export function postgresVersionsUnderTest(): PostgresVersion[] {
  return VERSIONS_UNDER_TEST.map((major) => {
    const candidates = [`/usr/lib/postgresql/${major}/bin`, `${POSTGRES_CACHE}/${major}/usr/lib/postgresql/${major}/bin`];
    const binDir = candidates.find((dir) => isExecutable(path.join(dir, 'initdb')));
    if (!binDir) throw new Error(`PostgreSQL ${major} is not installed (looked in ${candidates.join(', ')}); install it with: bash test/install-servers.sh`);
    return { major, binDir };
  });
}

/** A PATH on which the servers' binaries resolve even for the postgres user (pgbouncer is in /usr/sbin). */
function serverPath(): string {
  return [postgresBinDir(), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':');
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a short command to completion as the postgres user; never rejects, the caller decides. */
function runAsPostgres(file: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  const { uid, gid } = postgresUser();
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { uid, gid, env: { PATH: serverPath(), HOME: os.tmpdir(), ...env }, cwd: '/', timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

// ---------------------------------------------------------------------------------------------
// Postgres
// ---------------------------------------------------------------------------------------------

/**
 * A connection to `database` on a test server, as its superuser unless `as` names another role,
 * handed to `use` and closed afterwards whatever happens.
 */
export async function withDatabase<T>(
  server: PostgresServer,
  database: string,
  use: (db: Client) => Promise<T>,
  as: { user: string; password: string } = { user: server.superuser, password: server.password },
): Promise<T> {
  const db = new Client({ host: server.host, port: server.port, database, ...as });
  await db.connect();
  try {
    return await use(db);
  } finally {
    await db.end();
  }
}

export interface PostgresServer {
  port: number;
  host: '127.0.0.1';
  dataDir: string;
  superuser: 'postgres';
  password: string;
  /** PGHOST, PGPORT, PGUSER, PGPASSWORD: spread into the env of psql, pg_dump or a rendered script. */
  env: NodeJS.ProcessEnv;
  binDir: string;
  pid: number;
  stop(): Promise<void>;
  kill(signal?: NodeJS.Signals): void;
  /** Starts the server again on its data directory and port (after `kill`): crash recovery runs first. */
  restart(): Promise<void>;
}

/** A value in postgresql.conf syntax: single-quoted, quotes doubled. */
function confValue(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * initdb (SCRAM for every connection, no trust), then `pg_ctl start` as the postgres user on a
 * free port, listening on 127.0.0.1 and on a socket inside the temp dir (never /var/run).
 */
export async function startPostgres(
  opts: { password?: string; parameters?: Record<string, string>; /** @default Debian's newest */ binDir?: string } = {},
): Promise<PostgresServer> {
  const binDir = opts.binDir ?? postgresBinDir();
  const password = opts.password ?? randomBytes(18).toString('base64url');
  const root = tempDir('postgres');
  const dataDir = path.join(root, 'data');
  const logFile = path.join(root, 'server.log');
  const passwordFile = path.join(root, 'superuser-password');
  const { uid, gid } = postgresUser();
  fs.writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  fs.chownSync(passwordFile, uid, gid);

  const initdb = await runAsPostgres(path.join(binDir, 'initdb'), [
    '--pgdata', dataDir,
    '--username', 'postgres',
    '--auth', 'scram-sha-256',
    '--pwfile', passwordFile,
    '--encoding', 'UTF8',
    '--locale', 'C',
    '--no-sync',
  ]);
  fs.rmSync(passwordFile);
  if (initdb.code !== 0) {
    removeTempDir(root);
    throw new Error(`initdb failed (exit ${initdb.code}):\n${initdb.stderr || initdb.stdout}`);
  }

  const port = await freePort();
  const settings: Record<string, string> = {
    port: String(port),
    listen_addresses: HOST,
    unix_socket_directories: root,
    ...opts.parameters,
  };
  fs.appendFileSync(
    path.join(dataDir, 'postgresql.conf'),
    Object.entries(settings).map(([key, value]) => `${key} = ${confValue(value)}\n`).join(''),
  );

  const start = await runAsPostgres(path.join(binDir, 'pg_ctl'), ['--pgdata', dataDir, '--log', logFile, '--no-wait', 'start']);
  const env: NodeJS.ProcessEnv = { PGHOST: HOST, PGPORT: String(port), PGUSER: 'postgres', PGPASSWORD: password };
  const pidFile = path.join(dataDir, 'postmaster.pid');
  const pidFromFile = () => (fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]) : 0);
  const stopStarted = async () => {
    const pid = pidFromFile();
    if (pid) await stopPid(pid, 'SIGINT');
    removeTempDir(root);
  };
  try {
    if (start.code !== 0) throw new Error(`pg_ctl start failed (exit ${start.code}):\n${start.stderr}\n${tailOfFile(logFile)}`);
    await waitForReady(
      `postgres on port ${port}`,
      async () => (await runAsPostgres(path.join(binDir, 'pg_isready'), ['--quiet'], env)).code === 0,
      () => tailOfFile(logFile),
    );
  } catch (error) {
    await stopStarted();
    throw error;
  }

  const pid = pidFromFile();
  // SIGQUIT makes the postmaster take its backends down with it, even when no one waits for it.
  track(pid, 'SIGQUIT');
  return {
    port,
    host: HOST,
    dataDir,
    superuser: 'postgres',
    password,
    env,
    binDir,
    pid,
    // SIGINT is Postgres's "fast" shutdown: it ends client sessions instead of waiting for them
    // (SIGTERM would wait for every pool a test forgot to close).
    stop: stopStarted,
    kill: (signal: NodeJS.Signals = 'SIGKILL') => killPid(pidFromFile() || pid, signal),
    restart: async () => {
      // Backends of a killed postmaster hold its shared memory until they notice and exit.
      await waitForReady(
        `postgres on port ${port} to start again`,
        async () => {
          await runAsPostgres(path.join(binDir, 'pg_ctl'), ['--pgdata', dataDir, '--log', logFile, '--no-wait', 'start']);
          await sleep(500);
          return (await runAsPostgres(path.join(binDir, 'pg_isready'), ['--quiet'], env)).code === 0;
        },
        () => tailOfFile(logFile),
      );
      track(pidFromFile(), 'SIGQUIT');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Generic server processes (PgBouncer, Redis, Sentinel)
// ---------------------------------------------------------------------------------------------

export interface ServerProcess {
  port: number;
  pid: number;
  stop(): Promise<void>;
  kill(signal?: NodeJS.Signals): void;
}

/** Keeps the last few KB a child printed: the servers here log to stdout/stderr. */
/**
 * Spawns a long-running server as the postgres user and waits until `port` accepts connections.
 * The process is not detached: it shares the test's process group, so Ctrl-C reaches it too.
 */
async function spawnServer(what: string, file: string, args: string[], port: number, env: NodeJS.ProcessEnv, asRoot = false): Promise<ServerProcess> {
  const { uid, gid } = asRoot ? { uid: 0, gid: 0 } : postgresUser();
  const { pid, logTail, exited } = await spawnWatched(what, [file, ...args], {
    uid,
    gid,
    cwd: '/',
    env: { PATH: serverPath(), HOME: os.tmpdir(), ...env },
  });
  track(pid, 'SIGKILL');
  try {
    await waitForReady(`${what} on port ${port}`, () => portAccepts(port), logTail, exited);
  } catch (error) {
    await stopPid(pid, 'SIGKILL');
    throw error;
  }
  return {
    port,
    pid,
    stop: () => stopPid(pid, 'SIGTERM'),
    kill: (signal: NodeJS.Signals = 'SIGKILL') => killPid(pid, signal),
  };
}

/**
 * Starts PgBouncer as the postgres user (it refuses root): `pgbouncer iniPath`, or, when
 * `entryScript` is given, `/bin/sh entryScript` with `env` exactly as a container would run it.
 */
export async function startPgBouncer(
  iniPath: string,
  port: number,
  env: NodeJS.ProcessEnv = {},
  entryScript?: string,
): Promise<ServerProcess> {
  const pgbouncer = requireBinary('pgbouncer', 'pgbouncer', ['/usr/sbin']);
  return entryScript
    ? spawnServer(`pgbouncer (via ${entryScript})`, '/bin/sh', [entryScript], port, env)
    : spawnServer('pgbouncer', pgbouncer, [iniPath], port, env);
}

/**
 * Starts redis-server or redis-sentinel as the postgres user (never as root, unless `asRoot`):
 * either a command line whose first element is the program (`['redis-server', conf]`), or a
 * rendered start script run with `/bin/sh` and the given env.
 */
export async function startRedisProcess(
  command: string[] | { script: string; env: NodeJS.ProcessEnv },
  port: number,
  /** Start the script as root, as a container does (only for tests of the scripts' own privilege drop). */
  options: { asRoot?: boolean } = {},
): Promise<ServerProcess> {
  if (Array.isArray(command)) {
    const [program, ...args] = command;
    if (!program) throw new Error('startRedisProcess: the command line is empty; pass e.g. [\'redis-server\', configFile]');
    return spawnServer(program, requireBinary(program, program), args, port, {});
  }
  // A start script ends in `exec redis-server` or `exec redis-sentinel`: check both up front.
  requireBinary('redis-server', 'redis-server');
  requireBinary('redis-sentinel', 'redis-sentinel');
  return spawnServer(`redis (via ${command.script})`, '/bin/sh', [command.script], port, command.env, options.asRoot);
}

/**
 * Runs one redis-cli command against 127.0.0.1:port and resolves with its trimmed output.
 * The password travels in REDISCLI_AUTH (not argv). redis-cli exits 0 on error replies, so
 * an error reply ("NOAUTH …", "NOREPLICAS …", "ERR …") rejects with that reply as the message
 * (followed by redis-cli's stderr, if any, in parentheses).
 */
export function redisCli(port: number, password: string | undefined, ...args: string[]): Promise<string> {
  const cli = requireBinary('redis-cli', 'redis-tools');
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  if (password !== undefined) env.REDISCLI_AUTH = password;
  return new Promise((resolve, reject) => {
    execFile(cli, ['-h', HOST, '-p', String(port), ...args], { env, timeout: 10_000 }, (error, stdout, stderr) => {
      const output = String(stdout).trim();
      const warnings = String(stderr).trim();
      if (error) return reject(new Error(`redis-cli ${args.join(' ')} failed: ${warnings || error.message}`));
      if (/^(ERR|NOAUTH|WRONGPASS|NOREPLICAS|NOPERM|READONLY|MASTERDOWN|LOADING)\b/.test(output)) {
        // A rejected password shows only on stderr ("AUTH failed: WRONGPASS …"); keep it in the message.
        return reject(new Error(warnings ? `${output} (${warnings})` : output));
      }
      resolve(output);
    });
  });
}

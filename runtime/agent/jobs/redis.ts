/**
 * Redis: an RDB snapshot taken from a replica found through the sentinels, so the fork and the
 * disk write of BGSAVE never hit the master. The master is used only when no replica is healthy
 * and answers, with a warning in the log.
 *
 * Restore loads the RDB into a fresh server this way: the agent starts a private redis-server
 * (unix socket only, no persistence) on a hard link of dump.rdb, then copies every key of every
 * database to the target with MIGRATE … COPY, which keeps values and TTLs exactly. The target is
 * a running server (by default the current master, which passes the keys on to its replicas);
 * it must be empty unless --force. Nothing on the target host's disk is touched. (Offline
 * alternative: stop the server, put dump.rdb into its `dir`, start it.)
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { JobConfig } from '../config';
import { secretFromEnv } from '../config';
import { UserError } from '../errors';
import { runTool, toolVersion, watchGrowth } from '../exec';
import { fieldsOf, parseInfo, RedisConnection, RedisReplyError } from '../redis-connection';
import { BackupOutcome, DriverContext, JobDriver, RestoreRequest } from './driver';

type RedisJob = Extract<JobConfig, { kind: 'redis' }>;

const RDB_FILE = 'dump.rdb';
const MIGRATE_BATCH = 500;
const MIGRATE_TIMEOUT_MS = 60_000;
/**
 * How long the RDB file may stay the same size before the transfer counts as stalled. Generous:
 * before the first byte the server forks and writes its snapshot (disk-based replication), which
 * takes minutes for a large dataset; it keeps the link alive meanwhile, but the file does not grow.
 */
const RDB_STALL_MS = 10 * 60_000;

interface RedisNode {
  host: string;
  port: number;
  role: 'replica' | 'master';
}

function splitHostPort(value: string): { host: string; port: number } {
  const colon = value.lastIndexOf(':');
  return { host: value.slice(0, colon), port: Number(value.slice(colon + 1)) };
}

/** A replica a sentinel considers up, connected to its master and in sync. */
function isHealthyReplica(fields: Record<string, string>): boolean {
  const flags = (fields.flags ?? '').split(',');
  return !flags.some((f) => ['s_down', 'o_down', 'disconnected'].includes(f)) && fields['master-link-status'] === 'ok';
}

export class RedisDriver implements JobDriver {
  private readonly redis: RedisJob['redis'];

  constructor(job: RedisJob) {
    this.redis = job.redis;
  }

  async backup(dir: string, ctx: DriverContext): Promise<BackupOutcome> {
    const password = secretFromEnv(this.redis.passwordEnv, ctx.env);
    const { node, version } = await this.reachableNode(password, ctx);
    const address = `${node.host}:${node.port}`;
    ctx.log.info('taking the RDB', { address, role: node.role });
    // redis-cli --rdb has no read timeout: a server that stops sending would hold the run.
    const rdb = path.join(dir, RDB_FILE);
    const watch = watchGrowth(rdb, RDB_STALL_MS, ctx.signal);
    try {
      await runTool('redis-cli', ['-h', node.host, '-p', String(node.port), '--no-auth-warning', '--rdb', rdb], { env: { REDISCLI_AUTH: password }, signal: watch.signal });
    } catch (error) {
      if (!watch.stalled()) throw error;
      throw new Error(`${address} sent no RDB data for ${RDB_STALL_MS / 60_000} minutes; redis-cli was stopped (the next run tries again)`);
    } finally {
      watch.stop();
    }
    return {
      source: { version, address, role: node.role },
      tools: { 'redis-cli': await toolVersion('redis-cli'), 'redis-check-rdb': await redisCheckRdbVersion() },
      details: {},
    };
  }

  /**
   * The freshest healthy replica that answers, the master when none does, and its version. A
   * sentinel can still list a replica that has just gone away as healthy (between two of its
   * checks, or while it reconnects), so each is tried in turn; one that cannot be reached or
   * answers with an error (BUSY running a script) is only a warning. A refused password is not a
   * reason to try the next server.
   */
  private async reachableNode(password: string, ctx: DriverContext): Promise<{ node: RedisNode; version: string }> {
    const { replicas, master, sentinel, listed } = await this.candidates(ctx);
    const unreachable: string[] = [];
    for (const replica of replicas) {
      try {
        return { node: replica, version: await serverVersion(replica, password) };
      } catch (error) {
        // The same password goes to every server: a refused one is refused everywhere.
        if (isAuthError(error)) throw error;
        const address = `${replica.host}:${replica.port}`;
        unreachable.push(address);
        ctx.log.warn('replica listed as healthy did not answer, trying the next candidate', { address, error: (error as Error).message });
      }
    }
    ctx.log.warn('no healthy replica: taking the RDB from the master (its fork costs memory and latency)', { sentinel, replicas: listed, ...(unreachable.length > 0 ? { unreachable: unreachable.join(', ') } : {}) });
    return { node: master, version: await serverVersion(master, password) };
  }

  /** From the first sentinel that answers: the healthy replicas, freshest first, and the master. */
  private candidates(ctx: DriverContext): Promise<{ replicas: RedisNode[]; master: RedisNode; sentinel: string; listed: number }> {
    return this.askSentinels(ctx, async (sentinel, connection) => {
      const reply = await connection.command('SENTINEL', 'REPLICAS', this.redis.masterName);
      const listed = (Array.isArray(reply) ? reply : []).map(fieldsOf);
      const replicas = listed
        .filter(isHealthyReplica)
        .sort((a, b) => Number(b['slave-repl-offset'] ?? 0) - Number(a['slave-repl-offset'] ?? 0))
        .map((r): RedisNode => ({ host: r.ip, port: Number(r.port), role: 'replica' }));
      const master: RedisNode = { ...(await masterOf(connection, this.redis.masterName)), role: 'master' };
      return { replicas, master, sentinel, listed: listed.length };
    });
  }

  /** Asks each sentinel in turn until one answers; a sentinel that is down is only a warning. */
  private async askSentinels<T>(ctx: DriverContext, ask: (sentinel: string, connection: RedisConnection) => Promise<T>): Promise<T> {
    const password = this.redis.sentinelPasswordEnv === undefined ? undefined : secretFromEnv(this.redis.sentinelPasswordEnv, ctx.env);
    const problems: string[] = [];
    for (const sentinel of this.redis.sentinels) {
      let connection: RedisConnection | undefined;
      try {
        connection = await RedisConnection.open(splitHostPort(sentinel), password);
        return await ask(sentinel, connection);
      } catch (error) {
        problems.push(`${sentinel}: ${(error as Error).message}`);
        ctx.log.warn('sentinel did not answer usefully, trying the next one', { sentinel, error: (error as Error).message });
      } finally {
        connection?.close();
      }
    }
    throw new Error(`no sentinel could name a Redis server for "${this.redis.masterName}": ${problems.join('; ')}`);
  }

  async check(dir: string): Promise<string> {
    const output = await runTool('redis-check-rdb', [path.join(dir, RDB_FILE)]);
    if (!output.includes('RDB looks OK')) throw new Error(`redis-check-rdb did not confirm the file: ${output.slice(-500)}`);
    const keys = /(\d+) keys read/.exec(output)?.[1] ?? '?';
    return `redis-check-rdb: OK, ${keys} keys`;
  }

  async restore(request: RestoreRequest, ctx: DriverContext): Promise<string> {
    if (request.only !== undefined) throw new UserError('--only does not apply to Redis backups (an RDB is restored whole)');
    const password = secretFromEnv(this.redis.passwordEnv, ctx.env);
    const target = request.target === undefined ? await this.currentMaster(ctx) : parseTarget(request.target);
    const scratch = await ScratchRedis.start(path.join(request.dir, RDB_FILE), path.dirname(request.dir), ctx);
    try {
      const destination = await RedisConnection.open(target, password);
      try {
        await refuseNonEmpty(destination, request.force, `${target.host}:${target.port}`);
      } finally {
        destination.close();
      }
      const keys = await scratch.migrateAll(target, password);
      return `restored ${keys} keys into ${target.host}:${target.port}`;
    } finally {
      await scratch.stop();
    }
  }

  private async currentMaster(ctx: DriverContext): Promise<{ host: string; port: number }> {
    try {
      return await this.askSentinels(ctx, (_sentinel, connection) => masterOf(connection, this.redis.masterName));
    } catch (error) {
      throw new UserError(`${(error as Error).message}; pass --target host:port`);
    }
  }
}

/** An authentication error reply (WRONGPASS, NOAUTH, an AUTH the server cannot take). */
function isAuthError(error: unknown): boolean {
  return error instanceof RedisReplyError && /\b(WRONGPASS|NOAUTH|AUTH)\b/.test(error.message);
}

/** `redis_version` from INFO server: also proves the server answers, with this password. */
async function serverVersion(node: RedisNode, password: string): Promise<string> {
  const connection = await RedisConnection.open(node, password);
  try {
    return parseInfo(await connection.command('INFO', 'server')).redis_version ?? 'unknown';
  } finally {
    connection.close();
  }
}

async function masterOf(connection: RedisConnection, masterName: string): Promise<{ host: string; port: number }> {
  const master = await connection.command('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName);
  if (!Array.isArray(master)) throw new Error(`does not know a master named "${masterName}"`);
  return { host: String(master[0]), port: Number(master[1]) };
}

function parseTarget(target: string): { host: string; port: number } {
  if (!/^[^\s:]+:\d{1,5}$/.test(target)) throw new UserError(`--target for a Redis backup must be host:port (got "${target}")`);
  return splitHostPort(target);
}

async function refuseNonEmpty(connection: RedisConnection, force: boolean, address: string): Promise<void> {
  const keys = keyCount(parseInfo(await connection.command('INFO', 'keyspace')));
  if (keys > 0 && !force) throw new UserError(`Redis at ${address} already holds ${keys} keys; restore into an empty server, or pass --force to overwrite keys of the same name`);
}

/** Total keys in an `INFO keyspace` reply (`db0:keys=3,expires=0,…`). */
function keyCount(keyspace: Record<string, string>): number {
  return Object.values(keyspace).reduce((sum, value) => sum + Number(/keys=(\d+)/.exec(value)?.[1] ?? 0), 0);
}

async function redisCheckRdbVersion(): Promise<string> {
  // redis-check-rdb has no --version; it is built from the same source as redis-server.
  return `redis-check-rdb from ${await toolVersion('redis-server')}`;
}

/** A private redis-server holding the backup's data, reachable only through a unix socket. */
class ScratchRedis {
  private constructor(private readonly child: ChildProcess, private readonly dir: string, private readonly socket: string) {}

  static async start(rdb: string, parent: string, ctx: DriverContext): Promise<ScratchRedis> {
    const dir = await fs.promises.mkdtemp(path.join(parent, '.restore-'));
    // A hard link costs nothing, and redis-server replaces files by rename, never in place.
    await fs.promises.link(rdb, path.join(dir, RDB_FILE)).catch(() => fs.promises.copyFile(rdb, path.join(dir, RDB_FILE)));
    const socket = path.join(dir, 'redis.sock');
    const child = spawn('redis-server', ['--port', '0', '--unixsocket', socket, '--dir', dir, '--dbfilename', RDB_FILE, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    const scratch = new ScratchRedis(child, dir, socket);
    try {
      await scratch.waitUntilLoaded(ctx);
    } catch (error) {
      await scratch.stop();
      throw error;
    }
    return scratch;
  }

  private async waitUntilLoaded(ctx: DriverContext): Promise<void> {
    const deadline = Date.now() + 10 * 60_000;
    let exited: string | undefined;
    this.child.once('exit', (code, signal) => (exited = signal ?? `exit code ${code}`));
    this.child.once('error', (error) => (exited = error.message));
    while (Date.now() < deadline && !ctx.signal.aborted) {
      if (exited !== undefined) throw new Error(`the scratch redis-server stopped while loading the RDB (${exited})`);
      try {
        const connection = await RedisConnection.open({ path: this.socket }, undefined);
        try {
          await connection.command('PING');
          return;
        } finally {
          connection.close();
        }
      } catch (error) {
        if (error instanceof RedisReplyError && !error.message.includes('LOADING')) throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('the scratch redis-server did not finish loading the RDB');
  }

  /**
   * Copies every key of every database; returns how many there were. REPLACE is safe here (the
   * target was checked empty, or --force was given) and needed: SCAN may return a key twice.
   */
  async migrateAll(target: { host: string; port: number }, password: string): Promise<number> {
    // No reply timeout: MIGRATE bounds itself (MIGRATE_TIMEOUT_MS of idle I/O), and a batch of
    // large keys may take longer than any fixed limit.
    const source = await RedisConnection.open({ path: this.socket }, undefined, 5000, 0);
    try {
      const keyspace = parseInfo(await source.command('INFO', 'keyspace'));
      for (const db of Object.keys(keyspace).map((name) => name.slice('db'.length))) {
        await source.command('SELECT', db);
        let cursor = '0';
        do {
          const [next, keys] = (await source.command('SCAN', cursor, 'COUNT', String(MIGRATE_BATCH))) as [string, string[]];
          cursor = next;
          if (keys.length === 0) continue;
          await source.command('MIGRATE', target.host, String(target.port), '', db, String(MIGRATE_TIMEOUT_MS), 'COPY', 'REPLACE', 'AUTH', password, 'KEYS', ...keys);
        } while (cursor !== '0');
      }
      return keyCount(keyspace);
    } finally {
      source.close();
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGKILL');
      await exited;
    }
    await fs.promises.rm(this.dir, { recursive: true, force: true });
  }
}

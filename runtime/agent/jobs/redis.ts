/**
 * Redis: an RDB snapshot taken from a replica found through the sentinels, so the fork and the
 * disk write of BGSAVE never hit the master. The master is used only when no replica is healthy
 * and answers, with a warning in the log.
 *
 * Restore loads the RDB into a private redis-server (unix socket only, no persistence) on a hard
 * link of dump.rdb and copies every key of every database to the target with DUMP and RESTORE,
 * names and values as bytes, TTLs as they are. The target is a running master (by default the
 * current one, which passes the keys on to its replicas). It must hold no keys, unless --force:
 * then, once the backup has loaded and the target has passed its checks (every database of the
 * backup, room for it under its maxmemory), the target is emptied (FLUSHALL, every database), so
 * it ends with exactly the backup's keyspace. Afterwards every key
 * of the backup, read again from a fresh load of the file, must be on the target (or have
 * expired); a restore that is short of even one key fails and names the keys. Nothing on the
 * target host's disk is touched. (Offline alternative: stop the server, put dump.rdb into its
 * `dir`, start it.)
 */
import type { ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { JobConfig } from '../config';
import { secretFromEnv } from '../config';
import { UserError } from '../errors';
import { runTool, spawnGuarded, toolVersion, watchGrowth } from '../exec';
import { fieldsOf, parseInfo, RedisConnection, RedisReply, RedisReplyError, textOf } from '../redis-connection';
import { BackupOutcome, DriverContext, JobDriver, RestoreRequest } from './driver';

type RedisJob = Extract<JobConfig, { kind: 'redis' }>;

const RDB_FILE = 'dump.rdb';
/** Keys copied per round trip. Their values come in one reply: this bounds the agent's memory. */
const COPY_BATCH = 100;
/** Keys checked on the target per round trip (names only). */
const CHECK_BATCH = 1000;
/** How long one RESTORE may wait for the target: a batch of large values takes a while. */
const TARGET_REPLY_TIMEOUT_MS = 60_000;
/** How many keys a restore that falls short names (the count is always complete). */
const KEYS_NAMED = 5;
/** How many bytes of a key's name a message shows. */
const NAME_BYTES_SHOWN = 64;
/**
 * A key missing from the target whose TTL ends within this is counted as expired, not lost: the
 * target's clock may run a little ahead of the agent's.
 */
const EXPIRY_SLACK_MS = 1000;
/**
 * One SCAN step, with each key's expiry (absolute, ms; -1: none) and, when ARGV[3] asks, its DUMP
 * payload. Time stands still inside a script, so a key SCAN lists has not expired when it is
 * read: a key the copy finds is always copied, and one missing later was lost, not expired.
 */
const READ_KEYS_SCRIPT = `
local page = redis.call('SCAN', ARGV[1], 'COUNT', ARGV[2])
local expiries, payloads = {}, {}
for i, key in ipairs(page[2]) do
  expiries[i] = redis.call('PEXPIRETIME', key)
  if ARGV[3] == 'payloads' then payloads[i] = redis.call('DUMP', key) end
end
return {page[1], page[2], expiries, payloads}
`;
/**
 * How long the RDB file may stay the same size before the transfer counts as stalled. Generous:
 * before the first byte the server forks and writes its snapshot (disk-based replication), which
 * takes minutes for a large dataset; it keeps the link alive meanwhile, but the file does not grow.
 */
const RDB_STALL_MS = 10 * 60_000;
/**
 * What redis-check-rdb and redis-server (2.x to 8.x) print when an RDB's format is newer than
 * they know: the file was written by a newer Redis than the agent's tools.
 */
const FORMAT_REFUSED = /Can't handle RDB format version \d+/;
/**
 * What a backup may take on the target beyond what it takes loaded on the private server, as a
 * share of that. The target may be another Redis version, or set other thresholds for compact
 * encodings (RESTORE keeps a value's listpack/intset form only where the target's limits allow,
 * and a hash or set in its plain form takes several times the bytes), and its allocator rounds
 * other sizes; a batch of RESTOREs (COPY_BATCH payloads) waits in its query buffer. A tenth
 * covers rounding and a batch in flight; it is an estimate, not a promise: a target that still
 * runs out of room (much smaller encoding limits, say) fails the restore naming the keys it could
 * not place (see summarize). Refusing a restore that would have fitted costs a CONFIG SET; letting
 * one through that does not fit costs the target's data.
 */
const MEMORY_MARGIN = 0.1;

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
    const rdb = path.join(dir, RDB_FILE);
    let output: string;
    try {
      output = await runTool('redis-check-rdb', [rdb]);
    } catch (error) {
      if (FORMAT_REFUSED.test((error as Error).message)) throw await tooOldForRdb(rdb, 'redis-check-rdb');
      throw error;
    }
    if (!output.includes('RDB looks OK')) throw new Error(`redis-check-rdb did not confirm the file: ${output.slice(-500)}`);
    const keys = /(\d+) keys read/.exec(output)?.[1] ?? '?';
    return `redis-check-rdb: OK, ${keys} keys`;
  }

  async restore(request: RestoreRequest, ctx: DriverContext): Promise<string> {
    if (request.only !== undefined) throw new UserError('--only does not apply to Redis backups (an RDB is restored whole)');
    const password = secretFromEnv(this.redis.passwordEnv, ctx.env);
    const endpoint = request.target === undefined ? await this.currentMaster(ctx) : parseTarget(request.target);
    const rdb = path.join(request.dir, RDB_FILE);
    const target = await RedisConnection.open(endpoint, password, 5000, TARGET_REPLY_TIMEOUT_MS);
    try {
      // Refusals that need no backup come first; emptying the target comes only after the backup
      // has loaded and the target has shown it can take every database of it.
      const held = keyCount(parseInfo(await target.command('INFO', 'keyspace')));
      if (held > 0 && !request.force) throw new UserError(`Redis at ${target.address} already holds ${held} keys; restore into an empty server, or pass --force to replace its whole keyspace (every database) with the backup's`);
      await refuseReplica(target);
      const refused = await ScratchRedis.using(rdb, ctx, async (scratch) => {
        const databases = await scratch.databases();
        await selectEach(target, databases);
        if (request.force) {
          await refuseTooSmall(target, await scratch.usedMemory());
          ctx.log.warn('emptying the target before the restore (--force)', { address: target.address, keys: held });
          await target.command('FLUSHALL');
        }
        return scratch.copyTo(target, databases);
      });
      // Read afresh from the file, not from the server the copy used: whatever happened there
      // (a key deleted, a reply lost) cannot hide a key from the check.
      const check = await ScratchRedis.using(rdb, ctx, (scratch) => scratch.checkOn(target));
      return summarize(target.address, refused, check);
    } finally {
      target.close();
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

/** A replica refuses writes (READONLY); its master is the target, and passes the keys on. */
async function refuseReplica(target: RedisConnection): Promise<void> {
  const replication = parseInfo(await target.command('INFO', 'replication'));
  if (replication.role === 'slave') {
    throw new UserError(`Redis at ${target.address} is a replica (of ${replication.master_host}:${replication.master_port}); restore into its master, which passes the keys on`);
  }
}

/** The target must have every database the backup uses (`databases` in its config). */
async function selectEach(target: RedisConnection, databases: ReadonlyMap<number, number>): Promise<void> {
  for (const db of databases.keys()) {
    try {
      await target.command('SELECT', String(db));
    } catch (error) {
      if (!(error instanceof RedisReplyError)) throw error;
      throw new UserError(`the backup holds keys in database ${db}, which Redis at ${target.address} refuses (${error.reply}); raise \`databases\` in its config`);
    }
  }
}

/**
 * Emptying a target whose maxmemory cannot hold the backup would trade its data for a partial
 * copy: refused while nothing is touched. The backup needs what it uses on the private server
 * (a server's startup overhead included, which the target has too), the margin, and the target's
 * replication backlog, which FLUSHALL keeps and the private server never has. maxmemory 0: no limit.
 * Read from INFO memory, which answers where CONFIG is renamed away (managed Redis services).
 */
async function refuseTooSmall(target: RedisConnection, backupBytes: number): Promise<void> {
  const memory = parseInfo(await target.command('INFO', 'memory'));
  const maxmemory = Number(memory.maxmemory ?? 0);
  if (!(maxmemory > 0)) return;
  const needed = Math.ceil(backupBytes * (1 + MEMORY_MARGIN)) + Number(memory.mem_replication_backlog ?? 0);
  if (needed <= maxmemory) return;
  const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  throw new UserError(
    `the backup needs about ${mb(needed)} on Redis at ${target.address} (${mb(backupBytes)} loaded, plus ${MEMORY_MARGIN * 100}% for differences between servers and its replication backlog), ` +
      `more than its maxmemory of ${mb(maxmemory)}; nothing was changed: raise maxmemory (CONFIG SET maxmemory, and in its config file) or restore into a larger server`,
  );
}

/** Total keys in an `INFO keyspace` reply (`db0:keys=3,expires=0,…`). */
function keyCount(keyspace: Record<string, string>): number {
  return Object.values(keyspace).reduce((sum, value) => sum + Number(/keys=(\d+)/.exec(value)?.[1] ?? 0), 0);
}

/** The RDB format version in a file's header ("REDIS0012": 12), if it has one. */
async function rdbFormatVersion(rdb: string): Promise<{ header: string; version: number } | undefined> {
  const file = await fs.promises.open(rdb, 'r');
  try {
    const { buffer, bytesRead } = await file.read(Buffer.alloc(9), 0, 9, 0);
    const header = buffer.subarray(0, bytesRead).toString('latin1');
    return /^REDIS\d{4}$/.test(header) ? { header, version: Number(header.slice(5)) } : undefined;
  } finally {
    await file.close();
  }
}

/**
 * A tool (redis-check-rdb or redis-server, one binary) refused the RDB's format: the agent's Redis
 * is older than the server that wrote it.
 */
async function tooOldForRdb(rdb: string, tool: string): Promise<Error> {
  const format = await rdbFormatVersion(rdb);
  const written = format === undefined ? 'in a format' : `in RDB format version ${format.version} (header "${format.header}")`;
  // "Redis server v=7.2.11 sha=… malloc=…": the release is what the reader needs.
  const release = /\bv=(\S+)/.exec(await toolVersion('redis-server'))?.[1] ?? 'unknown';
  return new Error(
    `${path.basename(rdb)} is written ${written} that ${tool} of Redis ${release} cannot read: the backup image's Redis is older than the server's: ` +
      "rebuild it with the server's image (its REDIS_IMAGE build argument is the environment's images.redis)",
  );
}

async function redisCheckRdbVersion(): Promise<string> {
  // redis-check-rdb has no --version; it is built from the same source as redis-server.
  return `redis-check-rdb from ${await toolVersion('redis-server')}`;
}

/** Keys a restore could not place: how many, and the first few by name. */
class KeyShortfall {
  count = 0;
  readonly named: string[] = [];

  add(db: number, name: Buffer, reason?: string): void {
    this.count++;
    if (this.named.length < KEYS_NAMED) this.named.push(`${printableName(name)} (db ${db})${reason === undefined ? '' : `: ${reason}`}`);
  }

  /** Keys known to be missing only by count (their names were never read). */
  addUnnamed(count: number): void {
    this.count += count;
  }

  describe(): string {
    return `${this.named.join(', ')}${this.count > this.named.length ? `, and ${this.count - this.named.length} more` : ''}`;
  }
}

/** A key's name as bytes a terminal and a log show safely: printable ASCII as is, the rest \xNN. */
function printableName(name: Buffer): string {
  let shown = '';
  for (const byte of name.subarray(0, NAME_BYTES_SHOWN)) {
    shown += byte >= 0x20 && byte < 0x7f && byte !== 0x22 && byte !== 0x5c ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return `"${shown}"${name.length > NAME_BYTES_SHOWN ? `… (${name.length} bytes)` : ''}`;
}

interface CheckResult {
  /** Keys the fresh load of the backup holds (DBSIZE), counted apart from the walk over them. */
  readonly loaded: number;
  /** Keys of the backup on the target, per database. */
  readonly present: ReadonlyMap<number, number>;
  /** Keys that should be on the target and are not (a count beyond the names means unread keys). */
  readonly missing: KeyShortfall;
  /** Keys in the file that had expired before it was loaded (from the server's load report). */
  readonly expiredBeforeLoad: number;
}

function summarize(address: string, refused: KeyShortfall, check: CheckResult): string {
  const present = [...check.present.values()].reduce((sum, n) => sum + n, 0);
  if (check.missing.count > 0 || refused.count > 0) {
    const refusals = refused.count > 0 ? `; the target refused ${refused.count}: ${refused.describe()}` : '';
    throw new Error(
      `restore into ${address} is incomplete: ${check.missing.count} of the backup's ${check.loaded} keys are not on the target: ${check.missing.describe()}${refusals}. ` +
        'The target holds a partial copy: remove the cause and restore again with --force',
    );
  }
  // Every key of the backup is on the target or accounted for as expired (see checkOn).
  const expired = check.expiredBeforeLoad + check.loaded - present;
  const perDatabase = [...check.present].map(([db, n]) => `db${db}: ${n}`).join(', ');
  const expiredNote = expired > 0 ? `; ${expired} more had expired (TTL) since the backup was taken` : '';
  return `restored ${present} keys into ${address} (${perDatabase || 'none'}), each checked on the target${expiredNote}`;
}

/** A private redis-server holding the backup's data, reachable only through a unix socket. */
class ScratchRedis {
  private constructor(private readonly child: ChildProcess, private readonly dir: string, private readonly socket: string) {}

  /** Starts one on the RDB, hands it to `use`, and stops it whatever happens. */
  static async using<T>(rdb: string, ctx: DriverContext, use: (scratch: ScratchRedis) => Promise<T>): Promise<T> {
    const scratch = await ScratchRedis.start(rdb, ctx);
    try {
      return await use(scratch);
    } finally {
      await scratch.stop();
    }
  }

  private static async start(rdb: string, ctx: DriverContext): Promise<ScratchRedis> {
    // Beside the job's backups (same filesystem, so the hard link works), never inside one.
    const dir = await fs.promises.mkdtemp(path.join(path.dirname(path.dirname(rdb)), '.restore-'));
    // A hard link costs nothing, and redis-server replaces files by rename, never in place.
    await fs.promises.link(rdb, path.join(dir, RDB_FILE)).catch(() => fs.promises.copyFile(rdb, path.join(dir, RDB_FILE)));
    const socket = path.join(dir, 'redis.sock');
    const args = ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', '--dir', dir, '--dbfilename', RDB_FILE, '--logfile', path.join(dir, 'redis.log'), '--save', '', '--appendonly', 'no', '--maxmemory', '0'];
    // Guarded like every tool: it dies with the agent, however the agent dies.
    const { child } = spawnGuarded('redis-server', args, { env: process.env, stdio: ['ignore', 'ignore', 'ignore'] });
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
      if (exited !== undefined) {
        const log = await this.logTail();
        if (FORMAT_REFUSED.test(log)) throw await tooOldForRdb(path.join(this.dir, RDB_FILE), 'redis-server');
        throw new Error(`the scratch redis-server stopped while loading the RDB (${exited}): ${log}`);
      }
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

  private async logTail(): Promise<string> {
    const log = await fs.promises.readFile(path.join(this.dir, 'redis.log'), 'utf8').catch(() => '');
    return log.trim().split('\n').slice(-3).join(' | ') || 'no log';
  }

  /** The server's own count of keys it dropped while loading because their TTL had run out. */
  private async expiredBeforeLoad(): Promise<number> {
    const log = await fs.promises.readFile(path.join(this.dir, 'redis.log'), 'utf8');
    return Number(/Done loading RDB, keys loaded: \d+, keys expired: (\d+)/.exec(log)?.[1] ?? 0);
  }

  /** No reply timeout: the server is private and bounds itself; a big batch takes what it takes. */
  private connect(): Promise<RedisConnection> {
    return RedisConnection.open({ path: this.socket }, undefined, 5000, 0);
  }

  /** Bytes the loaded backup takes (INFO memory used_memory), as maxmemory counts them. */
  async usedMemory(): Promise<number> {
    const source = await this.connect();
    try {
      return Number(parseInfo(await source.command('INFO', 'memory')).used_memory);
    } finally {
      source.close();
    }
  }

  /** Keys per database (DBSIZE), for every database that holds any. */
  async databases(): Promise<Map<number, number>> {
    const source = await this.connect();
    try {
      const databases = new Map<number, number>();
      const keyspace = parseInfo(await source.command('INFO', 'keyspace'));
      for (const db of Object.keys(keyspace).map((name) => Number(name.slice('db'.length))).sort((x, y) => x - y)) {
        await source.command('SELECT', String(db));
        databases.set(db, (await source.command('DBSIZE')) as number);
      }
      return databases;
    } finally {
      source.close();
    }
  }

  /**
   * Copies every key to the target: DUMP and RESTORE, names and payloads as the bytes they are,
   * each batch's RESTOREs sent in one go. REPLACE, because SCAN may return a key twice; the target
   * was checked empty, or emptied (--force). A key the target refuses is counted and the copy
   * goes on, so the failure can say how many and which (returned); a lost connection ends it at once.
   */
  async copyTo(target: RedisConnection, databases: ReadonlyMap<number, number>): Promise<KeyShortfall> {
    const source = await this.connect();
    const refused = new KeyShortfall();
    try {
      for (const db of databases.keys()) {
        await source.command('SELECT', String(db));
        await target.command('SELECT', String(db));
        await eachBatch(source, COPY_BATCH, true, async ({ names, expiries, payloads }) => {
          const sent = Date.now();
          await Promise.all(names.map(async (name, i) => {
            const ttl = expiries[i] < 0 ? 0 : expiries[i] - sent;
            // Ran out since it was read: the check counts it as expired.
            if (expiries[i] >= 0 && ttl <= 0) return;
            try {
              await target.command('RESTORE', name, String(ttl), payloads[i], 'REPLACE');
            } catch (error) {
              if (!(error instanceof RedisReplyError)) throw error;
              refused.add(db, name, error.reply);
            }
          }));
        });
      }
      return refused;
    } finally {
      source.close();
    }
  }

  /**
   * Looks up every key of this (freshly loaded) server on the target. The keys the walk sees, plus
   * those the server expired meanwhile, must add up to its DBSIZE at the start: a key it lost
   * otherwise could not be looked up, and counts as missing.
   */
  async checkOn(target: RedisConnection): Promise<CheckResult> {
    const source = await this.connect();
    const present = new Map<number, number>();
    let seen = 0;
    const missing = new KeyShortfall();
    try {
      const databases = await this.databases();
      const expiredAtStart = await expiredKeys(source);
      for (const db of databases.keys()) {
        await source.command('SELECT', String(db));
        await target.command('SELECT', String(db));
        present.set(db, 0);
        await eachBatch(source, CHECK_BATCH, false, async ({ names, expiries }) => {
          const exists = await Promise.all(names.map((name) => target.command('EXISTS', name)));
          const now = Date.now();
          seen += names.length;
          names.forEach((name, i) => {
            if (exists[i] === 1) present.set(db, (present.get(db) ?? 0) + 1);
            else if (expiries[i] < 0 || expiries[i] > now + EXPIRY_SLACK_MS) missing.add(db, name);
          });
        });
      }
      const loaded = [...databases.values()].reduce((sum, n) => sum + n, 0);
      const unread = loaded - seen - ((await expiredKeys(source)) - expiredAtStart);
      if (unread > 0) missing.addUnnamed(unread);
      return { loaded, present, missing, expiredBeforeLoad: await this.expiredBeforeLoad() };
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

interface KeyBatch {
  readonly names: Buffer[];
  /** Absolute expiry in ms, -1 for none. */
  readonly expiries: number[];
  readonly payloads: Buffer[];
}

/** Keys the server has expired since it started (INFO stats), lazily or actively. */
async function expiredKeys(connection: RedisConnection): Promise<number> {
  return Number(parseInfo(await connection.command('INFO', 'stats')).expired_keys);
}

/** Walks the selected database of `source` with READ_KEYS_SCRIPT, one batch at a time. */
async function eachBatch(source: RedisConnection, count: number, withPayloads: boolean, use: (batch: KeyBatch) => Promise<void>): Promise<void> {
  let cursor: RedisReply = '0';
  do {
    const [next, names, expiries, payloads] = (await source.command('EVAL', READ_KEYS_SCRIPT, '0', textOf(cursor), String(count), withPayloads ? 'payloads' : 'names')) as [Buffer, Buffer[], number[], Buffer[]];
    cursor = next;
    if (names.length > 0) await use({ names, expiries, payloads });
  } while (textOf(cursor) !== '0');
}

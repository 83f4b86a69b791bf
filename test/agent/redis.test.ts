/**
 * The Redis job against real Redis servers: a master, one replica and three sentinels
 * (Debian's redis-server and redis-sentinel 7.0), all on 127.0.0.1.
 */
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { AgentConfig } from '../../runtime/agent/config';
import { fieldsOf, parseInfo, RedisConnection, RedisReply } from '../../runtime/agent/redis-connection';
import { RedisDriver } from '../../runtime/agent/jobs/redis';
import { runBackup } from '../../runtime/agent/runner';
import { freePort, ServerProcess, startRedisProcess, tempDir } from '../helpers/servers';
import { cli, exitOf, manifests, spawnCli, testAgent, waitFor, writeConfig } from './harness';

const PASSWORD = 'redis-secret-pw';
const MASTER = 'tenant-redis';

/** Writes a config file the server (running as the tempDir's owner) may rewrite, as sentinel does. */
function writeServerConfig(dir: string, name: string, lines: string[]): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  const { uid, gid } = fs.statSync(dir);
  fs.chownSync(file, uid, gid);
  return file;
}

async function startRedis(dir: string, name: string, extra: string[] = []): Promise<ServerProcess> {
  const port = await freePort();
  const conf = writeServerConfig(dir, `${name}.conf`, [
    `port ${port}`,
    'bind 127.0.0.1',
    `dir ${dir}`,
    `dbfilename ${name}.rdb`,
    'save ""',
    'appendonly no',
    `requirepass ${PASSWORD}`,
    `masterauth ${PASSWORD}`,
    ...extra,
  ]);
  return startRedisProcess(['redis-server', conf], port);
}

async function startSentinel(dir: string, name: string, masterPort: number): Promise<ServerProcess> {
  const port = await freePort();
  const conf = writeServerConfig(dir, `${name}.conf`, [
    `port ${port}`,
    'bind 127.0.0.1',
    `dir ${dir}`,
    `sentinel monitor ${MASTER} 127.0.0.1 ${masterPort} 2`,
    `sentinel auth-pass ${MASTER} ${PASSWORD}`,
    `sentinel down-after-milliseconds ${MASTER} 1500`,
    `sentinel failover-timeout ${MASTER} 600000`,
  ]);
  return startRedisProcess(['redis-sentinel', conf], port);
}

async function withRedis<T>(port: number, use: (c: RedisConnection) => Promise<T>): Promise<T> {
  const connection = await RedisConnection.open({ host: '127.0.0.1', port }, PASSWORD);
  try {
    return await use(connection);
  } finally {
    connection.close();
  }
}

const command = (port: number, ...args: string[]) => withRedis(port, (c) => c.command(...args));

/** Replies with every Buffer as hex: compared as text (jest compares Buffers byte by byte, slowly). */
function hex(reply: RedisReply): unknown {
  if (Buffer.isBuffer(reply)) return reply.toString('hex');
  return Array.isArray(reply) ? reply.map(hex) : reply;
}

/** A value read by its type, names and bytes as hex; unordered collections sorted. */
async function valueOf(c: RedisConnection, type: string, name: Buffer): Promise<unknown> {
  const pairs = (flat: unknown[]) => flat.flatMap((item, i) => (i % 2 === 0 ? [[item, flat[i + 1]]] : []));
  switch (type) {
    case 'string': return hex(await c.command('GET', name));
    case 'list': return hex(await c.command('LRANGE', name, '0', '-1'));
    case 'set': return (hex(await c.command('SMEMBERS', name)) as string[]).sort();
    case 'zset': return hex(await c.command('ZRANGE', name, '0', '-1', 'WITHSCORES'));
    case 'hash': return pairs(hex(await c.command('HGETALL', name)) as string[]).sort();
    // Entries, groups, consumers and each group's pending entries with their delivery counts.
    case 'stream': return [hex(await c.command('XRANGE', name, '-', '+')), hex(await c.command('XINFO', 'STREAM', name, 'FULL'))];
    default: throw new Error(`a key of type ${type}: add it to valueOf`);
  }
}

interface StoredKey {
  type: string;
  value: unknown;
  /** Remaining TTL in ms, -1 without one. */
  pttl: number;
}

/** Every key of every database that holds any, by `db/name-as-hex`, read as bytes. */
async function keyspace(port: number): Promise<Map<string, StoredKey>> {
  return withRedis(port, async (c) => {
    const out = new Map<string, StoredKey>();
    for (const db of Object.keys(parseInfo(await c.command('INFO', 'keyspace'))).map((name) => name.slice('db'.length))) {
      await c.command('SELECT', db);
      let cursor = '0';
      do {
        const [next, names] = (await c.command('SCAN', cursor, 'COUNT', '1000')) as [Buffer, Buffer[]];
        cursor = next.toString();
        await Promise.all(names.map(async (name) => {
          const type = (await c.command('TYPE', name)) as string;
          out.set(`${db}/${name.toString('hex')}`, { type, value: await valueOf(c, type, name), pttl: (await c.command('PTTL', name)) as number });
        }));
      } while (cursor !== '0');
    }
    return new Map([...out].sort(([x], [y]) => x.localeCompare(y)));
  });
}

/** The same key names, types and values, and TTLs that agree within `toleranceMs`. */
function expectSameKeyspace(actual: Map<string, StoredKey>, expected: Map<string, StoredKey>, toleranceMs = 30_000): void {
  const withoutTtl = (keys: Map<string, StoredKey>) => [...keys].map(([name, { type, value, pttl }]) => [name, type, value, pttl < 0 ? pttl : 'expires']);
  expect(withoutTtl(actual)).toEqual(withoutTtl(expected));
  const drift = [...expected].filter(([name, { pttl }]) => pttl >= 0 && Math.abs((actual.get(name)?.pttl ?? -1) - pttl) > toleranceMs);
  expect(drift).toEqual([]);
}

/** The Redis job these tests run: the master the sentinels at `sentinels` name as MASTER. */
function cacheJob(sentinels: string[]) {
  return {
    name: 'cache',
    kind: 'redis' as const,
    schedule: '@hourly',
    retention: { daily: 3, weekly: 0, monthly: 0 },
    offsite: false,
    redis: { sentinels, masterName: MASTER, passwordEnv: 'REDIS_PASSWORD' },
  };
}

describe('Redis backup job (real redis-server replica and redis-sentinel)', () => {
  const servers: ServerProcess[] = [];
  let master: ServerProcess;
  let replica: ServerProcess;
  let sentinels: ServerProcess[];
  let config: AgentConfig;
  let configPath: string;
  const env = { REDIS_PASSWORD: PASSWORD };

  beforeAll(async () => {
    const dir = tempDir('redis-topology');
    master = await startRedis(dir, 'master');
    replica = await startRedis(dir, 'replica', [`replicaof 127.0.0.1 ${master.port}`]);
    sentinels = [];
    for (const name of ['sentinel-1', 'sentinel-2', 'sentinel-3']) sentinels.push(await startSentinel(dir, name, master.port));
    servers.push(master, replica, ...sentinels);

    await withRedis(master.port, async (c) => {
      await c.command('SET', 'greeting', 'hello, wörld ✓');
      await c.command('SET', 'session:1', 'expires later', 'EX', '86400');
      await c.command('HSET', 'user:1', 'name', 'Ada', 'email', 'ada@example.com');
      await c.command('RPUSH', 'queue', 'a', 'b', 'c', 'a');
      await c.command('SADD', 'tags', 'x', 'y', 'z');
      await c.command('ZADD', 'scores', '1.5', 'p', '-2', 'q');
      for (let i = 0; i < 2000; i++) await c.command('SET', `bulk:${i}`, `value-${i}`);
      await c.command('SELECT', '3');
      await c.command('SET', 'in-db-3', 'yes');
    });
    // The replica has everything, and every sentinel sees it as a healthy replica.
    await command(master.port, 'WAIT', '1', '5000');
    for (const sentinel of sentinels) {
      await waitFor('sentinel to discover the replica', async () => {
        const connection = await RedisConnection.open({ host: '127.0.0.1', port: sentinel.port }, undefined);
        try {
          const replicas = ((await connection.command('SENTINEL', 'REPLICAS', MASTER)) as RedisReply[]).map(fieldsOf);
          return replicas.some((r) => r.port === String(replica.port) && r['master-link-status'] === 'ok') ? true : undefined;
        } finally {
          connection.close();
        }
      }, 30_000, 250);
    }

    ({ config, path: configPath } = writeConfig({
      jobs: [cacheJob(sentinels.map((s) => `127.0.0.1:${s.port}`))],
    }));
  });

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  test('takes the RDB from the replica (not the master) and checks it with redis-check-rdb', async () => {
    const syncsServed = async (port: number) => Number(parseInfo(await command(port, 'INFO', 'stats')).sync_full);
    const [replicaBefore, masterBefore] = [await syncsServed(replica.port), await syncsServed(master.port)];

    const result = await cli(['run', 'cache', '--config', configPath], env);
    expect(result.code).toBe(0);
    expect(result.stderr).not.toContain(PASSWORD);

    const [manifest] = await manifests(config, 'cache');
    expect(manifest.source).toEqual({ version: expect.stringMatching(/^7\./), address: `127.0.0.1:${replica.port}`, role: 'replica' });
    expect(manifest.check).toMatchObject({ method: 'redis-check-rdb', result: 'passed', details: 'redis-check-rdb: OK, 2007 keys' });
    expect(manifest.files.map((f) => f.path)).toEqual(['dump.rdb']);
    // The replica served a full sync (redis-cli --rdb); the master did not.
    expect(await syncsServed(replica.port)).toBe(replicaBefore + 1);
    expect(await syncsServed(master.port)).toBe(masterBefore);
  });

  test('restores into a fresh server: same keys, values, types and TTLs in every database', async () => {
    const fresh = await startRedis(tempDir('redis-fresh'), 'fresh');
    servers.push(fresh);
    const result = await cli(['restore', 'cache', '--from', 'latest', '--target', `127.0.0.1:${fresh.port}`, '--config', configPath], env);
    expect(result.stderr).toBe(result.logs.map((l) => JSON.stringify(l)).join('\n') + '\n');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`restored 2007 keys into 127.0.0.1:${fresh.port} (db0: 2006, db3: 1), each checked on the target\n`);
    expectSameKeyspace(await keyspace(fresh.port), await keyspace(master.port));
    // The scratch server is gone and left nothing in the backup folder.
    expect(fs.readdirSync(path.join(config.backupDir, 'cache')).filter((n) => n.startsWith('.restore-'))).toEqual([]);

    const again = await cli(['restore', 'cache', '--from', 'latest', '--target', `127.0.0.1:${fresh.port}`, '--config', configPath], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toBe(`tenantry-agent: Redis at 127.0.0.1:${fresh.port} already holds 2007 keys; restore into an empty server, or pass --force to replace its whole keyspace (every database) with the backup's\n`);
  });

  test('a refused password fails the run at the replica (no retry on the master) and leaves no connection open', async () => {
    const clients = async () => Number(parseInfo((await command(replica.port, 'INFO', 'clients')) as string).connected_clients);
    const before = await clients();
    const { agent, lines } = testAgent(config, { REDIS_PASSWORD: 'not-the-password' });
    const manifest = await runBackup(agent, config.jobs[0]);
    expect(manifest.status).toBe('failed');
    expect(manifest.error).toMatch(new RegExp(`^127\\.0\\.0\\.1:${replica.port}: WRONGPASS`));
    expect(lines.map((l) => l.msg)).not.toContain('no healthy replica: taking the RDB from the master (its fork costs memory and latency)');
    // The refused connection was closed by the agent, not left to the server (whose timeout is 0).
    await waitFor('the refused connection to close', async () => ((await clients()) === before ? true : undefined), 5_000, 100);
  });

  test('skips a replica the sentinels still list as healthy but that does not answer, and takes the master', async () => {
    // Stopped, the replica still accepts connections (the kernel queues them) but never replies,
    // and the sentinels go on listing it as healthy until down-after-milliseconds (1.5 s) pass.
    replica.kill('SIGSTOP');
    try {
      const { agent, lines } = testAgent(config, env);
      const manifest = await runBackup(agent, config.jobs[0]);
      expect({ status: manifest.status, error: manifest.error }).toEqual({ status: 'ok', error: undefined });
      expect(manifest.source).toMatchObject({ address: `127.0.0.1:${master.port}`, role: 'master' });
      expect(lines).toContainEqual(expect.objectContaining({
        level: 'warn',
        msg: 'replica listed as healthy did not answer, trying the next candidate',
        fields: { address: `127.0.0.1:${replica.port}`, error: `127.0.0.1:${replica.port}: no reply to AUTH within 10000 ms` },
      }));
      expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'no healthy replica: taking the RDB from the master (its fork costs memory and latency)', fields: expect.objectContaining({ unreachable: `127.0.0.1:${replica.port}` }) }));
    } finally {
      replica.kill('SIGCONT');
    }
  }, 30_000);

  test('falls back to the master, with a warning, when no replica is healthy', async () => {
    await replica.stop();
    for (const sentinel of sentinels) {
      await waitFor('sentinel to mark the replica down', async () => {
        const connection = await RedisConnection.open({ host: '127.0.0.1', port: sentinel.port }, undefined);
        try {
          const replicas = ((await connection.command('SENTINEL', 'REPLICAS', MASTER)) as RedisReply[]).map(fieldsOf);
          return replicas.every((r) => /s_down|disconnected/.test(r.flags)) ? true : undefined;
        } finally {
          connection.close();
        }
      }, 30_000, 250);
    }
    const { agent, lines } = testAgent(config, env);
    const manifest = await runBackup(agent, config.jobs[0]);
    // The error too, so that a failed run says why.
    expect({ status: manifest.status, error: manifest.error }).toEqual({ status: 'ok', error: undefined });
    expect(manifest.source).toMatchObject({ address: `127.0.0.1:${master.port}`, role: 'master' });
    expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', job: 'cache', msg: 'no healthy replica: taking the RDB from the master (its fork costs memory and latency)' }));
  });
});

/**
 * Restore against real redis-servers: a keyspace with every kind of key and name, backed up once,
 * restored into fresh or prepared targets, compared key by key as bytes.
 */
describe('Redis restore: every key, as bytes (real redis-server)', () => {
  const servers: ServerProcess[] = [];
  let source: ServerProcess;
  let config: AgentConfig;
  let configPath: string;
  /**
   * Keys of the backup still alive (one key with a short TTL expires after the backup), for
   * counts; contents are compared with the source as it is at the time (TTLs keep running).
   */
  let backupKeys: Map<string, StoredKey>;
  const env = { REDIS_PASSWORD: PASSWORD };
  const bytes = (...values: number[]) => Buffer.from(values);
  const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const notUtf8 = (i: number) => Buffer.concat([bytes(0xff, 0xfe), Buffer.from(String(i))]);
  const longName = Buffer.concat([bytes(0xc3, 0x28), randomBytes(70 * 1024)]);

  async function target(name: string, extra: string[] = []): Promise<ServerProcess> {
    const server = await startRedis(tempDir(`redis-${name}`), name, extra);
    servers.push(server);
    return server;
  }

  const restore = (port: number, ...flags: string[]) => cli(['restore', 'cache', '--from', 'latest', '--target', `127.0.0.1:${port}`, '--config', configPath, ...flags], env);
  const perDatabase = (keys: Map<string, StoredKey>) => {
    const counts = new Map<string, number>();
    for (const name of keys.keys()) counts.set(name.split('/')[0], (counts.get(name.split('/')[0]) ?? 0) + 1);
    return [...counts].sort(([x], [y]) => Number(x) - Number(y)).map(([db, n]) => `db${db}: ${n}`).join(', ');
  };

  beforeAll(async () => {
    const dir = tempDir('redis-restore-source');
    source = await startRedis(dir, 'source');
    servers.push(source, await startSentinel(dir, 'sentinel', source.port));
    await withRedis(source.port, async (c) => {
      // Names: every byte value alone and all in one name, the empty name, names that are not
      // UTF-8 (101 of them among 10,000 others: the keys a UTF-8 round trip lost), a 70 KiB name.
      await Promise.all(Array.from({ length: 256 }, (_, i) => c.command('SET', bytes(i), everyByte)));
      await c.command('SET', everyByte, 'every byte in the name');
      await c.command('SET', '', '');
      await c.command('SET', 'empty value', '');
      await Promise.all(Array.from({ length: 101 }, (_, i) => c.command('SET', notUtf8(i), randomBytes(32))));
      await Promise.all(Array.from({ length: 10_000 }, (_, i) => c.command('SET', `bulk:${i}`, `value-${i}`)));
      await c.command('SET', longName, randomBytes(1024 * 1024));
      await c.command('SET', 'counter', '12345');
      // Every type, small (compact encodings) and large, with binary members.
      await c.command('RPUSH', 'list:small', everyByte, '', bytes(0xff));
      await c.command('RPUSH', 'list:large', ...Array.from({ length: 1000 }, (_, i) => randomBytes(i % 50)));
      await c.command('SADD', 'set:ints', '1', '2', '3');
      await c.command('SADD', 'set:bytes', ...Array.from({ length: 300 }, () => randomBytes(8)), bytes(0x00), '');
      await c.command('ZADD', 'zset:small', '-inf', bytes(0xff), '3.25', '', '+inf', everyByte);
      await c.command('ZADD', 'zset:large', ...Array.from({ length: 300 }, (_, i) => [String(i / 7), randomBytes(6)]).flat());
      await c.command('HSET', 'hash:small', bytes(0x00, 0xff), everyByte, '', '');
      await c.command('HSET', 'hash:large', ...Array.from({ length: 1000 }, (_, i) => [`f${i}`, randomBytes(20)]).flat());
      for (let i = 0; i < 5; i++) await c.command('XADD', 'stream', '*', bytes(0xfe, i), randomBytes(10));
      await c.command('XGROUP', 'CREATE', 'stream', 'readers', '0');
      await c.command('XREADGROUP', 'GROUP', 'readers', 'alice', 'COUNT', '2', 'STREAMS', 'stream', '>');
      await c.command('XGROUP', 'CREATE', 'stream', 'late', '$');
      await c.command('XGROUP', 'CREATECONSUMER', 'stream', 'late', 'bob');
      await c.command('PFADD', 'hll', ...Array.from({ length: 500 }, (_, i) => `visitor-${i}`));
      await c.command('SETBIT', 'bitmap', '100000', '1');
      await c.command('SETBIT', 'bitmap', '7', '1');
      // TTLs, on a binary name too.
      await c.command('SET', 'ttl:hour', 'v', 'EX', '3600');
      await c.command('HSET', 'ttl:hash', 'f', 'v');
      await c.command('PEXPIRE', 'ttl:hash', '7200000');
      await c.command('SET', notUtf8(999), 'v', 'EX', '5400');
      // Other databases.
      await c.command('SELECT', '3');
      await c.command('SET', bytes(0xff), 'in db 3');
      await c.command('SELECT', '15');
      await c.command('RPUSH', bytes(0x00), 'in db 15');
      await c.command('SELECT', '0');
      // In the backup, expired by the time of any restore.
      await c.command('SET', 'ttl:soon', 'v', 'PX', '6000');
    });
    ({ config, path: configPath } = writeConfig({
      jobs: [cacheJob([`127.0.0.1:${servers[1].port}`])],
    }));
    const backup = await cli(['run', 'cache', '--config', configPath], env);
    expect(backup.code).toBe(0);
    await waitFor('ttl:soon to expire', async () => ((await command(source.port, 'EXISTS', 'ttl:soon')) === 0 ? true : undefined), 10_000, 200);
    backupKeys = await keyspace(source.port);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  test('every key comes back byte for byte: any name, every type, TTLs, every database; the count is what landed', async () => {
    const fresh = await target('fresh');
    const result = await restore(fresh.port);
    expect(result.stderr).toBe(result.logs.map((l) => JSON.stringify(l)).join('\n') + '\n');
    expect(result.code).toBe(0);
    expectSameKeyspace(await keyspace(fresh.port), await keyspace(source.port));
    expect(result.stdout).toMatch(/^cache-\S+: /);
    expect(result.stdout.slice(result.stdout.indexOf(': ') + 2)).toBe(`restored ${backupKeys.size} keys into 127.0.0.1:${fresh.port} (${perDatabase(backupKeys)}), each checked on the target; 1 more had expired (TTL) since the backup was taken\n`);
  }, 60_000);

  test('--force on a target with other keys, in other databases too, ends with exactly the backup\'s keyspace', async () => {
    // A maxmemory with room for the backup does not stop it.
    const used = await target('used', ['maxmemory 64mb']);
    await withRedis(used.port, async (c) => {
      await c.command('SET', 'unrelated', 'survived the restore');
      await c.command('HSET', 'bulk:1', 'same name', 'other type');
      await c.command('SELECT', '5');
      await c.command('SET', 'unrelated in db 5', 'survived the restore');
    });
    const result = await restore(used.port, '--force');
    expect(result.code).toBe(0);
    expectSameKeyspace(await keyspace(used.port), await keyspace(source.port));
    expect(result.logs).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'emptying the target before the restore (--force)', fields: { address: `127.0.0.1:${used.port}`, keys: 3 } }));
  }, 60_000);

  test('a --force restore that fails before copying leaves the target as it was (too few databases, a replica)', async () => {
    const seed = async (port: number) => withRedis(port, async (c) => {
      await c.command('SET', 'bulk:1', 'the target\'s own value');
      await c.command('SET', 'unrelated', 'kept');
    });
    const fewDatabases = await target('few-databases', ['databases 2']);
    await seed(fewDatabases.port);
    const before = await keyspace(fewDatabases.port);
    const refused = await restore(fewDatabases.port, '--force');
    expectSameKeyspace(await keyspace(fewDatabases.port), before, 0);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(`tenantry-agent: the backup holds keys in database 3, which Redis at 127.0.0.1:${fewDatabases.port} refuses (ERR DB index is out of range); raise \`databases\` in its config\n`);

    const replica = await target('replica-target', [`replicaof 127.0.0.1 ${fewDatabases.port}`]);
    await waitFor('the replica to sync', async () => ((await command(replica.port, 'DBSIZE')) === 2 ? true : undefined), 10_000, 100);
    const toReplica = await restore(replica.port, '--force');
    expectSameKeyspace(await keyspace(replica.port), before, 0);
    expect(toReplica.code).toBe(2);
    expect(toReplica.stderr).toBe(`tenantry-agent: Redis at 127.0.0.1:${replica.port} is a replica (of 127.0.0.1:${fewDatabases.port}); restore into its master, which passes the keys on\n`);
  }, 60_000);

  test('--force into a target whose maxmemory cannot hold the backup is refused before anything is emptied', async () => {
    // Room for the target's own keys, not for the backup's (about 3 MiB loaded).
    const small = await target('too-small-for-force', ['maxmemory 2mb', 'maxmemory-policy noeviction']);
    await withRedis(small.port, async (c) => {
      await c.command('SET', 'bulk:1', 'the target\'s own value');
      await c.command('SELECT', '5');
      await c.command('SET', 'unrelated in db 5', 'kept');
    });
    const before = await keyspace(small.port);
    const result = await restore(small.port, '--force');
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(new RegExp(
      `^tenantry-agent: the backup needs about (\\d+\\.\\d) MiB on Redis at 127\\.0\\.0\\.1:${small.port} \\((\\d+\\.\\d) MiB loaded, plus 10% for differences between servers and its replication backlog\\), ` +
        'more than its maxmemory of 2\\.0 MiB; nothing was changed: raise maxmemory \\(CONFIG SET maxmemory, and in its config file\\) or restore into a larger server\n$',
    ));
    expect(result.logs).not.toContainEqual(expect.objectContaining({ msg: 'emptying the target before the restore (--force)' }));
    expectSameKeyspace(await keyspace(small.port), before, 0);
  }, 60_000);

  /**
   * A target holding one key of its own, and beside the backups a folder `name` holding the newest
   * backup's RDB as `alter` rewrites it, and a driver with the request to restore it into the
   * target with --force directly (past the runner's checksum check).
   */
  async function alteredBackup(targetName: string, name: string, alter: (rdb: Buffer) => Buffer) {
    const used = await target(targetName);
    await command(used.port, 'SET', 'bulk:1', 'the target\'s own value');
    const before = await keyspace(used.port);
    const [manifest] = await manifests(config, 'cache');
    const dir = path.join(config.backupDir, 'cache', name);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'dump.rdb'), alter(fs.readFileSync(path.join(config.backupDir, 'cache', manifest.id, 'dump.rdb'))));
    const { agent } = testAgent(config, env);
    const driver = new RedisDriver(config.jobs[0] as Extract<AgentConfig['jobs'][number], { kind: 'redis' }>);
    const request = { dir, manifest, target: `127.0.0.1:${used.port}`, force: true, withGlobals: false, commandLine: 'tenantry-agent restore redis' };
    return { used, before, dir, driver, request, ctx: { log: agent.log, signal: agent.signal, env } };
  }

  test('a --force restore of an RDB that does not load leaves the target as it was', async () => {
    // Past the runner's checksum check (which would refuse this file): the driver itself must
    // not empty the target for a backup it cannot load.
    const { used, before, dir: damaged, driver, request, ctx } = await alteredBackup('bad-rdb-target', 'damaged', (rdb) => rdb.subarray(0, rdb.length / 2));
    await expect(driver.restore(request, ctx)).rejects.toThrow(/^the scratch redis-server stopped while loading the RDB/);
    expectSameKeyspace(await keyspace(used.port), before, 0);
    fs.rmSync(damaged, { recursive: true });
  }, 60_000);

  test('an RDB in a format newer than the agent\'s Redis: the check and the restore say the backup image is older than the server', async () => {
    // A real dump from this suite's servers (Debian's 7.0, which reads formats up to 10), its
    // header raised to what Redis 7.4 writes.
    const { used, before, dir: newer, driver, request, ctx } = await alteredBackup('newer-format-target', 'newer-format', (rdb) => {
      expect(rdb.subarray(0, 5).toString()).toBe('REDIS');
      return Buffer.concat([Buffer.from('REDIS0012'), rdb.subarray(9)]);
    });
    const tooOld = (tool: string) =>
      new RegExp(`^dump\\.rdb is written in RDB format version 12 \\(header "REDIS0012"\\) that ${tool} of Redis 7\\.0\\.\\d+ cannot read: the backup image's Redis is older than the server's: rebuild it with the server's image`);

    await expect(driver.check(newer)).rejects.toThrow(tooOld('redis-check-rdb'));
    await expect(driver.restore(request, ctx)).rejects.toThrow(tooOld('redis-server'));
    expectSameKeyspace(await keyspace(used.port), before, 0);
    fs.rmSync(newer, { recursive: true });
  }, 60_000);

  test('keys deleted from the private server mid-restore: the restore fails, naming them', async () => {
    const fresh = await target('deleted-mid-restore');
    const victims = [notUtf8(7), Buffer.from('bulk:7'), bytes(0x00)];
    const child = spawnCli(['restore', 'cache', '--from', 'latest', '--target', `127.0.0.1:${fresh.port}`, '--config', configPath], env);
    // The agent is held still from the moment its private server has a socket, so the keys are
    // gone before it reads any.
    const jobDir = path.join(config.backupDir, 'cache');
    const socket = await waitFor('the private server\'s socket', () => {
      const scratch = fs.readdirSync(jobDir).find((name) => name.startsWith('.restore-'));
      const file = scratch && path.join(jobDir, scratch, 'redis.sock');
      return file && fs.existsSync(file) ? file : undefined;
    }, 60_000, 2);
    child.kill('SIGSTOP');
    try {
      await waitFor('the private server to load the backup and delete the keys', async () => {
        // Refused until the server listens, LOADING until it has read the file.
        let connection: RedisConnection | undefined;
        try {
          connection = await RedisConnection.open({ path: socket }, undefined);
          return (await connection.command('DEL', ...victims)) === victims.length ? true : undefined;
        } catch {
          return undefined;
        } finally {
          connection?.close();
        }
      }, 10_000, 10);
    } finally {
      child.kill('SIGCONT');
    }
    expect(await exitOf(child)).toBe(1);
    const { stderr } = child.output();
    expect(stderr).toContain(`tenantry-agent: restore into 127.0.0.1:${fresh.port} is incomplete: 3 of the backup's ${backupKeys.size} keys are not on the target: `);
    for (const name of ['"\\xff\\xfe7" (db 0)', '"bulk:7" (db 0)', '"\\x00" (db 0)']) expect(stderr).toContain(name);
    expect(stderr).toContain('The target holds a partial copy: remove the cause and restore again with --force');
    expect(await command(fresh.port, 'DBSIZE')).toBe([...backupKeys.keys()].filter((k) => k.startsWith('0/')).length - 3);
  }, 120_000);

  test.each([
    ['evicts some keys after accepting them (allkeys-random)', 'allkeys-random'],
    ['refuses some keys (OOM, noeviction)', 'noeviction'],
  ])('a target that %s: the restore fails, saying how many keys and which', async (_what, policy) => {
    const small = await target(`small-${policy}`, ['maxmemory 3mb', `maxmemory-policy ${policy}`]);
    const result = await restore(small.port);
    expect(result.code).toBe(1);
    const landed = await withRedis(small.port, async (c) => {
      let sum = 0;
      for (const db of ['0', '3', '15']) {
        await c.command('SELECT', db);
        sum += (await c.command('DBSIZE')) as number;
      }
      return sum;
    });
    const reported = new RegExp(`^tenantry-agent: restore into 127\\.0\\.0\\.1:${small.port} is incomplete: (\\d+) of the backup's ${backupKeys.size} keys are not on the target: "`).exec(result.stderr);
    const missing = Number(reported?.[1]);
    expect(missing).toBeGreaterThan(0);
    // Exactly what is missing; a server over maxmemory may evict more on any later command
    // (the reads here), never bring keys back.
    if (policy === 'noeviction') expect(missing).toBe(backupKeys.size - landed);
    else expect(missing).toBeLessThanOrEqual(backupKeys.size - landed);
    // Five are named; the rest counted.
    if (missing > 5) expect(result.stderr).toContain(`, and ${missing - 5} more`);
    if (policy === 'noeviction') expect(result.stderr).toMatch(/; the target refused \d+: ".*\(db \d+\): OOM command not allowed when used memory > 'maxmemory'/);
  }, 60_000);
});

/**
 * The Redis job against real Redis servers: a master, one replica and three sentinels
 * (Debian's redis-server and redis-sentinel 7.0), all on 127.0.0.1.
 */
import * as fs from 'fs';
import * as path from 'path';
import { AgentConfig } from '../../runtime/agent/config';
import { fieldsOf, parseInfo, RedisConnection, RedisReply } from '../../runtime/agent/redis-connection';
import { runBackup } from '../../runtime/agent/runner';
import { freePort, ServerProcess, startRedisProcess, tempDir } from '../helpers/servers';
import { cli, manifests, testAgent, waitFor, writeConfig } from './harness';

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
      jobs: [{
        name: 'cache',
        kind: 'redis',
        schedule: '@hourly',
        retention: { daily: 3, weekly: 0, monthly: 0 },
        offsite: false,
        redis: { sentinels: sentinels.map((s) => `127.0.0.1:${s.port}`), masterName: MASTER, passwordEnv: 'REDIS_PASSWORD' },
      }],
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

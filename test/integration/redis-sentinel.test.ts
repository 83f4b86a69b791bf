/**
 * A tenant's Redis topology (1 master, 2 replicas, 3 sentinels) started from the rendered start
 * scripts and templates with real redis-server and redis-sentinel 7.0 processes, as the postgres
 * user (never root), all on 127.0.0.1 with distinct ports.
 */
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { renderRedisNode, renderSentinel } from '../../runtime/render/redis';
import type { ContainerLaunch } from '../../runtime/render/types';
import { writeStartScript } from '../helpers/launch';
import { freePort, redisCli, ServerProcess, startRedisProcess, tempDir } from '../helpers/servers';

const MASTER_NAME = 'tenant';
const HOST = '127.0.0.1';

/** Retries `check` until it passes or `timeoutMs` is over; then its last error is the failure. */
async function eventually<T>(check: () => Promise<T>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/** `INFO replication` as a record. */
async function replicationInfo(port: number, password: string): Promise<Record<string, string>> {
  const text = await redisCli(port, password, 'INFO', 'replication');
  return Object.fromEntries(
    text
      .split(/\r?\n/)
      .filter((line) => line.includes(':'))
      .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1)]),
  );
}

/** A flat field/value reply (SENTINEL MASTER) as a record. */
function pairs(reply: string): Record<string, string> {
  const lines = reply.split('\n');
  const record: Record<string, string> = {};
  for (let i = 0; i + 1 < lines.length; i += 2) record[lines[i]] = lines[i + 1];
  return record;
}

interface Member {
  port: number;
  script: string;
  dataDir: string;
  process?: ServerProcess;
}

describe('redis sentinel topology (real redis-server and redis-sentinel 7.0)', () => {
  const redisPassword = randomBytes(16).toString('base64url');
  const sentinelPassword = randomBytes(16).toString('base64url');
  const nodes: Member[] = [];
  const sentinels: Member[] = [];
  const launches: ContainerLaunch[] = [];

  const startNode = async (node: Member) => {
    node.process = await startRedisProcess({ script: node.script, env: { REDIS_PASSWORD: redisPassword } }, node.port);
  };
  const startSentinel = async (sentinel: Member) => {
    const env = { REDIS_PASSWORD: redisPassword, SENTINEL_PASSWORD: sentinelPassword };
    sentinel.process = await startRedisProcess({ script: sentinel.script, env }, sentinel.port);
  };
  const node = (port: number, ...args: string[]) => redisCli(port, redisPassword, ...args);
  const sentinel = (port: number, ...args: string[]) => redisCli(port, sentinelPassword, ...args);
  const masterSeenBy = async (port: number) => (await sentinel(port, 'SENTINEL', 'get-master-addr-by-name', MASTER_NAME)).split('\n');

  beforeAll(async () => {
    const nodePorts = [await freePort(), await freePort(), await freePort()];
    for (const [i, port] of nodePorts.entries()) {
      const dataDir = tempDir(`redis-node${i}-data`);
      const launch = renderRedisNode({
        role: i === 0 ? 'master' : 'replica',
        port,
        listenAddr: HOST,
        announceHost: HOST,
        masterHost: HOST,
        masterPort: nodePorts[0],
        maxmemory: '64mb',
        minReplicasToWrite: 1,
        minReplicasMaxLagSeconds: 5,
        dataDir,
        configDir: tempDir(`redis-node${i}-config`),
      });
      launches.push(launch);
      nodes.push({ port, dataDir, script: writeStartScript(launch) });
    }
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const dataDir = tempDir(`redis-sentinel${i}-data`);
      const launch = renderSentinel({
        port,
        listenAddr: HOST,
        announceHost: HOST,
        masterName: MASTER_NAME,
        masterHost: HOST,
        masterPort: nodePorts[0],
        quorum: 2,
        downAfterMs: 3000,
        failoverTimeoutMs: 10_000,
        dataDir,
        configDir: tempDir(`redis-sentinel${i}-config`),
      });
      launches.push(launch);
      sentinels.push({ port, dataDir, script: writeStartScript(launch) });
    }
    for (const member of nodes) await startNode(member);
    for (const member of sentinels) await startSentinel(member);
  });

  afterAll(async () => {
    for (const member of [...sentinels, ...nodes]) await member.process?.stop();
  });

  it('starts the replicas replicating from the master', async () => {
    const [master, ...replicas] = nodes;
    for (const replica of replicas) {
      await eventually(async () => expect(await replicationInfo(replica.port, redisPassword)).toMatchObject({ role: 'slave', master_link_status: 'up' }));
    }
    // min-replicas-to-write counts a replica once its first REPLCONF ACK (sent every second)
    // has arrived, which can be just after its link is up: until then the master says NOREPLICAS.
    await eventually(async () => expect(await node(master.port, 'SET', 'greeting', 'hello')).toBe('OK'));
    expect(await node(master.port, 'WAIT', '2', '5000')).toBe('2');
    for (const replica of replicas) expect(await node(replica.port, 'GET', 'greeting')).toBe('hello');
  }, 30_000);

  it('has all three sentinels agree on the master, with 2 replicas and 2 other sentinels', async () => {
    for (const { port } of sentinels) {
      await eventually(async () => {
        expect(await masterSeenBy(port)).toEqual([HOST, String(nodes[0].port)]);
        const master = pairs(await sentinel(port, 'SENTINEL', 'MASTER', MASTER_NAME));
        expect(master).toMatchObject({ flags: 'master', 'num-slaves': '2', 'num-other-sentinels': '2', quorum: '2' });
      }, 30_000);
    }
  }, 60_000);

  it('requires the password on nodes and sentinels', async () => {
    await expect(redisCli(nodes[0].port, undefined, 'GET', 'greeting')).rejects.toThrow(/^NOAUTH/);
    await expect(redisCli(nodes[0].port, 'wrong', 'GET', 'greeting')).rejects.toThrow(/^NOAUTH .*WRONGPASS/);
    await expect(redisCli(sentinels[0].port, undefined, 'SENTINEL', 'MASTERS')).rejects.toThrow(/^NOAUTH/);
    // Sentinels and nodes have separate passwords.
    await expect(redisCli(sentinels[0].port, redisPassword, 'PING')).rejects.toThrow(/^NOAUTH .*WRONGPASS/);
  });

  it('keeps passwords out of the rendered files and in 0600 live files', () => {
    for (const launch of launches) {
      for (const file of launch.files) {
        expect(file.content).not.toContain(redisPassword);
        expect(file.content).not.toContain(sentinelPassword);
      }
    }
    for (const { dataDir } of nodes) expect(fs.statSync(path.join(dataDir, 'redis.live.conf')).mode & 0o777).toBe(0o600);
    for (const { dataDir } of sentinels) expect(fs.statSync(path.join(dataDir, 'sentinel.live.conf')).mode & 0o777).toBe(0o600);
  });

  it('keeps a failover across restarts of a sentinel and of the old master', async () => {
    const oldMaster = nodes[0];
    await sentinel(sentinels[0].port, 'SENTINEL', 'FAILOVER', MASTER_NAME);
    const newMasterPort = await eventually(async () => {
      const [host, port] = await masterSeenBy(sentinels[0].port);
      expect([host, port]).not.toEqual([HOST, String(oldMaster.port)]);
      return Number(port);
    }, 30_000);
    for (const { port } of sentinels) await eventually(async () => expect(await masterSeenBy(port)).toEqual([HOST, String(newMasterPort)]), 30_000);
    await eventually(async () => expect(await replicationInfo(oldMaster.port, redisPassword)).toMatchObject({ role: 'slave', master_port: String(newMasterPort) }), 30_000);

    // A restarted sentinel starts from its live file, not from the template's first master.
    await sentinels[2].process?.stop();
    await startSentinel(sentinels[2]);
    expect(await masterSeenBy(sentinels[2].port)).toEqual([HOST, String(newMasterPort)]);

    // The old master comes back as a replica: Sentinel rewrote `replicaof` in its live file.
    await oldMaster.process?.stop();
    await startNode(oldMaster);
    const info = await replicationInfo(oldMaster.port, redisPassword);
    expect(info).toMatchObject({ role: 'slave', master_port: String(newMasterPort) });
  }, 60_000);

  it('makes the master refuse writes (NOREPLICAS) once no replica is connected', async () => {
    const masterPort = Number((await masterSeenBy(sentinels[0].port))[1]);
    await eventually(async () => expect(await node(masterPort, 'SET', 'before', 'ok')).toBe('OK'), 30_000);
    for (const member of nodes.filter(({ port }) => port !== masterPort)) await member.process?.stop();
    await eventually(async () => {
      await expect(node(masterPort, 'SET', 'after', 'refused')).rejects.toThrow(/^NOREPLICAS/);
    }, 15_000);
  }, 60_000);
});

/**
 * The Redis start scripts replace the official images' entrypoint, which starts as root and drops
 * to the redis user. Started as root here too, with Debian's real gosu (what the Debian redis
 * images ship; the Alpine ones ship su-exec, which takes the same arguments), each script hands
 * its data directory to the redis user and runs the server as that user. Real redis-server and
 * redis-sentinel 7.0 on 127.0.0.1.
 */
import { spawnSync } from 'child_process';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { renderRedisNode, renderSentinel } from '../../runtime/render/redis';
import { writeStartScript } from '../helpers/launch';
import { freePort, redisCli, ServerProcess, startRedisProcess, tempDir } from '../helpers/servers';

const HOST = '127.0.0.1';

/** The numeric uid of a user, from `id -u`. */
function uidOf(user: string): number {
  const result = spawnSync('id', ['-u', user], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`no ${user} user here (the redis-server package creates it)`);
  return Number(result.stdout.trim());
}

/** Real uid of a running process, from /proc. */
function processUid(pid: number): number {
  const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('Uid:'));
  return Number(line!.split(/\s+/)[1]);
}

/** A master node's launch (the role does not matter to the privilege drop). */
const masterNode = (port: number, dataDir: string, configDir: string) =>
  renderRedisNode({ role: 'master', port, listenAddr: HOST, announceHost: HOST, masterHost: HOST, masterPort: port, maxmemory: '64mb', minReplicasToWrite: 0, dataDir, configDir });

// Like every real-server test (they switch to the postgres user), this one runs as root.
describe('Redis start scripts started as root', () => {
  const password = randomBytes(12).toString('hex');
  const redisUid = uidOf('redis');
  const running: ServerProcess[] = [];

  afterAll(async () => {
    for (const server of running) await server.stop();
  });

  test('a node chowns its data directory to redis, runs redis-server as redis, and serves', async () => {
    const port = await freePort();
    const dataDir = tempDir('redis-root-data');
    fs.writeFileSync(path.join(dataDir, 'dump.rdb.old'), 'left by an earlier server run as root');
    const launch = masterNode(port, dataDir, tempDir('redis-root-config'));
    const script = writeStartScript(launch);
    const server = await startRedisProcess({ script, env: { REDIS_PASSWORD: password } }, port, { asRoot: true });

    expect(fs.readFileSync(`/proc/${server.pid}/comm`, 'utf8').trim()).toBe('redis-server');
    expect(processUid(server.pid)).toBe(redisUid);
    for (const name of ['.', 'dump.rdb.old', 'redis.live.conf']) expect(fs.statSync(path.join(dataDir, name)).uid).toBe(redisUid);
    expect(fs.statSync(path.join(dataDir, 'redis.live.conf')).mode & 0o777).toBe(0o600);
    await redisCli(port, password, 'SET', 'k', 'v');
    expect(await redisCli(port, password, 'GET', 'k')).toBe('v');
    // Writing its snapshot into the data directory needs the directory to be the redis user's.
    expect(await redisCli(port, password, 'SAVE')).toBe('OK');
    expect(fs.statSync(path.join(dataDir, 'dump.rdb')).uid).toBe(redisUid);

    // A restart goes through root again, over files redis now owns, and loads the snapshot.
    await server.stop();
    const restarted = await startRedisProcess({ script, env: { REDIS_PASSWORD: password } }, port, { asRoot: true });
    running.push(restarted);
    expect(processUid(restarted.pid)).toBe(redisUid);
    expect(await redisCli(port, password, 'GET', 'k')).toBe('v');
    expect(fs.statSync(path.join(dataDir, 'redis.live.conf')).mode & 0o777).toBe(0o600);
  });

  test('a sentinel runs as redis and can rewrite its live config', async () => {
    const nodePort = await freePort();
    const node = masterNode(nodePort, tempDir('redis-root-node'), tempDir('redis-root-node-config'));
    running.push(await startRedisProcess({ script: writeStartScript(node), env: { REDIS_PASSWORD: password } }, nodePort, { asRoot: true }));
    const port = await freePort();
    const dataDir = tempDir('sentinel-root-data');
    const launch = renderSentinel({ port, listenAddr: HOST, announceHost: HOST, masterName: 'tenant', masterHost: HOST, masterPort: nodePort, quorum: 1, downAfterMs: 5000, dataDir, configDir: tempDir('sentinel-root-config') });
    const sentinel = await startRedisProcess({ script: writeStartScript(launch), env: { REDIS_PASSWORD: password, SENTINEL_PASSWORD: password } }, port, { asRoot: true });
    running.push(sentinel);

    expect(processUid(sentinel.pid)).toBe(redisUid);
    const live = path.join(dataDir, 'sentinel.live.conf');
    expect(fs.statSync(live).uid).toBe(redisUid);
    // Sentinel rewrites the live file (a temporary file renamed over it, in the data directory):
    // as redis, in a directory redis owns, and still readable by redis alone (it holds both passwords).
    expect(await redisCli(port, password, 'SENTINEL', 'FLUSHCONFIG')).toBe('OK');
    expect(fs.readFileSync(live, 'utf8')).toMatch(/^sentinel myid [0-9a-f]{40}$/m);
    expect(fs.statSync(live).uid).toBe(redisUid);
    expect(fs.statSync(live).mode & 0o777).toBe(0o600);
  });

  test('where root may not chown the data directory (NFS with root_squash) the server runs as root, with a warning', () => {
    // gosu is there (/usr/sbin), chown is refused (a stand-in that fails as on such an export).
    const bin = tempDir('redis-root-nochown');
    fs.writeFileSync(path.join(bin, 'chown'), '#!/bin/sh\necho "chown: changing ownership: Operation not permitted" >&2\nexit 1\n', { mode: 0o755 });
    fs.writeFileSync(path.join(bin, 'redis-server'), '#!/bin/sh\necho "server uid $(id -u)"\n', { mode: 0o755 });
    const dataDir = tempDir('redis-root-nochown-data');
    const launch = masterNode(6399, dataDir, tempDir('redis-root-nochown-config'));
    const result = spawnSync('/bin/sh', [writeStartScript(launch)], { env: { PATH: `${bin}:/usr/sbin:/usr/bin:/bin`, REDIS_PASSWORD: password }, encoding: 'utf8' });
    expect(result.status).toBe(0);
    expect(result.stderr).toContain(`tenantry-start: could not give ${dataDir} to the redis user: the server runs as root`);
    expect(result.stdout.trim()).toBe('server uid 0');
  });

  test('without su-exec or gosu the script says so and runs the server as it is', () => {
    // A stand-in redis-server that reports who runs it; PATH without /usr/sbin, where gosu is.
    const bin = tempDir('redis-root-stub');
    fs.writeFileSync(path.join(bin, 'redis-server'), '#!/bin/sh\necho "server uid $(id -u)"\n', { mode: 0o755 });
    const launch = masterNode(6399, tempDir('redis-root-stub-data'), tempDir('redis-root-stub-config'));
    const result = spawnSync('/bin/sh', [writeStartScript(launch)], { env: { PATH: `${bin}:/usr/bin:/bin`, REDIS_PASSWORD: password }, encoding: 'utf8' });
    expect(result.status).toBe(0);
    expect(result.stderr).toContain('no su-exec or gosu, or no redis user, in this image: the server runs as root');
    expect(result.stdout.trim()).toBe('server uid 0');
  });
});

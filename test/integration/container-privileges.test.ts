/**
 * constructs/container-privileges.ts says which capabilities each container gets back after
 * Docker drops ALL, with no-new-privileges. Here the start paths that can run on this machine run
 * as root the way Docker would start them with exactly that list (util-linux `setpriv
 * --no-new-privs --bounding-set=-all,+…`): the rendered Redis node and Sentinel start scripts
 * with Debian's redis-server 7.0 and gosu, and the backup agent's entrypoint.sh with the real
 * agent. Each must start, drop to its user and serve; with any one listed capability taken away
 * it must fail, so the list is exactly what is needed. The agent also runs with the root file
 * system read-only (a private mount namespace, `unshare -m`, where only its backup volume stays
 * writable), as its container does, and still backs up.
 *
 * Data directories start as Docker makes a fresh bind path: root's, mode 0755.
 */
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { Capability, CONTAINER_PRIVILEGES } from '../../constructs/container-privileges';
import { CONFIG_JSON_ENV } from '../../runtime/agent/config';
import { shQuote } from '../../runtime/render/shell';
import { renderRedisNode, renderSentinel } from '../../runtime/render/redis';
import { QdrantStandIn, startQdrantStandIn } from '../agent/standins';
import { standaloneAgent } from '../agent/compiled';
import { writeStartScript } from '../helpers/launch';
import { signalThenKill, sleep, spawnWatched } from '../helpers/processes';
import { freePort, redisCli, startRedisProcess } from '../helpers/servers';

const HOST = '127.0.0.1';
const REPO = path.resolve(__dirname, '..', '..');

/** setpriv's spelling of a bounding set: everything dropped, then these added back. */
function boundingSet(capabilities: readonly Capability[]): string {
  return ['-all', ...capabilities.map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`)].join(',');
}

/** argv that runs `argv` as root with only `capabilities` and no new privileges, as Docker starts a container's entrypoint. */
function asContainerRoot(capabilities: readonly Capability[], argv: readonly string[]): string[] {
  return ['setpriv', '--no-new-privs', `--bounding-set=${boundingSet(capabilities)}`, '--inh-caps=-all', ...argv];
}

/** The same, in a private mount namespace whose root file system is read-only except `writable`. */
function withReadOnlyRoot(writable: string, argv: readonly string[]): string[] {
  const w = shQuote(writable);
  return ['unshare', '--mount', '/bin/sh', '-c', `set -e; mount --make-rprivate /; mount --bind ${w} ${w}; mount -o remount,bind,ro /; exec "$@"`, 'read-only-root', ...argv];
}

/** A fresh directory as Docker creates a bind path: root:root 0755. */
function freshDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(process.env.TMPDIR || path.join(REPO, '.tmp'), `${prefix}-`));
  fs.chmodSync(dir, 0o755);
  made.push(dir);
  return dir;
}
const made: string[] = [];

function uidOf(user: string): number {
  const result = spawnSync('id', ['-u', user], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`no ${user} user here: run bash test/install-servers.sh (as root) to create it`);
  return Number(result.stdout.trim());
}

/** Uid, effective capabilities and the no_new_privs flag of a running process. */
function processStatus(pid: number): { uid: number; capEff: string; noNewPrivs: string } {
  const lines = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n');
  const field = (name: string) => lines.find((l) => l.startsWith(`${name}:`))!.split(/\s+/)[1];
  return { uid: Number(field('Uid')), capEff: field('CapEff'), noNewPrivs: field('NoNewPrivs') };
}

/** Each list without one of its members: the ways the list could be "too generous". */
function withoutOne(capabilities: readonly Capability[]): [Capability, Capability[]][] {
  return capabilities.map((c) => [c, capabilities.filter((x) => x !== c)]);
}

afterAll(() => {
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
});

describe.each([
  ['redis', 'node'] as const,
  ['sentinel', 'sentinel'] as const,
])('%s container: the rendered start script as root with exactly its capabilities', (service, kind) => {
  const capabilities = CONTAINER_PRIVILEGES[service].capabilities;
  const password = 'p4ss-word';
  const env = { REDIS_PASSWORD: password, SENTINEL_PASSWORD: password };
  const redisUid = uidOf('redis');

  /** A launch of this kind on `port` over `dataDir`, wrapped so that it runs with `caps`. */
  function wrapper(caps: readonly Capability[], port: number, dataDir: string): string {
    const configDir = freshDir(`${kind}-config`);
    const launch =
      kind === 'node'
        ? renderRedisNode({ role: 'master', port, listenAddr: HOST, announceHost: HOST, masterHost: HOST, masterPort: port, maxmemory: '64mb', minReplicasToWrite: 0, dataDir, configDir })
        : // Sentinel starts and serves without its master (an unused port here).
          renderSentinel({ port, listenAddr: HOST, announceHost: HOST, masterName: 'tenant', masterHost: HOST, masterPort: 1, quorum: 1, downAfterMs: 5000, dataDir, configDir });
    const script = writeStartScript(launch);
    const file = path.join(configDir, 'as-container-root.sh');
    fs.writeFileSync(file, `#!/bin/sh\nexec ${asContainerRoot(caps, ['/bin/sh', script]).map(shQuote).join(' ')}\n`, { mode: 0o755 });
    return file;
  }

  /** Starts, and says whether it served as redis; stops it again. */
  async function start(caps: readonly Capability[], dataDir: string): Promise<'serves as redis' | string> {
    const port = await freePort();
    let server;
    try {
      server = await startRedisProcess({ script: wrapper(caps, port, dataDir), env }, port, { asRoot: true });
    } catch (error) {
      return `did not start: ${(error as Error).message.split('\n')[0]}`;
    }
    try {
      const status = processStatus(server.pid);
      if (status.uid !== redisUid) return `runs as uid ${status.uid}`;
      expect(status).toEqual({ uid: redisUid, capEff: '0000000000000000', noNewPrivs: '1' });
      expect(await redisCli(port, password, 'PING')).toBe('PONG');
      return 'serves as redis';
    } finally {
      await server.stop();
    }
  }

  test(`starts on a fresh data directory and again on its own (${capabilities.join(', ')})`, async () => {
    const dataDir = freshDir(`${kind}-data`);
    expect(await start(capabilities, dataDir)).toBe('serves as redis');
    // The second start finds the live config and the directory owned by redis (0600, 0755).
    expect(await start(capabilities, dataDir)).toBe('serves as redis');
  });

  test.each(withoutOne(capabilities))('without %s it fails on a fresh data directory or on the restart', async (_missing, caps) => {
    const fresh = await start(caps, freshDir(`${kind}-data`));
    const restarted = freshDir(`${kind}-data`);
    expect(await start(capabilities, restarted)).toBe('serves as redis');
    const again = await start(caps, restarted);
    expect([fresh, again]).not.toEqual(['serves as redis', 'serves as redis']);
  });
});

describe('backup container: entrypoint.sh and the agent as root with exactly its capabilities and a read-only root', () => {
  const capabilities = CONTAINER_PRIVILEGES.backup.capabilities;
  const tenantryUid = uidOf('tenantry');
  let qdrant: QdrantStandIn;
  const bin = freshDir('agent-bin');

  beforeAll(async () => {
    qdrant = await startQdrantStandIn({ apiKey: 'k', collections: { docs: 1000 } });
    // The image's su-exec takes the same arguments as gosu (user:group command…), which Debian has.
    fs.symlinkSync('/usr/sbin/gosu', path.join(bin, 'su-exec'));
    // The image links tenantry-agent to the compiled CLI; here the same CLI, transpiled with its
    // packages into a directory the tenantry user can reach whatever the checkout's permissions.
    const agent = [process.execPath, standaloneAgent(freshDir('agent-js'))].map(shQuote).join(' ');
    fs.writeFileSync(path.join(bin, 'tenantry-agent'), `#!/bin/sh\nexec ${agent} "$@"\n`, { mode: 0o755 });
  });

  afterAll(async () => {
    await qdrant.close();
  });

  function agentEnv(backups: string, port: number): NodeJS.ProcessEnv {
    const config = {
      tenant: 'acme',
      environment: 'test',
      timeZone: 'UTC',
      backupDir: backups,
      http: { port, host: HOST },
      jobs: [{ name: 'vectors', kind: 'qdrant', schedule: '@daily', retention: { daily: 7, weekly: 0, monthly: 0 }, offsite: false, qdrant: { url: qdrant.url, apiKeyEnv: 'QDRANT_API_KEY' } }],
    };
    return { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`, TENANTRY_BACKUP_DIR: backups, [CONFIG_JSON_ENV]: JSON.stringify(config), QDRANT_API_KEY: 'k' };
  }

  const entrypoint = (caps: readonly Capability[], backups: string, ...args: string[]) =>
    withReadOnlyRoot(backups, asContainerRoot(caps, ['/bin/sh', path.join(REPO, 'runtime/agent/entrypoint.sh'), ...args]));

  /** Asynchronously: the Qdrant stand-in answers from this process's event loop. */
  function run(argv: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stderr: string }> {
    const [file, ...args] = argv;
    return new Promise((resolve, reject) => {
      const child = spawn(file, args, { env, cwd: '/', stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.once('error', reject);
      child.once('close', (status) => resolve({ status, stderr }));
    });
  }

  test('serve: drops to tenantry with no capability left, answers /health; run: backs up into /backups', async () => {
    const backups = freshDir('agent-backups');
    const port = await freePort();
    const env = agentEnv(backups, port);
    const served = await spawnWatched('agent serve', entrypoint(capabilities, backups, 'serve'), { env, cwd: '/' });
    try {
      const health = await waitForHealth(port, served.exited, served.logTail);
      expect(health).toBe(200);
      expect(processStatus(served.pid)).toEqual({ uid: tenantryUid, capEff: '0000000000000000', noNewPrivs: '1' });
    } finally {
      await signalThenKill(served.pid, 'SIGTERM');
    }
    expect(fs.statSync(backups).uid).toBe(tenantryUid);

    const result = await run(entrypoint(capabilities, backups, 'run', 'vectors'), env);
    expect({ status: result.status, stderr: result.status === 0 ? '' : result.stderr }).toEqual({ status: 0, stderr: '' });
    const [backup] = fs.readdirSync(path.join(backups, 'vectors')).filter((name) => !name.startsWith('.'));
    expect(fs.existsSync(path.join(backups, 'vectors', backup, 'manifest.json'))).toBe(true);
    expect(fs.statSync(path.join(backups, 'vectors', backup)).uid).toBe(tenantryUid);
  });

  test('docker exec runs as root with the same capabilities: it cannot write the backups, `docker exec -u tenantry` can', async () => {
    const backups = freshDir('agent-backups');
    const env = agentEnv(backups, await freePort());
    expect((await run(entrypoint(capabilities, backups, 'run', 'vectors'), env)).status).toBe(0);
    const backupsNow = () => fs.readdirSync(path.join(backups, 'vectors')).filter((name) => !name.startsWith('.'));
    const [first] = backupsNow();

    const asRoot = await run(withReadOnlyRoot(backups, asContainerRoot(capabilities, ['tenantry-agent', 'run', 'vectors'])), env);
    expect(asRoot.status).not.toBe(0);
    expect(asRoot.stderr).toMatch(/EACCES|permission denied/i);
    const asTenantry = await run(
      withReadOnlyRoot(backups, asContainerRoot(capabilities, ['setpriv', `--reuid=${tenantryUid}`, `--regid=${tenantryUid}`, '--clear-groups', 'tenantry-agent', 'run', 'vectors'])),
      env,
    );
    expect({ status: asTenantry.status, stderr: asTenantry.status === 0 ? '' : asTenantry.stderr }).toEqual({ status: 0, stderr: '' });
    // A new backup beside the first (retention keeps every manual run of the daily window).
    expect(backupsNow()).toHaveLength(2);
    expect(backupsNow().filter((id) => id > first)).toHaveLength(1);
  });

  test('the root file system really is read-only there: nothing outside the backup volume can be written', async () => {
    const backups = freshDir('agent-backups');
    const probe = path.join(path.dirname(backups), `probe-${process.pid}`);
    const result = await run(withReadOnlyRoot(backups, asContainerRoot(capabilities, ['/bin/sh', '-c', `touch ${shQuote(probe)} && touch ${shQuote(backups)}/ok`])), {});
    expect(result.stderr).toContain('Read-only file system');
    expect(result.status).not.toBe(0);
    expect(fs.existsSync(probe)).toBe(false);
  });

  test.each(withoutOne(capabilities))('without %s the entrypoint fails and nothing is backed up', async (_missing, caps) => {
    const backups = freshDir('agent-backups');
    const result = await run(entrypoint(caps, backups, 'run', 'vectors'), agentEnv(backups, await freePort()));
    expect(result.status).not.toBe(0);
    // chown's "Operation not permitted", or su-exec's "failed switching to …: operation not permitted".
    expect(result.stderr).toMatch(/operation not permitted/i);
    expect(fs.readdirSync(backups)).toEqual([]);
  });
});

/** Polls the agent's /health until it answers (its status code) or the process has exited. */
async function waitForHealth(port: number, exited: () => string | undefined, logTail: () => string): Promise<number> {
  for (let i = 0; i < 600; i++) {
    const status = await new Promise<number | undefined>((resolve) => {
      const request = http.get({ host: HOST, port, path: '/health', timeout: 1000 }, (response) => {
        response.resume();
        resolve(response.statusCode);
      });
      request.on('error', () => resolve(undefined));
      request.on('timeout', () => request.destroy());
    });
    if (status !== undefined) return status;
    const exit = exited();
    if (exit) throw new Error(`the agent exited before answering /health: ${exit}\n${logTail()}`);
    await sleep(100);
  }
  throw new Error('the agent did not answer /health within 60 s');
}

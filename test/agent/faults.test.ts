/**
 * Faults an operator meets, with real processes and servers (Debian's PostgreSQL 15 and
 * redis-server/redis-sentinel 7.0; the Qdrant stand-in where a fast job is enough):
 * SIGTERM and SIGKILL of the agent at seeded random moments of a run, and a backup disk that
 * is full at start-up or fills during a run. Afterwards: no process of the run is left, nothing
 * partial was promoted, every backup `list` calls good still matches its checksums, the backup
 * taken before the faults restores, and SIGTERM / a full disk reach the webhook, the metrics and
 * /health. The seed is printed; FAULT_SEED=<seed> repeats a run's kill points.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { AgentConfig, RESTORE_CREDENTIAL_ENV } from '../../runtime/agent/config';
import { sha256File } from '../../runtime/agent/durable';
import { startHttpServer } from '../../runtime/agent/http';
import { runBackup } from '../../runtime/agent/runner';
import { BackupStore } from '../../runtime/agent/store';
import { fieldsOf, RedisConnection, RedisReply, textOf } from '../../runtime/agent/redis-connection';
import { freePort, PostgresServer, ServerProcess, startPostgres, startRedisProcess, tempDir, withDatabase } from '../helpers/servers';
import { endOf, startCompiledAgent } from './compiled';
import { cli, httpGet, postgresJob, testAgent, waitFor, writeConfig } from './harness';
import { QdrantStandIn, startQdrantStandIn } from './standins';

const SEED = Number(process.env.FAULT_SEED ?? Math.floor(Math.random() * 2 ** 31));
process.stdout.write(`faults.test.ts: seed ${SEED} (FAULT_SEED=${SEED} repeats these kill points)\n`);

/** Kill points per job: half SIGTERM, half SIGKILL, alternating. */
const POINTS = 20;

/** mulberry32: a small seeded generator, enough to spread kill points. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Live processes whose command line or working directory points into one of `marks`. */
function processesInto(marks: string[]): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    if (Number(pid) === process.pid) continue;
    let cmd = '';
    let cwd = '';
    try {
      cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
      cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      // Gone meanwhile, or a zombie without a cwd.
    }
    if (cmd !== '' && marks.some((mark) => cmd.includes(mark) || cwd.startsWith(mark))) found.push(`${pid}: ${cmd.slice(0, 200)}`);
  }
  return found;
}

/**
 * The watchdog acts within milliseconds of the agent's death; 1 s is for a loaded machine, and
 * short enough that an orphaned pg_dump (a run takes seconds) would still be seen.
 */
async function expectNoProcessesInto(marks: string[], context: string): Promise<void> {
  const deadline = Date.now() + 1000;
  let left = processesInto(marks);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(50);
    left = processesInto(marks);
  }
  if (left.length > 0) throw new Error(`${context}: processes outlived the agent:\n${left.join('\n')}`);
}

interface Webhook {
  url: string;
  notices: string[];
  close(): Promise<void>;
}

async function startWebhook(): Promise<Webhook> {
  const notices: string[] = [];
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      notices.push((JSON.parse(body) as { text: string }).text);
      response.end('ok');
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${port}/hook`, notices, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** Every backup listed as good still has the files and sha256 its manifest recorded. */
async function expectGoodBackupsIntact(store: BackupStore): Promise<number> {
  let good = 0;
  for (const entry of await store.list()) {
    if (entry.state !== 'ok' || entry.manifest === undefined) continue;
    good++;
    for (const file of entry.manifest.files) {
      expect(`${entry.id}/${file.path} ${await sha256File(path.join(store.backupDir(entry.id), file.path)).catch(() => 'missing')}`).toBe(`${entry.id}/${file.path} ${file.sha256}`);
    }
  }
  return good;
}

interface KillLoopSetup {
  config: AgentConfig;
  configPath: string;
  env: NodeJS.ProcessEnv;
  webhook: Webhook;
  /** Where the job's tools point (the backup folder, a port): no process may point there afterwards. */
  marks: string[];
}

/**
 * Runs `run <job>` POINTS times, each stopped by SIGTERM or SIGKILL at a random moment between
 * "backup started" and 1.1 x the duration of an undisturbed run, and checks what each left.
 */
async function killLoop(setup: KillLoopSetup, seed: number): Promise<{ id: string; outcomes: string[] }> {
  const job = setup.config.jobs[0].name;
  const store = new BackupStore(setup.config.backupDir, job);
  const args = ['run', job, '--config', setup.configPath];
  const env = { ...setup.env, WEBHOOK_URL: setup.webhook.url };

  // The backup that must survive every fault, and the length of an undisturbed run: the shorter
  // of two, as a first run can be slow (a replica's first full sync, cold caches).
  const durations: number[] = [];
  for (let run = 0; run < 2; run++) {
    const undisturbed = startCompiledAgent(args, env);
    await waitFor('an undisturbed run to start', () => (undisturbed.output().stderr.includes('"msg":"backup started"') ? true : undefined), 60_000, 10);
    const started = Date.now();
    expect(await endOf(undisturbed)).toEqual({ code: 0, signal: null });
    durations.push(Date.now() - started);
  }
  const undisturbedMs = Math.min(...durations);
  const [survivor] = (await store.list()).filter((e) => e.state === 'ok');

  const next = random(seed);
  const outcomes: string[] = [];
  for (let point = 0; point < POINTS; point++) {
    const signal: NodeJS.Signals = point % 2 === 0 ? 'SIGTERM' : 'SIGKILL';
    const delay = Math.floor(next() * undisturbedMs * 1.1);
    const before = new Set((await store.list()).map((e) => e.id));
    const notices = setup.webhook.notices.length;
    const agent = startCompiledAgent(args, env);
    await waitFor('the run to start', () => (agent.output().stderr.includes('"msg":"backup started"') ? true : undefined), 60_000, 5);
    await sleep(delay);
    agent.kill(signal);
    const end = await endOf(agent);
    const context = `${job} point ${point}: ${signal} ${delay} ms after the start (seed ${seed})`;
    await expectNoProcessesInto(setup.marks, context);

    const fresh = (await store.list()).filter((e) => !before.has(e.id));
    const outcome = fresh.map((e) => e.state).join('+') || 'nothing';
    outcomes.push(`${signal}@${delay}ms:${outcome}`);
    if (signal === 'SIGTERM') {
      // 143: stopped in order; 0: the run had finished before the signal came.
      expect({ context, code: end.code }).toEqual({ context, code: end.code === 0 ? 0 : 143 });
      expect({ context, partial: fs.readdirSync(store.dir).filter((name) => name.endsWith('.partial')) }).toEqual({ context, partial: [] });
      expect({ context, states: fresh.map((e) => e.state) }).toEqual({ context, states: [expect.stringMatching(/^(ok|failed)$/)] });
      if (fresh[0].state === 'failed') {
        expect(fresh[0].problem).toMatch(/^interrupted: the agent received SIGTERM and stopped the run/);
        const sent = await waitFor('the webhook', () => (setup.webhook.notices.length > notices ? setup.webhook.notices.slice(notices) : undefined), 5000, 20);
        expect(sent).toEqual([expect.stringMatching(new RegExp(`^\\[tenantry test/acme\\] backup ${job} failed: interrupted: the agent received SIGTERM`))]);
      }
    } else {
      // Killed, or finished before the signal came.
      expect({ context, end }).toEqual({ context, end: end.code === 0 ? { code: 0, signal: null } : { code: null, signal: 'SIGKILL' } });
      // Killed outright: at most its partial folder, which the next run removes; never a good backup unless it finished.
      for (const e of fresh) expect({ context, state: e.state }).toEqual({ context, state: expect.stringMatching(/^(ok|interrupted)$/) });
    }
    await expectGoodBackupsIntact(store);
  }

  // The next undisturbed run cleans up and succeeds; nothing interrupted is left listed.
  const last = startCompiledAgent(args, env);
  expect(await endOf(last)).toEqual({ code: 0, signal: null });
  expect((await store.list()).filter((e) => e.state === 'interrupted' || e.state === 'running')).toEqual([]);
  expect(await expectGoodBackupsIntact(store)).toBeGreaterThanOrEqual(2);
  const interrupted = outcomes.filter((o) => o.startsWith('SIGTERM') && o.endsWith(':failed')).length;
  const killed = outcomes.filter((o) => o.startsWith('SIGKILL') && !o.endsWith(':ok')).length;
  process.stdout.write(`${job}: undisturbed run ${undisturbedMs} ms; ${interrupted} of ${POINTS / 2} SIGTERMs and ${killed} of ${POINTS / 2} SIGKILLs interrupted a run\n  ${outcomes.join('\n  ')}\n`);
  // Most points fall inside the run; a loop that never interrupts anything proves nothing.
  expect(interrupted).toBeGreaterThanOrEqual(3);
  expect(killed).toBeGreaterThanOrEqual(3);
  expect(survivor).toBeDefined();
  return { id: survivor.id, outcomes };
}

const PG_TABLES = ['big', 'small'];

function pgFingerprint(server: PostgresServer, database: string): Promise<string[]> {
  return withDatabase(server, database, async (db) => {
    const out: string[] = [];
    for (const table of PG_TABLES) {
      const { rows } = await db.query(`SELECT count(*) AS n, md5(string_agg(t::text, '|' ORDER BY t.id)) AS sum FROM ${table} t`);
      out.push(`${table} ${rows[0].n} ${rows[0].sum}`);
    }
    return out;
  });
}

/** The Postgres job the faults run on `server`'s database `app` (chunks from 1 MB, two workers, dailies only). */
const pgJob = (server: PostgresServer) => postgresJob(server, ['app'], 1, { daily: 7, weekly: 0, monthly: 0 });

/**
 * Database `app` with `big` (about 90 MB, so that a run takes about 2 s), copied in chunks by
 * psql|zstd pairs, and `small`, which goes through pg_dump's workers; returns its fingerprint.
 */
async function createApp(server: PostgresServer): Promise<string[]> {
  await withDatabase(server, 'postgres', (db) => db.query('CREATE DATABASE app'));
  await withDatabase(server, 'app', (db) =>
    db.query(`
      CREATE TABLE big (id int PRIMARY KEY, payload text);
      INSERT INTO big SELECT i, md5(i::text) || repeat('x', 150) FROM generate_series(1, 500000) i;
      CREATE TABLE small (id int PRIMARY KEY, note text);
      INSERT INTO small SELECT i, 'note ' || i FROM generate_series(1, 20000) i;`),
  );
  return pgFingerprint(server, 'app');
}

describe(`agent under SIGTERM and SIGKILL at seeded random moments (seed ${SEED})`, () => {
  let webhook: Webhook;

  beforeAll(async () => {
    webhook = await startWebhook();
  });

  afterAll(async () => {
    await webhook.close();
  });

  test('Postgres (pg_dump -j 2 and psql|zstd chunk copies): no tool outlives the agent, nothing partial is good, the earlier backup restores', async () => {
    const server = await startPostgres();
    try {
      const original = await createApp(server);
      const { config, path: configPath } = writeConfig({
        webhook: { urlEnv: 'WEBHOOK_URL' },
        jobs: [pgJob(server)],
      });
      const env = { PG_PASSWORD: server.password };
      const { id } = await killLoop({ config, configPath, env, webhook, marks: [config.backupDir] }, SEED);

      // The restore's superuser is passed for that one command, as an operator would (docker exec -e).
      const operator = { ...env, [RESTORE_CREDENTIAL_ENV.userEnv]: 'postgres', [RESTORE_CREDENTIAL_ENV.passwordEnv]: server.password };
      const restored = await cli(['restore', 'pg', '--from', id, '--target', 'app_survivor', '--config', configPath], operator);
      expect(restored.stderr.split('\n').filter((line) => line.startsWith('tenantry-agent:'))).toEqual([]);
      expect(restored.code).toBe(0);
      expect(await pgFingerprint(server, 'app_survivor')).toEqual(original);
    } finally {
      await server.stop();
    }
  }, 240_000);

  test('Postgres server crashing mid-dump: the run fails and says so, nothing partial is left, the earlier backup restores onto a new server', async () => {
    const server = await startPostgres();
    let replacement: PostgresServer | undefined;
    try {
      const original = await createApp(server);
      const { config, path: configPath } = writeConfig({ webhook: { urlEnv: 'WEBHOOK_URL' }, jobs: [pgJob(server)] });
      const store = new BackupStore(config.backupDir, 'pg');
      const env = { PG_PASSWORD: server.password, WEBHOOK_URL: webhook.url };
      const first = await cli(['run', 'pg', '--config', configPath], env);
      expect(first.code).toBe(0);
      const [survivor] = (await store.list()).filter((e) => e.state === 'ok');

      // The server crashes (an immediate shutdown, as after a kill -9 of its backends) while the dump runs.
      const notices = webhook.notices.length;
      const agent = startCompiledAgent(['run', 'pg', '--config', configPath], env);
      await waitFor('the dump to start', () => (agent.output().stderr.includes('"msg":"backup started"') ? true : undefined), 60_000, 5);
      await sleep(300);
      server.kill('SIGQUIT');
      const end = await endOf(agent);
      expect(end).toEqual({ code: 1, signal: null });
      await expectNoProcessesInto([config.backupDir], 'after the server crashed');
      expect(fs.readdirSync(store.dir).filter((name) => name.endsWith('.partial'))).toEqual([]);
      const fresh = (await store.list()).filter((e) => e.id !== survivor.id);
      expect(fresh.map((e) => e.state)).toEqual(['failed']);
      const sent = await waitFor('the webhook', () => (webhook.notices.length > notices ? webhook.notices.slice(notices) : undefined), 5000, 20);
      expect(sent).toEqual([expect.stringMatching(/^\[tenantry test\/acme\] backup pg failed: /)]);
      expect(await expectGoodBackupsIntact(store)).toBe(1);

      // The backup taken before the crash restores onto a new server (same backups, the new address).
      replacement = await startPostgres();
      const moved = writeConfig({ backupDir: config.backupDir, jobs: [pgJob(replacement)] });
      const operator = { PG_PASSWORD: replacement.password, [RESTORE_CREDENTIAL_ENV.userEnv]: 'postgres', [RESTORE_CREDENTIAL_ENV.passwordEnv]: replacement.password };
      const restored = await cli(['restore', 'pg', '--from', survivor.id, '--config', moved.path], operator);
      expect(restored.stderr.split('\n').filter((line) => line.startsWith('tenantry-agent:'))).toEqual([]);
      expect(restored.code).toBe(0);
      expect(await pgFingerprint(replacement, 'app')).toEqual(original);
    } finally {
      await server.stop().catch(() => undefined);
      await replacement?.stop();
    }
  }, 240_000);

  test('Redis (redis-cli --rdb from the replica): no tool outlives the agent, nothing partial is good, the earlier backup restores', async () => {
    const password = 'fault-redis-pw';
    const dir = tempDir('faults-redis');
    const servers: ServerProcess[] = [];
    const redisConf = (name: string, port: number, extra: string[]) => {
      const file = path.join(dir, `${name}.conf`);
      fs.writeFileSync(file, [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `dbfilename ${name}.rdb`, 'save ""', 'appendonly no', `requirepass ${password}`, `masterauth ${password}`, ...extra].join('\n'));
      const { uid, gid } = fs.statSync(dir);
      fs.chownSync(file, uid, gid);
      return file;
    };
    try {
      const masterPort = await freePort();
      servers.push(await startRedisProcess(['redis-server', redisConf('master', masterPort, [])], masterPort));
      const replicaPort = await freePort();
      // Redis waits repl-diskless-sync-delay (5 s) for more replicas before it sends an RDB: 20 runs need none.
      servers.push(await startRedisProcess(['redis-server', redisConf('replica', replicaPort, [`replicaof 127.0.0.1 ${masterPort}`, 'repl-diskless-sync-delay 0'])], replicaPort));
      const sentinelPort = await freePort();
      const sentinelConf = path.join(dir, 'sentinel.conf');
      fs.writeFileSync(sentinelConf, [`port ${sentinelPort}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor faults 127.0.0.1 ${masterPort} 1`, `sentinel auth-pass faults ${password}`].join('\n'));
      fs.chownSync(sentinelConf, fs.statSync(dir).uid, fs.statSync(dir).gid);
      servers.push(await startRedisProcess(['redis-sentinel', sentinelConf], sentinelPort));

      const master = await RedisConnection.open({ host: '127.0.0.1', port: masterPort }, password);
      let keys: number;
      try {
        // About 12 MB of RDB: kill points fall inside the transfer and the check, and 20 runs stay short.
        await master.command('EVAL', "for i = 1, 60000 do redis.call('SET', 'key:' .. i, string.rep(string.format('%08d', i), 25)) end return 1", '0');
        await master.command('WAIT', '1', '20000');
        keys = Number(await master.command('DBSIZE'));
      } finally {
        master.close();
      }
      await waitFor('the sentinel to see a healthy replica', async () => {
        const sentinel = await RedisConnection.open({ host: '127.0.0.1', port: sentinelPort }, undefined);
        try {
          const replicas = (await sentinel.command('SENTINEL', 'REPLICAS', 'faults')) as RedisReply[];
          return replicas.map(fieldsOf).some((r) => r.port === String(replicaPort) && r['master-link-status'] === 'ok') ? true : undefined;
        } finally {
          sentinel.close();
        }
      }, 30_000, 250);

      const { config, path: configPath } = writeConfig({
        webhook: { urlEnv: 'WEBHOOK_URL' },
        jobs: [{
          name: 'cache',
          kind: 'redis',
          schedule: '@hourly',
          retention: { daily: 7, weekly: 0, monthly: 0 },
          offsite: false,
          redis: { sentinels: [`127.0.0.1:${sentinelPort}`], masterName: 'faults', passwordEnv: 'REDIS_PASSWORD' },
        }],
      });
      const env = { REDIS_PASSWORD: password };
      const { id } = await killLoop({ config, configPath, env, webhook, marks: [config.backupDir] }, SEED + 1);

      const targetPort = await freePort();
      servers.push(await startRedisProcess(['redis-server', redisConf('target', targetPort, [])], targetPort));
      const restored = await cli(['restore', 'cache', '--from', id, '--target', `127.0.0.1:${targetPort}`, '--config', configPath], env);
      expect(restored.stderr.split('\n').filter((line) => line.startsWith('tenantry-agent:'))).toEqual([]);
      expect(restored.code).toBe(0);
      const target = await RedisConnection.open({ host: '127.0.0.1', port: targetPort }, password);
      try {
        expect(Number(await target.command('DBSIZE'))).toBe(keys);
        expect(textOf(await target.command('GET', 'key:54321'))).toBe('00054321'.repeat(25));
      } finally {
        target.close();
      }
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  }, 240_000);
  test('Qdrant (stand-in following its snapshot API; no Qdrant can run here): the HTTP transfers stop, nothing partial is good', async () => {
    const qdrant = await startQdrantStandIn({ apiKey: 'k', collections: { docs: 4 * 1024 * 1024, notes: 4 * 1024 * 1024 } });
    // Holds each snapshot creation open, as a large collection does, so kill points fall inside a run.
    qdrant.snapshotDelayMs = 300;
    try {
      const { config, path: configPath } = writeConfig({
        webhook: { urlEnv: 'WEBHOOK_URL' },
        jobs: [{ name: 'vectors', kind: 'qdrant', schedule: '0 3 * * *', retention: { daily: 7, weekly: 0, monthly: 0 }, offsite: false, qdrant: { url: qdrant.url, apiKeyEnv: 'QDRANT_API_KEY' } }],
      });
      await killLoop({ config, configPath, env: { QDRANT_API_KEY: 'k' }, webhook, marks: [config.backupDir] }, SEED + 2);
    } finally {
      await qdrant.close();
    }
  }, 120_000);
});

describe('a full backup disk (a small tmpfs mounted under TMPDIR; needs root)', () => {
  let qdrant: QdrantStandIn;
  let mount: string;

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('these tests mount a tmpfs and need root: run them as root (the test machine runs as root)');
    mount = tempDir('full-disk');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mount]);
    // 1 MiB does not fit into the 256 KiB disk: the download fills it half-way.
    qdrant = await startQdrantStandIn({ apiKey: 'k', collections: { docs: 1024 * 1024 } });
  });

  afterAll(async () => {
    await qdrant?.close();
    if (mount) execFileSync('umount', [mount]);
  });

  const job = (url: string) => ({ name: 'vectors', kind: 'qdrant' as const, schedule: '0 3 * * *', retention: { daily: 7, weekly: 0, monthly: 0 }, offsite: false, qdrant: { url, apiKeyEnv: 'QDRANT_API_KEY' } });

  test('a disk that fills during a scheduled run: the run fails cleanly, and the failure reaches the metrics, /health and the webhook', async () => {
    const { config } = writeConfig({ backupDir: path.join(mount, 'run'), jobs: [job(qdrant.url)] });
    const { agent, notices } = testAgent(config, { QDRANT_API_KEY: 'k' });
    const port = await freePort();
    const server = await startHttpServer(agent.state, agent.log, '127.0.0.1', port);
    try {
      // runBackup is what serve's scheduler runs for every occurrence.
      const manifest = await runBackup(agent, config.jobs[0]);
      expect(manifest.status).toBe('failed');
      expect(manifest.error).toMatch(/ENOSPC|no space left/i);
      const entries = fs.readdirSync(path.join(config.backupDir, 'vectors'));
      expect(entries.filter((name) => name.endsWith('.partial') || name.includes('.tmp-'))).toEqual([]);
      expect((await new BackupStore(config.backupDir, 'vectors').list()).map((e) => e.state)).toEqual(['failed']);
      expect(notices).toEqual([expect.stringMatching(/^backup vectors failed: .*(ENOSPC|no space left)/i)]);

      const health = await httpGet(port, '/health');
      expect(health.status).toBe(503);
      expect(JSON.parse(health.body).jobs[0]).toMatchObject({ healthy: false, reason: expect.stringMatching(/^last run failed at .*(ENOSPC|no space left)/i) });
      expect((await httpGet(port, '/metrics')).body).toContain('tenantry_backup_failures_total{tenant="acme",environment="test",job="vectors",kind="qdrant"} 1\n');
    } finally {
      await new Promise((resolve) => server.close(resolve));
      fs.rmSync(config.backupDir, { recursive: true, force: true });
    }
  });

  test('serve on a full disk starts, stays up and reports it; no empty lock file is left', async () => {
    const backupDir = path.join(mount, 'serve');
    fs.mkdirSync(path.join(backupDir, 'vectors'), { recursive: true });
    const filler = path.join(mount, 'filler');
    try {
      execFileSync('sh', ['-c', `cat /dev/zero > "${filler}" 2>/dev/null || true`]);
      const hook = await startWebhook();
      const port = await freePort();
      const { path: configPath } = writeConfig({ backupDir, http: { port, host: '127.0.0.1' }, webhook: { urlEnv: 'WEBHOOK_URL' }, jobs: [job(qdrant.url)] });
      const agent = startCompiledAgent(['serve', '--config', configPath], { QDRANT_API_KEY: 'k', WEBHOOK_URL: hook.url });
      try {
        const health = await waitFor('/health', async () => (await httpGet(port, '/health').catch(() => undefined)), 30_000, 100);
        expect(health.status).toBe(503);
        expect(JSON.parse(health.body).jobs[0]).toMatchObject({ healthy: false, reason: expect.stringMatching(/^last run failed at .*: the backup folder is not usable \(scheduled runs will try again\): ENOSPC/) });
        expect((await httpGet(port, '/metrics')).body).toContain('tenantry_backup_failures_total{tenant="acme",environment="test",job="vectors",kind="qdrant"} 1\n');
        expect(await waitFor('the webhook', () => (hook.notices.length ? hook.notices : undefined), 5000, 20)).toEqual([
          expect.stringMatching(/^\[tenantry test\/acme\] backup vectors failed: the backup folder is not usable \(scheduled runs will try again\): ENOSPC/),
        ]);
        expect(agent.exitCode).toBeNull();
        expect(fs.readdirSync(path.join(backupDir, 'vectors'))).toEqual([]);
      } finally {
        agent.kill('SIGTERM');
        expect(await endOf(agent)).toEqual({ code: 0, signal: null });
        await hook.close();
      }
    } finally {
      fs.rmSync(filler, { force: true });
    }
  });
});

describe('serve stopped during a scheduled run (in process, Qdrant stand-in)', () => {
  test('the run is recorded as interrupted, counted in the metrics and sent to the webhook; nothing partial stays', async () => {
    const qdrant = await startQdrantStandIn({ apiKey: 'k', collections: { docs: 10_000 } });
    qdrant.snapshotDelayMs = 5000;
    const stop = new AbortController();
    try {
      const { config } = writeConfig({ jobs: [{ name: 'vectors', kind: 'qdrant', schedule: '0 3 * * *', retention: { daily: 7, weekly: 0, monthly: 0 }, offsite: false, qdrant: { url: qdrant.url, apiKeyEnv: 'QDRANT_API_KEY' } }] });
      const { agent, notices } = testAgent(config, { QDRANT_API_KEY: 'k' }, { signal: stop.signal });
      // What serve's shutdown does: abort the agent's signal while the scheduler's run is in flight.
      const run = runBackup(agent, config.jobs[0]);
      await waitFor('the snapshot request', () => (qdrant.requests.some((r) => r.route.startsWith('POST')) ? true : undefined), 10_000, 10);
      stop.abort('SIGTERM');
      const manifest = await run;
      expect(manifest).toMatchObject({ status: 'failed', error: expect.stringMatching(/^interrupted: the agent received SIGTERM and stopped the run/) });
      expect(fs.readdirSync(path.join(config.backupDir, 'vectors')).filter((name) => name.endsWith('.partial'))).toEqual([]);
      expect(notices).toEqual([expect.stringMatching(/^backup vectors failed: interrupted: the agent received SIGTERM/)]);
      const port = await freePort();
      const server = await startHttpServer(agent.state, agent.log, '127.0.0.1', port);
      try {
        expect((await httpGet(port, '/metrics')).body).toContain('tenantry_backup_failures_total{tenant="acme",environment="test",job="vectors",kind="qdrant"} 1\n');
        expect((await httpGet(port, '/health')).status).toBe(503);
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    } finally {
      await qdrant.close();
    }
  });
});

describe('a damaged manifest (Qdrant stand-in following its snapshot API; no Qdrant can run here)', () => {
  test('one changed byte of manifest.json: list shows the backup as damaged, restore and verify refuse it before touching anything, retention keeps it', async () => {
    const qdrant = await startQdrantStandIn({ apiKey: 'k', collections: { docs: 10_000 } });
    try {
      const env = { QDRANT_API_KEY: 'k' };
      const { config, path: configPath } = writeConfig({ jobs: [{ name: 'vectors', kind: 'qdrant', schedule: '0 3 * * *', retention: { daily: 1, weekly: 0, monthly: 0 }, offsite: false, qdrant: { url: qdrant.url, apiKeyEnv: 'QDRANT_API_KEY' } }] });
      expect((await cli(['run', 'vectors', '--config', configPath], env)).code).toBe(0);
      const store = new BackupStore(config.backupDir, 'vectors');
      const [backup] = await store.list();
      const file = path.join(store.backupDir(backup.id), 'manifest.json');
      fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('"sizeBytes": 10000', '"sizeBytes": 10001'));

      const listed = JSON.parse((await cli(['list', '--json', '--config', configPath], env)).stdout) as { id: string; status: string; problem: string }[];
      expect(listed).toEqual([expect.objectContaining({ id: backup.id, status: 'damaged', problem: expect.stringContaining('manifest is damaged: its checksum is sha256:') })]);

      const requests = qdrant.requests.length;
      const restore = await cli(['restore', 'vectors', '--from', backup.id, '--only', 'docs', '--target', 'docs', '--force', '--config', configPath], env);
      expect(restore.code).toBe(1);
      expect(restore.stderr).toMatch(new RegExp(`^tenantry-agent: backup ${backup.id} is refused, nothing was touched: .*manifest is damaged: .*Use another backup`, 'm'));
      expect(qdrant.requests.length).toBe(requests);
      const verify = await cli(['verify', backup.id, '--config', configPath], env);
      expect(verify.code).toBe(1);
      expect(verify.stderr).toContain('manifest is damaged');

      // A later run's retention (daily: 1) keeps what it cannot read.
      expect((await cli(['run', 'vectors', '--config', configPath], env)).code).toBe(0);
      expect((await store.list()).map((e) => e.state)).toEqual(['damaged', 'ok']);
    } finally {
      await qdrant.close();
    }
  });
});

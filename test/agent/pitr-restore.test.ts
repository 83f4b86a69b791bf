/**
 * Base backups and restore to a point against real PostgreSQL 15 and 17: the WAL archive is
 * written by pg_receivewal --synchronous with a slot (as the agent's receiver does), and every
 * restore is read back by a server started on the recovered data directory, row for row.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Client } from 'pg';
import { AgentConfig } from '../../runtime/agent/config';
import { BaseBackupDetails } from '../../runtime/agent/pitr/base-backup';
import { PITR_FOLDERS, PREPARED_RESTORE } from '../../runtime/agent/pitr/layout';
import { restoreToPoint, ReadyRestore } from '../../runtime/agent/pitr/restore';
import { listWal, markOffsite, parseLsn, sealCompleted, segmentName, segmentOf } from '../../runtime/agent/pitr/wal-archive';
import { runBackup } from '../../runtime/agent/runner';
import { freePort, PostgresServer, postgresVersionsUnderTest, tempDir, withDatabase } from '../helpers/servers';
import { cli, manifests, testAgent, writeConfig } from './harness';
import { diskUsage, insertBatch, PITR_ENV, pitrJob, postgresUser, readRecovered, Receiver, startReceiver, startSource } from './pitr-harness';

jest.setTimeout(120_000);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(postgresVersionsUnderTest())('PostgreSQL $major', ({ major, binDir }) => {
  let server: PostgresServer;
  let receiver: Receiver;
  let config: AgentConfig;
  let configPath: string;
  const env = { ...PITR_ENV, PATH: `${binDir}:${process.env.PATH}` };
  /** The rows of `events` as committed after each batch. */
  const rowsAfter = new Map<number, unknown[]>();
  let beforeBatch3: string;
  let afterBatch3Lsn: string;
  let latestLsn: string;
  let baseId: string;

  const rowsOf = (db: Client) => db.query('SELECT * FROM events ORDER BY id').then((r) => r.rows);
  const batch = async (n: number) => {
    await insertBatch(server, n);
    rowsAfter.set(n, await withDatabase(server, 'app', rowsOf));
  };
  const restoresDir = () => path.join(config.backupDir, 'pitr', PITR_FOLDERS.restores);
  const restoreEntries = () => (fs.existsSync(restoresDir()) ? fs.readdirSync(restoresDir()).sort() : []);
  const pendingNow = () => (fs.existsSync(path.join(restoresDir(), PREPARED_RESTORE.pending)) ? fs.readFileSync(path.join(restoresDir(), PREPARED_RESTORE.pending), 'utf8') : undefined);
  const switchWal = () => withDatabase(server, 'postgres', (db) => db.query('SELECT pg_switch_wal()'));

  beforeAll(async () => {
    server = await startSource(binDir);
    ({ path: configPath, config } = writeConfig({ jobs: [pitrJob(server)] }));
    receiver = await startReceiver(server, config.backupDir, pitrJob(server));
    await batch(1);
    const { agent } = testAgent(config, env);
    const manifest = await runBackup(agent, config.jobs[0], 'manual');
    expect(manifest.error).toBeUndefined();
    baseId = manifest.id;
    await batch(2);
    await sleep(50);
    beforeBatch3 = new Date().toISOString();
    await sleep(50);
    await batch(3);
    afterBatch3Lsn = await withDatabase(server, 'postgres', async (db) => (await db.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn);
    await switchWal();
    await batch(4);
    await withDatabase(server, 'postgres', (db) => db.query("SELECT pg_create_restore_point('before-batch-5')"));
    await batch(5);
    await switchWal();
    await batch(6);
    latestLsn = await withDatabase(server, 'postgres', async (db) => (await db.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn);
    await receiver.caughtUp(server);
  });

  afterAll(async () => {
    await receiver?.stop();
    await server?.stop();
  });

  /** The one restore `pending` names, read back by a server of the same version. */
  async function pendingRows(): Promise<{ ready: ReadyRestore; rows: unknown[] }> {
    const id = (pendingNow() ?? '').trim();
    const ready = JSON.parse(fs.readFileSync(path.join(restoresDir(), id, PREPARED_RESTORE.ready), 'utf8')) as ReadyRestore;
    const rows = await readRecovered(path.join(restoresDir(), id, 'pgdata'), binDir, server.password, 'app', rowsOf);
    return { ready, rows };
  }

  test('a base backup records its WAL range, system, version and compression, and passes pg_verifybackup', async () => {
    const [manifest] = await manifests(config, 'pitr');
    const details = manifest.details as unknown as BaseBackupDetails;
    expect(manifest).toMatchObject({ kind: 'postgres-pitr', status: 'ok', check: { result: 'passed' } });
    expect(manifest.check?.details).toMatch(/^manifest checked \(\d+ files, CRC32C, hashed as written\) and WAL /);
    expect(details).toMatchObject({ serverMajor: major, timeline: 1, compression: 'server-zstd:level=1,workers=1', baseTar: 'base.tar.zst', walTar: 'pg_wal.tar', walSegmentBytes: 16 * 1024 * 1024 });
    expect(details.systemIdentifier).toMatch(/^\d+$/);
    expect(path.basename(receiver.folder)).toBe(details.systemIdentifier);
    expect(manifest.files.map((f) => f.path).sort()).toEqual(['backup_manifest', 'base.tar.zst', 'pg_wal.tar']);
  });

  test('restore to a time: exactly the transactions committed before it', async () => {
    const { agent } = testAgent(config, env);
    const summary = await restoreToPoint(agent, config.jobs[0] as never, { target: { time: beforeBatch3 } });
    expect(summary).toContain(`from ${baseId}`);
    const { ready, rows } = await pendingRows();
    expect(rows).toEqual(rowsAfter.get(2));
    expect(ready).toMatchObject({ target: { time: beforeBatch3 }, baseBackup: baseId, timeline: 2 });
    expect(Date.parse(ready.reachedTime!)).toBeLessThan(Date.parse(beforeBatch3));
    expect(ready.checks).toEqual(expect.arrayContaining(['pg_controldata: in production', 'pg_controldata: shut down']));
  });

  test('restore to an LSN, through the command line', async () => {
    const result = await cli(['restore', 'pitr', '--to-lsn', afterBatch3Lsn, '--config', configPath], env);
    expect(result.stderr.split('\n').filter((l) => l && !l.startsWith('{'))).toEqual([]);
    expect(result.code).toBe(0);
    expect((await pendingRows()).rows).toEqual(rowsAfter.get(3));
  });

  test('restore to a named restore point', async () => {
    const result = await cli(['restore', 'pitr', '--to-name', 'before-batch-5', '--config', configPath], env);
    expect(result.code).toBe(0);
    expect((await pendingRows()).rows).toEqual(rowsAfter.get(4));
  });

  test('restore to latest: everything archived, the receiver\'s partial segment included', async () => {
    const result = await cli(['restore', 'pitr', '--latest', '--config', configPath], env);
    expect(result.code).toBe(0);
    const { ready, rows } = await pendingRows();
    expect(rows).toEqual(rowsAfter.get(6));
    expect(ready.target).toEqual({ latest: true });
  });

  test('--target-dir with --port: a scratch server of the recovered copy runs there; nothing is marked pending', async () => {
    const pendingBefore = pendingNow();
    const dir = path.join(tempDir('scratch'), 'pgdata');
    const port = await freePort();
    const result = await cli(['restore', 'pitr', '--to-lsn', afterBatch3Lsn, '--target-dir', dir, '--port', String(port), '--config', configPath], env);
    try {
      expect(result.stdout).toContain(`it runs on 127.0.0.1:${port}`);
      expect(result.code).toBe(0);
      const db = new Client({ host: '127.0.0.1', port, user: 'postgres', password: server.password, database: 'app' });
      await db.connect();
      try {
        expect(await rowsOf(db)).toEqual(rowsAfter.get(3));
      } finally {
        await db.end();
      }
      expect(pendingNow()).toBe(pendingBefore);
    } finally {
      spawnSync(path.join(binDir, 'pg_ctl'), ['-D', dir, '-m', 'fast', '-w', 'stop'], { ...postgresUser() });
    }
  });

  test('an agent run as root (an operator\'s root docker exec) recovers an archive the agent\'s own user wrote with mode 0600: the server runs as that user', async () => {
    // A copy of the backups as the image has them: owned by its unprivileged user, private.
    const volume = tempDir('backups-as-agent-user');
    fs.chmodSync(volume, 0o755);
    const copy = path.join(volume, 'backups');
    fs.cpSync(config.backupDir, copy, { recursive: true });
    const nobody = { uid: 65534, gid: 65534 };
    const own = (dir: string): void => {
      fs.chownSync(dir, nobody.uid, nobody.gid);
      fs.chmodSync(dir, 0o700);
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) own(full);
        else if (entry.isFile()) {
          fs.chownSync(full, nobody.uid, nobody.gid);
          fs.chmodSync(full, 0o600);
        }
      }
    };
    own(copy);
    const raw = JSON.parse(fs.readFileSync(configPath, 'utf8'));
    const copyConfig = path.join(tempDir('config-as-agent-user'), 'agent.json');
    fs.writeFileSync(copyConfig, JSON.stringify({ ...raw, backupDir: copy }));
    const parent = tempDir('recovered-as-agent-user');
    fs.chmodSync(parent, 0o755);
    const dir = path.join(parent, 'pgdata');
    const result = await cli(['restore', 'pitr', '--to-lsn', afterBatch3Lsn, '--target-dir', dir, '--config', copyConfig], env);
    expect(result.stderr).not.toMatch(/Permission denied/);
    expect(result).toMatchObject({ code: 0 });
    expect(fs.statSync(dir)).toMatchObject(nobody);
  });

  test('a time after the last transaction, while the archive was still being written: recovered to the archive\'s end', async () => {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const quietSince = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 50));
    // WAL without a transaction (a checkpoint record): the receiver writes the archive after the target.
    await withDatabase(server, 'postgres', (db) => db.query('CHECKPOINT'));
    await receiver.caughtUp(server);
    const result = await cli(['restore', 'pitr', '--to-time', quietSince, '--config', configPath], env);
    expect(result.code).toBe(0);
    const { ready, rows } = await pendingRows();
    expect(rows).toEqual(rowsAfter.get(6));
    expect(ready.target).toEqual({ time: quietSince });
    expect(ready.checks.join('\n')).toContain('no transaction in the archive ended between');
  });

  test('a time after the archive\'s end is refused before anything is written, saying what the archive holds', async () => {
    const before = restoreEntries();
    const result = await cli(['restore', 'pitr', '--to-time', new Date(Date.now() + 3_600_000).toISOString(), '--config', configPath], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/is after the end of the archive: its newest WAL was written at .* and the last transaction in it ended at /);
    expect(restoreEntries()).toEqual(before);
  });

  test('a target before the oldest base backup is refused before anything is written', async () => {
    const before = restoreEntries();
    const result = await cli(['restore', 'pitr', '--to-time', '2000-01-01T00:00:00Z', '--config', configPath], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('lies before the restorable window: the oldest base backup kept');
    expect(restoreEntries()).toEqual(before);
  });

  test('a recovery server killed mid-way leaves nothing promoted and the source untouched', async () => {
    const pendingBefore = pendingNow();
    const entriesBefore = restoreEntries();
    const { agent } = testAgent(config, env, {
      onLog: (entry) => {
        const pid = (entry as { fields?: { pid?: number } }).fields?.pid;
        if (entry.msg === 'recovery server started' && pid) process.kill(pid, 'SIGKILL');
      },
    });
    await expect(restoreToPoint(agent, config.jobs[0] as never, { target: { latest: true } })).rejects.toThrow(/the recovery server ended before promotion \(killed by SIGKILL\)/);
    expect(pendingNow()).toBe(pendingBefore);
    expect(restoreEntries()).toEqual(entriesBefore);
    expect(await withDatabase(server, 'app', rowsOf)).toEqual(rowsAfter.get(6));
  });

  describe('a damaged archive', () => {
    let middle: string;
    let saved: Buffer;
    beforeEach(async () => {
      const { segments: completed } = await listWal(receiver.folder, 16 * 1024 * 1024);
      middle = path.join(receiver.folder, completed[completed.length - 2].name);
      saved = fs.readFileSync(middle);
    });
    afterEach(() => fs.writeFileSync(middle, saved));

    test('a missing segment: the restore is refused before anything is written, naming it', async () => {
      fs.rmSync(middle);
      const before = restoreEntries();
      const result = await cli(['restore', 'pitr', '--latest', '--config', configPath], env);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`WAL segment ${path.basename(middle)} is missing from the archive`);
      expect(restoreEntries()).toEqual(before);
    });

    test.each([
      ['an LSN past the damage', () => ['--to-lsn', latestLsn]],
      ['latest', () => ['--latest']],
    ])('a damaged segment, restoring to %s: recovery fails part-way and nothing is promoted', async (_, target) => {
      const damaged = Buffer.from(saved);
      damaged.fill(0x5a, 8192, 16384);
      fs.writeFileSync(middle, damaged);
      const pendingBefore = pendingNow();
      const before = restoreEntries();
      const result = await cli(['restore', 'pitr', ...target(), '--config', configPath], env);
      expect(result.code).not.toBe(0);
      expect(restoreEntries()).toEqual(before);
      expect(pendingNow()).toBe(pendingBefore);
    });
  });

  test('retention: a newer base backup retires the older and the WAL only it needed; the newest moment stays restorable', async () => {
    // The agent's receiver seals each completed segment (a hard link) and marks what went off-site.
    await sealCompleted(receiver.folder);
    const { segments: before } = await listWal(receiver.folder, 16 * 1024 * 1024);
    for (const segment of before) await markOffsite(receiver.folder, segment.name);
    const usedBefore = diskUsage(receiver.folder);
    const job = { ...config.jobs[0], retention: { daily: 0, weekly: 0, monthly: 0 }, pitr: { ...pitrJob(server).pitr, windowDays: 0 } } as typeof config.jobs[0];
    const manifest = await runBackup(testAgent(config, env).agent, job, 'manual');
    expect(manifest.error).toBeUndefined();
    expect((await manifests(config, 'pitr')).map((m) => m.id)).toEqual([manifest.id]);
    const start = (manifest.details as unknown as BaseBackupDetails).startLsn;
    const { segments: after } = await listWal(receiver.folder, 16 * 1024 * 1024);
    expect(after.length).toBeLessThan(before.length);
    const kept = after.map((segment) => segment.name);
    for (const sub of ['.sealed', '.offsite']) expect(fs.readdirSync(path.join(receiver.folder, sub)).filter((name) => !name.endsWith('.history') && !kept.includes(name))).toEqual([]);
    expect(usedBefore - diskUsage(receiver.folder)).toBeGreaterThanOrEqual((before.length - after.length) * 16 * 1024 * 1024);
    expect(after[0].name.slice(8)).toBe(segmentName({ timeline: 1, segno: segmentOf(parseLsn(start), 16 * 1024 * 1024) }, 16 * 1024 * 1024).slice(8));
    await batch(8);
    await receiver.caughtUp(server);
    expect((await cli(['restore', 'pitr', '--latest', '--config', configPath], env)).code).toBe(0);
    expect((await pendingRows()).rows).toEqual(rowsAfter.get(8));
  });
});

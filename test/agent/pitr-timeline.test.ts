/**
 * Archiving survives a restore (issue 12), against real PostgreSQL 15 and 17: after a restore to a
 * moment T the server runs on a new timeline forked from the old one at T, while the archive still
 * holds whole segments of the old timeline written after T. The agent's receiver must move that
 * abandoned branch aside and stream the new timeline, with no gap, and the moments before the fork
 * must stay restorable.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Client } from 'pg';
import { ArchiveStatus } from '../../runtime/agent/pitr/archive-status';
import { PITR_FOLDERS, PREPARED_RESTORE } from '../../runtime/agent/pitr/layout';
import type { PitrJob } from '../../runtime/agent/pitr/replication';
import { RECEIVER_TIMING, WalReceiver } from '../../runtime/agent/pitr/receiver';
import type { RecoveryTarget } from '../../runtime/agent/pitr/recovery';
import { restoreToPoint } from '../../runtime/agent/pitr/restore';
import { ABANDONED_FOLDER, checkContinuity, historyFileName, listWal, parseLsn, walFolder } from '../../runtime/agent/pitr/wal-archive';
import { runBackup } from '../../runtime/agent/runner';
import { postgresVersionsUnderTest, PostgresServer, withDatabase } from '../helpers/servers';
import { testAgent, waitFor, writeConfig } from './harness';
import { insertBatch, PITR_ENV, pitrJob, readRecovered, startSource } from './pitr-harness';

jest.setTimeout(180_000);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(postgresVersionsUnderTest())('a restore forks the timeline, PostgreSQL $major', ({ binDir }) => {
  let server: PostgresServer;
  let receiver: WalReceiver | undefined;
  const processPath = process.env.PATH;

  beforeAll(async () => {
    // The receiver looks for client tools where images install them; this version's are elsewhere here.
    process.env.PATH = `${binDir}:${processPath}`;
    server = await startSource(binDir);
  });

  afterAll(async () => {
    await receiver?.stop();
    process.env.PATH = processPath;
    await server?.stop();
  });

  const currentLsn = () => withDatabase(server, 'postgres', async (db) => parseLsn((await db.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l));
  const switchWal = () => withDatabase(server, 'postgres', (db) => db.query('SELECT pg_switch_wal()'));
  const rowsOf = (db: Client) => db.query<{ batch: number }>('SELECT DISTINCT batch FROM events ORDER BY 1').then((r) => r.rows.map((row) => row.batch));

  test('segments of the abandoned branch are moved aside, the new timeline is archived within seconds without a gap, and moments before the fork stay restorable', async () => {
    const job = pitrJob(server);
    const { config } = writeConfig({ jobs: [job] });
    const env = { ...PITR_ENV, PATH: process.env.PATH };
    const { agent, notices, lines } = testAgent(config, env);
    const status = agent.state.archiveOf(job.name) as ArchiveStatus;
    receiver = new WalReceiver(agent, config.jobs[0] as PitrJob, status, { ...RECEIVER_TIMING, pollMs: 100, restartDelayMs: 200, maxRestartDelayMs: 1000 });
    receiver.start();
    await waitFor('the receiver to stream', () => (status.receiverUp && status.lastArchivedLsn !== undefined ? true : undefined), 30_000);
    const archived = async () => {
      const lsn = await currentLsn();
      await waitFor('the archive to catch up', () => (status.lastArchivedLsn !== undefined && status.lastArchivedLsn >= lsn ? true : undefined), 20_000);
    };

    await insertBatch(server, 1);
    expect((await runBackup(agent, config.jobs[0], 'manual')).error).toBeUndefined();
    await insertBatch(server, 2);
    await archived();
    await sleep(50);
    const beforeBatch3 = new Date().toISOString();
    await sleep(50);
    await insertBatch(server, 3);
    await sleep(50);
    const fork = new Date().toISOString();
    await sleep(50);
    // The old branch goes on past the fork for several whole segments.
    for (const batch of [4, 5, 6]) {
      await insertBatch(server, batch);
      await switchWal();
    }
    await insertBatch(server, 7);
    await archived();
    const folder = walFolder(config.backupDir, job.name, status.systemIdentifier!);
    const restore = async (target: RecoveryTarget) => {
      // The agent runs as root here and its pg_receivewal writes 0600 files, while the recovery
      // server runs as the OS user postgres (in the image both are the agent's own user).
      spawnSync('chmod', ['-R', 'a+rX', path.dirname(folder)]);
      await restoreToPoint(agent, config.jobs[0] as PitrJob, { target });
    };

    await restore({ time: fork });
    const restores = path.join(config.backupDir, job.name, PITR_FOLDERS.restores);
    const id = fs.readFileSync(path.join(restores, PREPARED_RESTORE.pending), 'utf8').trim();
    // What the Postgres container's start wrapper does: the recovered copy becomes the server's data directory.
    server.kill('SIGINT');
    await waitFor('the server to stop', () => (fs.existsSync(path.join(server.dataDir, 'postmaster.pid')) ? undefined : true), 30_000);
    fs.renameSync(server.dataDir, `${server.dataDir}.before-restore-${id}`);
    fs.renameSync(path.join(restores, id, PREPARED_RESTORE.pgdata), server.dataDir);
    await server.restart();
    expect(await withDatabase(server, 'app', rowsOf)).toEqual([1, 2, 3]);

    await insertBatch(server, 8);
    const committed = await currentLsn();
    // The server's own view of what the receiver flushed: a slot created afresh on the restored
    // server starts at the server's position, so the slot alone does not prove anything was received.
    const flushed = () =>
      withDatabase(server, 'postgres', async (db) => (await db.query<{ l: string | null }>("SELECT max(flush_lsn)::text AS l FROM pg_stat_replication WHERE application_name LIKE 'tenantry-agent%'")).rows[0].l);
    await waitFor('the commit on the new timeline archived', async () => {
      const lsn = await flushed();
      return lsn !== null && parseLsn(lsn) >= committed && status.timeline === 2 ? true : undefined;
    }, 15_000).catch((error) => {
      throw new Error(`${error.message}; receiver: ${status.lastError}`);
    });

    expect(fs.existsSync(path.join(folder, historyFileName(2)))).toBe(true);
    const abandoned = path.join(folder, ABANDONED_FOLDER, '00000001');
    const aside = fs.readdirSync(abandoned).filter((n) => /^00000001[0-9A-F]{16}$/.test(n));
    expect(aside.length).toBeGreaterThanOrEqual(3);
    expect(notices.filter((n) => n.includes('abandoned'))).toEqual([expect.stringContaining(`${ABANDONED_FOLDER}/00000001`)]);
    expect(lines.some((l) => l.level === 'warn' && l.msg.includes('abandoned'))).toBe(true);
    await waitFor('the new timeline\'s fork segment completed', async () => {
      const chain = checkContinuity(await listWal(folder));
      return chain.timeline === 2 && chain.gaps.length === 0 && chain.problems.length === 0 ? chain : undefined;
    });
    expect(status.gaps).toBe(0);

    // A moment on the old branch before the fork, and the newest moment of the new timeline.
    await restore({ time: beforeBatch3 });
    const early = fs.readFileSync(path.join(restores, PREPARED_RESTORE.pending), 'utf8').trim();
    expect(await readRecovered(path.join(restores, early, PREPARED_RESTORE.pgdata), binDir, server.password, 'app', rowsOf)).toEqual([1, 2]);
    await restore({ latest: true });
    const latest = fs.readFileSync(path.join(restores, PREPARED_RESTORE.pending), 'utf8').trim();
    expect(await readRecovered(path.join(restores, latest, PREPARED_RESTORE.pgdata), binDir, server.password, 'app', rowsOf)).toEqual([1, 2, 3, 8]);
  });
});

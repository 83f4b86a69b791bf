/**
 * Recovery verification of a postgres-pitr job against real PostgreSQL 15 and 17: the newest base
 * backup plus WAL recovered into a scratch folder, row counts compared with the source's at the
 * recovered point, while the source keeps committing.
 */
import * as fs from 'fs';
import * as path from 'path';
import { AgentConfig } from '../../runtime/agent/config';
import { committedUnseen, verifyRecovery } from '../../runtime/agent/pitr/verify';
import { runBackup } from '../../runtime/agent/runner';
import { agentStatusSchema } from '../../runtime/agent/report';
import { renderMetrics, snapshotJobs } from '../../runtime/agent/status';
import { PostgresServer, postgresVersionsUnderTest, withDatabase } from '../helpers/servers';
import { cli, manifests, testAgent, writeConfig } from './harness';
import { insertBatch, PITR_ENV, pitrJob, Receiver, startReceiver, startSource } from './pitr-harness';

jest.setTimeout(180_000);

describe.each(postgresVersionsUnderTest())('PostgreSQL $major', ({ binDir }) => {
  let server: PostgresServer;
  let receiver: Receiver;
  let config: AgentConfig;
  let configPath: string;
  const env = { ...PITR_ENV, PATH: `${binDir}:${process.env.PATH}` };

  beforeAll(async () => {
    server = await startSource(binDir);
    await withDatabase(server, 'postgres', (db) => db.query('CREATE DATABASE ledger'));
    await withDatabase(server, 'ledger', (db) => db.query('CREATE TABLE entries (id int PRIMARY KEY, note text)'));
    const job = pitrJob(server);
    ({ path: configPath, config } = writeConfig({ jobs: [{ ...job, pitr: { ...job.pitr, databases: ['app', 'ledger'] } }] }));
    receiver = await startReceiver(server, config.backupDir, pitrJob(server));
    await insertBatch(server, 1);
    const manifest = await runBackup(testAgent(config, env).agent, config.jobs[0], 'manual');
    expect(manifest.error).toBeUndefined();
    const switchWal = () => withDatabase(server, 'postgres', (db) => db.query('SELECT pg_switch_wal()'));
    await switchWal();
    await insertBatch(server, 2);
    await switchWal();
    await insertBatch(server, 3);
    await receiver.caughtUp(server);
  });

  afterAll(async () => {
    await receiver?.stop();
    await server?.stop();
  });

  test('while both databases keep committing from four sessions, each of three verifications matches the counts at the recovered point; the result is in the manifest and /metrics', async () => {
    // Without pause, some commit is nearly always written to WAL and not yet visible when the
    // snapshots are taken: the point must be chosen from the WAL, not hoped for (verify-point.ts).
    let writing = true;
    let written = 0;
    const writer = (database: string, sql: string, first: number) =>
      withDatabase(server, database, async (db) => {
        for (let id = first; writing; id++, written++) await db.query(sql, [id]);
      });
    const writers = [
      writer('app', "INSERT INTO events VALUES ($1, 99, 'steady')", 100_000),
      writer('app', "INSERT INTO events VALUES ($1, 99, 'steady')", 200_000),
      writer('ledger', "INSERT INTO entries VALUES ($1, 'steady')", 100_000),
      writer('ledger', "INSERT INTO entries VALUES ($1, 'steady')", 200_000),
    ];
    const results = [];
    try {
      for (let run = 0; run < 3; run++) results.push(await cli(['verify', 'pitr', '--config', configPath], env));
    } finally {
      writing = false;
      await Promise.all(writers);
    }
    for (const result of results) {
      if (result.code !== 0) console.log(result.stderr);
      expect(result.stdout).toMatch(/^pitr: verification passed .*row counts of 2 tables in app, ledger match the source/);
      expect(result.code).toBe(0);
    }
    expect(written).toBeGreaterThan(0);
    const [manifest] = await manifests(config, 'pitr');
    expect(manifest.verified).toMatchObject({ result: 'passed' });
    const { agent } = testAgent(config, env);
    const metrics = renderMetrics(await snapshotJobs(agent.state), config, new Date());
    expect(metrics).toMatch(new RegExp(`tenantry_pitr_last_verified_recovery_timestamp_seconds\\{[^}]*job="pitr"[^}]*\\} ${Math.floor(Date.parse(manifest.verified!.at) / 1000)}`));
    expect(fs.readdirSync(path.join(config.backupDir, 'pitr')).filter((n) => n.includes('.tmp-'))).toEqual([]);
    // The only base backup, with the archive unbroken after it, starts the restorable window.
    const windowStart = Date.parse((manifest.details as { endTime: string }).endTime) / 1000;
    const windowLine = metrics.split('\n').find((line) => line.startsWith('tenantry_pitr_window_start_timestamp_seconds{') && line.includes('job="pitr"'));
    expect(Number(windowLine?.split(' ').pop())).toBeCloseTo(windowStart, 3);
  });

  test('status --json: the restorable window, from the base backup\'s end to the archive\'s last write', async () => {
    await receiver.caughtUp(server);
    const caughtUp = Date.now();
    const result = await cli(['status', '--json', '--config', configPath], env);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const [job] = agentStatusSchema.parse(JSON.parse(result.stdout)).jobs;
    const [manifest] = await manifests(config, 'pitr');
    expect(job.restorableWindow?.from).toBe(new Date((manifest.details as { endTime: string }).endTime).toISOString());
    // The receiver wrote the last commit before it caught up; a quiet server writes nothing more.
    const newestWrite = Math.max(...fs.readdirSync(receiver.folder).filter((n) => /^[0-9A-F]{24}(\.partial)?$/.test(n)).map((n) => fs.statSync(path.join(receiver.folder, n)).mtimeMs));
    expect(Date.parse(job.restorableWindow!.to)).toBe(new Date(newestWrite).getTime());
    expect(Date.parse(job.restorableWindow!.to)).toBeLessThanOrEqual(caughtUp);
    expect(Date.parse(job.restorableWindow!.to)).toBeGreaterThan(Date.parse(job.restorableWindow!.from));
  });

  test('the race check: a transaction a snapshot did not see, committed on the server asked, is caught; none is not', async () => {
    await withDatabase(server, 'app', async (db) => {
      const before = (await db.query<{ s: string }>('SELECT pg_current_snapshot()::text AS s')).rows[0].s;
      expect(await committedUnseen(db, before)).toBe(false);
      await insertBatch(server, 7);
      expect(await committedUnseen(db, before)).toBe(true);
      const after = (await db.query<{ s: string }>('SELECT pg_current_snapshot()::text AS s')).rows[0].s;
      expect(await committedUnseen(db, after)).toBe(false);
    });
  });

  test('an archive that cannot reach the point fails verification, counted and sent, and records it', async () => {
    const { agent, notices } = testAgent(config, env);
    const saved = fs.mkdtempSync(path.join(path.dirname(receiver.folder), '.tmp-saved-'));
    for (const name of fs.readdirSync(receiver.folder).filter((n) => !n.endsWith('.partial'))) fs.renameSync(path.join(receiver.folder, name), path.join(saved, name));
    try {
      const manifest = await verifyRecovery(agent, config.jobs[0] as never);
      expect(manifest.verified).toMatchObject({ result: 'failed', details: expect.stringContaining('the recovery server ended before promotion') });
      expect(agent.state.countersOf('pitr').verifyFailures).toBe(1);
      expect(notices.join('\n')).toContain('verification of pitr');
    } finally {
      for (const name of fs.readdirSync(saved)) fs.renameSync(path.join(saved, name), path.join(receiver.folder, name));
    }
  });
});

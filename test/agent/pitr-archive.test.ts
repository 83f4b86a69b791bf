/**
 * Continuous WAL archiving (issue 12) against real PostgreSQL 15 and 17: pg_receivewal supervised
 * by the agent, checked with pg_waldump on the archived files and with the server's own view of
 * the replication slot.
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ArchiveStatus } from '../../runtime/agent/pitr/archive-status';
import type { PitrJob } from '../../runtime/agent/pitr/replication';
import { RECEIVER_TIMING, ReceiverTiming, WalReceiver } from '../../runtime/agent/pitr/receiver';
import { ABANDONED_FOLDER, checkContinuity, historyFileName, listWal, parseLsn, walFolder } from '../../runtime/agent/pitr/wal-archive';
import { renderMetrics, snapshotJobs } from '../../runtime/agent/status';
import { isAlive } from '../helpers/processes';
import { freePort, postgresVersionsUnderTest, PostgresServer, startPostgres, tempDir, withDatabase } from '../helpers/servers';
import { exitOf, spawnCli, testAgent, waitFor, writeConfig } from './harness';

const REPLICATION_PASSWORD = 'replicate-me';
let slots = 0;
let afterDebug = () => undefined as unknown;

function pitrJob(server: PostgresServer, slot: string) {
  return {
    name: 'postgres-pitr',
    kind: 'postgres-pitr' as const,
    schedule: '0 3 * * *',
    retention: { daily: 7, weekly: 4, monthly: 6 },
    offsite: false,
    pitr: { host: server.host, port: server.port, user: 'replicator', passwordEnv: 'PG_REPLICATION_PASSWORD', slot, windowDays: 7, maxLagSeconds: 30, maxSlotWalKeepMb: 4, databases: ['app'] },
  };
}

/** Commits one transaction of `rows` rows; returns its xid and the WAL position after the commit. */
async function commit(server: PostgresServer, rows = 1): Promise<{ xid: number; lsn: bigint }> {
  return withDatabase(server, 'app', async (db) => {
    await db.query('BEGIN');
    const xid = Number((await db.query<{ x: string }>('SELECT txid_current()::text AS x')).rows[0].x);
    await db.query("INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, $1) g", [rows]);
    await db.query('COMMIT');
    return { xid, lsn: parseLsn((await db.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l) };
  });
}

/** What the server knows the receiver has flushed (the slot's restart_lsn). */
async function slotFlushed(server: PostgresServer, slot: string): Promise<bigint> {
  const row = await withDatabase(server, 'postgres', async (db) => (await db.query<{ l: string | null }>('SELECT restart_lsn::text AS l FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows[0]);
  return row?.l ? parseLsn(row.l) : -1n;
}

/** The xids whose COMMIT record is in the archived WAL (the partial segment read as the segment it will become). */
async function archivedCommits(folder: string, binDir: string): Promise<Set<number>> {
  const copy = tempDir('waldump');
  const names = fs.readdirSync(folder).filter((n) => /^[0-9A-F]{24}(\.partial)?$/.test(n)).sort();
  for (const name of names) fs.copyFileSync(path.join(folder, name), path.join(copy, name.replace('.partial', '')));
  const first = names[0].replace('.partial', '');
  const stdout = await new Promise<string>((resolve) =>
    // pg_waldump exits 1 at the end of valid WAL (the partial's unwritten rest): its output is what counts.
    execFile(path.join(binDir, 'pg_waldump'), ['--path', copy, '--rmgr', 'Transaction', first], { maxBuffer: 64 * 1024 * 1024 }, (_error, out) => resolve(String(out))),
  );
  return new Set([...stdout.matchAll(/tx:\s+(\d+),.*desc: COMMIT/g)].map((m) => Number(m[1])));
}

function metric(text: string, name: string): number | undefined {
  const match = new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : undefined;
}

describe.each(postgresVersionsUnderTest())('WAL archiving from a real PostgreSQL $major server', ({ major, binDir }) => {
  let server: PostgresServer;
  let running: WalReceiver[] = [];
  const processPath = process.env.PATH;

  beforeAll(async () => {
    // The agent looks for client tools where images install them; this version's are elsewhere here.
    process.env.PATH = `${binDir}:${processPath}`;
    server = await startPostgres({ binDir, parameters: { wal_level: 'replica', max_wal_senders: '10', max_slot_wal_keep_size: '64MB' } });
    await withDatabase(server, 'postgres', async (db) => {
      await db.query(`CREATE ROLE replicator LOGIN REPLICATION PASSWORD '${REPLICATION_PASSWORD}'`);
      await db.query('CREATE DATABASE app');
    });
    await withDatabase(server, 'app', (db) => db.query('CREATE TABLE t (id int, filler text)'));
  });

  afterEach(async () => {
    afterDebug();
    await Promise.all(running.map((receiver) => receiver.stop()));
    running = [];
  });

  afterAll(async () => {
    process.env.PATH = processPath;
    await server.stop();
  });

  /** A receiver for a fresh slot and backup folder, started. */
  async function startReceiver(timing: Partial<ReceiverTiming> = {}) {
    const slot = `tenantry_test_${major}_${++slots}`;
    const { config } = writeConfig({ jobs: [pitrJob(server, slot)] });
    const { agent, notices, lines } = testAgent(config, { PG_REPLICATION_PASSWORD: REPLICATION_PASSWORD });
    const status = agent.state.archiveOf('postgres-pitr') as ArchiveStatus;
    const receiver = new WalReceiver(agent, config.jobs[0] as PitrJob, status, { ...RECEIVER_TIMING, pollMs: 100, restartDelayMs: 200, ...timing });
    receiver.start();
    running.push(receiver);
    await waitFor('the receiver to stream', () => (status.receiverUp && status.lastArchivedLsn !== undefined && status.systemIdentifier ? true : undefined), 30_000);
    const folder = walFolder(config.backupDir, 'postgres-pitr', status.systemIdentifier!);
    const metrics = async () => renderMetrics(await snapshotJobs(agent.state), config, new Date());
    return { slot, config, agent, status, receiver, folder, notices, lines, metrics };
  }

  test('a committed transaction is flushed to the archive within a second, and its COMMIT record is in the archived WAL', async () => {
    const { slot, folder, metrics } = await startReceiver();
    const committed = await commit(server, 10);
    await waitFor('the archive to hold the commit', async () => ((await slotFlushed(server, slot)) >= committed.lsn ? true : undefined), 1000, 10);
    expect((await archivedCommits(folder, binDir)).has(committed.xid)).toBe(true);
    const text = await metrics();
    expect(metric(text, 'tenantry_pitr_receiver_up')).toBe(1);
    expect(metric(text, 'tenantry_pitr_wal_gaps')).toBe(0);
    expect(fs.existsSync(path.join(folder, 'server.json'))).toBe(true);
  });

  test('a receiver killed with SIGKILL is restarted and loses nothing; while it is down the slot retains WAL, and metrics and the webhook say so', async () => {
    const { slot, folder, status, receiver, metrics, notices } = await startReceiver({ restartDelayMs: 5000 });
    const xids = [(await commit(server)).xid];
    process.kill(receiver.receiverPid!, 'SIGKILL');
    await waitFor('the receiver to be seen down', () => (status.receiverUp ? undefined : true), 5000);
    // 3 MB of WAL while nobody receives it: 75 % of maxSlotWalKeepMb (4 MB) is retained.
    let last = await commit(server, 10_000);
    xids.push(last.xid);
    const down = await waitFor('retained WAL in the metrics', async () => {
      const text = await metrics();
      return (metric(text, 'tenantry_pitr_slot_retained_bytes') ?? 0) > 2 * 1024 * 1024 ? text : undefined;
    }, 5000, 50);
    expect(metric(down, 'tenantry_pitr_receiver_up')).toBe(0);
    expect(metric(down, 'tenantry_pitr_archive_lag_bytes')).toBeGreaterThan(2 * 1024 * 1024);
    // 50 %, or 80 % when one poll saw the slot pass both.
    expect(notices.some((n) => /(50|80) % of max_slot_wal_keep_size \(4 MB\)/.test(n))).toBe(true);
    last = await commit(server);
    xids.push(last.xid);
    await waitFor('the restarted receiver to catch up', async () => ((await slotFlushed(server, slot)) >= last.lsn ? true : undefined), 20_000);
    const archived = await archivedCommits(folder, binDir);
    expect(xids.filter((xid) => !archived.has(xid))).toEqual([]);
    expect(checkContinuity(await listWal(folder)).gaps).toEqual([]);
    await waitFor('retained WAL back to near zero', async () => ((metric(await metrics(), 'tenantry_pitr_slot_retained_bytes') ?? Infinity) < 1024 * 1024 ? true : undefined), 5000);
  });

  test('a segment missing from the chain is a gap: metric and webhook', async () => {
    const { folder, metrics, notices } = await startReceiver({ continuityEveryMs: 100 });
    for (let i = 0; i < 3; i++) {
      await commit(server);
      await withDatabase(server, 'postgres', (db) => db.query('SELECT pg_switch_wal()'));
    }
    const completed = await waitFor('three completed segments', async () => {
      const segments = (await listWal(folder)).segments;
      return segments.length >= 3 ? segments : undefined;
    });
    fs.rmSync(path.join(folder, completed[1].name));
    await waitFor('the gap to be reported', () => (notices.some((n) => n.includes(`segments ${completed[1].name} are missing`)) ? true : undefined), 5000);
    expect(metric(await metrics(), 'tenantry_pitr_wal_gaps')).toBe(1);
  });

  test('other bytes under the name of a completed segment are refused: the archived bytes stay, the receiver halts and alerts', async () => {
    const { folder, status, receiver, notices, metrics } = await startReceiver();
    await commit(server);
    await withDatabase(server, 'postgres', (db) => db.query('SELECT pg_switch_wal()'));
    const completed = await waitFor('a sealed segment', () => fs.readdirSync(folder).find((n) => /^[0-9A-F]{24}$/.test(n) && fs.existsSync(path.join(folder, '.sealed', n))));
    const original = fs.readFileSync(path.join(folder, completed));
    const pid = receiver.receiverPid!;
    // What pg_receivewal does with a finished segment: rename it over the name.
    fs.writeFileSync(path.join(folder, 'incoming'), Buffer.alloc(original.length, 7));
    fs.renameSync(path.join(folder, 'incoming'), path.join(folder, completed));
    await waitFor('the refusal', () => (notices.some((n) => n.includes(`segment ${completed} was about to be replaced by different bytes`)) ? true : undefined), 5000);
    expect(fs.readFileSync(path.join(folder, completed)).equals(original)).toBe(true);
    expect(fs.readdirSync(path.join(folder, '.refused'))).toHaveLength(1);
    expect(status.halted).toContain(completed);
    await waitFor('pg_receivewal to be gone', () => (isAlive(pid) ? undefined : true), 10_000);
    expect(metric(await metrics(), 'tenantry_pitr_receiver_up')).toBe(0);
  });

  test('a timeline switch (the server restarted as a standby and promoted) is followed without a gap', async () => {
    const { slot, folder, status, lines } = await startReceiver();
    afterDebug = () => console.log(JSON.stringify(lines.slice(-30), null, 1), fs.readdirSync(folder));
    const before = await commit(server);
    await waitFor('the commit archived', async () => ((await slotFlushed(server, slot)) >= before.lsn ? true : undefined), 5000);
    server.kill('SIGINT');
    await waitFor('the server to stop', () => (fs.existsSync(path.join(server.dataDir, 'postmaster.pid')) ? undefined : true), 30_000);
    fs.writeFileSync(path.join(server.dataDir, 'standby.signal'), '');
    await server.restart();
    await withDatabase(server, 'postgres', (db) => db.query('SELECT pg_promote()'));
    const after = await waitFor('a commit on the new timeline', () => commit(server).catch(() => undefined), 30_000, 200);
    await waitFor('the new timeline archived', async () => ((await slotFlushed(server, slot).catch(() => -1n)) >= after.lsn && status.timeline === 2 ? true : undefined), 30_000, 100);
    afterDebug = () => undefined;
    expect(fs.existsSync(path.join(folder, historyFileName(2)))).toBe(true);
    // The old timeline ended at the switch: nothing of it is an abandoned branch.
    expect(fs.existsSync(path.join(folder, ABANDONED_FOLDER))).toBe(false);
    const chain = checkContinuity(await listWal(folder));
    expect(chain).toMatchObject({ timeline: 2, gaps: [], problems: [] });
  });
});

describe('serve and SIGTERM', () => {
  let server: PostgresServer;
  beforeAll(async () => {
    server = await startPostgres({ parameters: { wal_level: 'replica', max_wal_senders: '10' } });
    await withDatabase(server, 'postgres', (db) => db.query(`CREATE ROLE replicator LOGIN REPLICATION PASSWORD '${REPLICATION_PASSWORD}'`));
  });
  afterAll(() => server.stop());

  /** PIDs of pg_receivewal processes writing into `folderPart`. */
  const receiversIn = (folderPart: string) =>
    fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
      try {
        const argv = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        // argv[0]: the program itself, not the watchdog shell whose arguments name it too.
        return argv[0].endsWith('pg_receivewal') && argv.some((a) => a.includes(folderPart));
      } catch {
        return false;
      }
    });

  test('serve runs pg_receivewal for the postgres-pitr job; SIGTERM ends the agent and leaves no pg_receivewal running', async () => {
    const port = await freePort();
    const { path: configPath, config } = writeConfig({ http: { port, host: '127.0.0.1' }, jobs: [pitrJob(server, 'tenantry_serve')] });
    const agent = spawnCli(['serve', '--config', configPath], { PG_REPLICATION_PASSWORD: REPLICATION_PASSWORD });
    const walDir = path.join(config.backupDir, 'postgres-pitr', 'wal');
    try {
      await waitFor('pg_receivewal under serve', () => (receiversIn(walDir).length === 1 ? true : undefined), 60_000, 200);
    } catch (error) {
      agent.kill('SIGKILL');
      throw new Error(`${(error as Error).message}; agent output: ${agent.output().stderr.slice(-3000)}`);
    }
    agent.kill('SIGTERM');
    expect(await exitOf(agent)).toBe(0);
    expect(receiversIn(walDir)).toEqual([]);
  }, 90_000);
});

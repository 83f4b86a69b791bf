/**
 * Point-in-time recovery against the logical paths, on the backup benchmark's database (pgbench
 * -i -s 70, built once), in one run (issue 12, "Measure and report"):
 *
 *   1. base backup: `pg_dump | gzip` vs `tenantry-agent run postgres-pitr` (the whole job:
 *      pg_basebackup, then its check of the tars against backup_manifest) vs pg_basebackup alone
 *      with the job's flags, and the logical job;
 *   2. restore to a server that accepts connections, with identical contents (every table's row
 *      count and sum of 64-bit row hashes equal the source's): `gunzip | psql` vs the agent's
 *      logical restore (both into a second server) vs `restore postgres-pitr --latest --target-dir --port` (recovered and
 *      started) vs the dedicated server's path (`restore --latest`, the Postgres container's
 *      restore-on-start script swapping it in, the server started);
 *   3. recovery point: a server under pgbench load plus a client recording every commit
 *      acknowledged to it; SIGKILL of every server process, its data directory deleted, restore
 *      to latest, acknowledged commits counted; each trial on a fresh copy of the database with a
 *      fresh archive and base backup; then the same with synchronous replication to the receiver;
 *   4. commit latency with and without synchronous_standby_names naming the receiver;
 *   5. archive lag while pgbench runs at full speed.
 *
 * The agent runs through its commands only (`serve`, `run`, `restore`), as a child process with
 * its config in TENANTRY_AGENT_CONFIG_JSON, from dist/. Each comparison alternates its sides (A, B,
 * A, B); every timed step starts after a CHECKPOINT and a sync; tables show medians and the load
 * average beside them. Run: `npm run build --silent && node dist/bench/pitr.js`
 * (BENCH_PG_SCALE, BENCH_REPETITIONS, BENCH_PITR_TRIALS, BENCH_PITR_SYNC_TRIALS,
 * BENCH_PITR_LATENCY_REPETITIONS, BENCH_PITR_LATENCY_SECONDS, BENCH_PITR_LAG_SECONDS and
 * BENCH_PG_MAJOR, 15 or 17, override).
 */
import { ChildProcess, execFile, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { Client, ClientConfig } from 'pg';
import { agentMetric } from '../e2e/agent-metrics';
import { CommitWriter, ACK_TABLE_DDL, compareLatest, rowsPresent } from '../e2e/acknowledged-commits';
import { killTree, LongRunning, startLongRunning } from '../e2e/processes';
import { textTable } from '../e2e/text-table';
import { CONFIG_JSON_ENV, parseAgentConfig, RESTORE_CREDENTIAL_ENV } from '../runtime/agent/config';
import { runPipeline } from '../runtime/agent/exec';
import { BASE_BACKUP_COMPRESSION } from '../runtime/agent/pitr/base-backup';
import { manifestChecksum } from '../runtime/agent/pitr/base-backup-check';
import { POSTGRES_PITR_JOB } from '../runtime/agent/pitr/layout';
import { renderRestoreOnStart } from '../runtime/render/postgres-restore-on-start';
import { freePort, PostgresServer, postgresVersionsUnderTest, startPostgres, tempDir } from '../test/helpers/servers';

/** Debian bookworm's server, the one every other benchmark uses. */
const DEFAULT_MAJOR = 15;
import { runBenchmarkProgram, versionLine } from './program';

const PITR_JOB = POSTGRES_PITR_JOB;
const LOGICAL_JOB = 'postgres';
const REPLICATOR = { user: 'replicator', password: 'bench-replicator-pw' };
/** pg_receivewal's application_name: what synchronous_standby_names names for zero loss. */
const RECEIVER_APPLICATION_NAME = `tenantry-agent ${PITR_JOB}`;
const SLOT = 'tenantry_bench';
const ACKS = 'acknowledged_commits';
const PROBE = 'commit_probe';
const DIGEST_TABLES = ['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history', ACKS];
const CLI = path.join(__dirname, '..', 'runtime', 'agent', 'cli.js');

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const load1 = () => os.loadavg()[0];

export interface TimedRow {
  method: string;
  seconds: number[];
  sizeBytes?: number;
  /** Load average (1 min) at the start of each repetition. */
  load: number[];
}

export interface RecoveryTrial {
  synchronous: boolean;
  acknowledged: number;
  commitsPerSecond: number;
  lost: number;
  lostSeconds: number;
  unacknowledgedPresent: number;
  restoreSeconds: number;
  load: number;
}

export interface LatencyRow {
  synchronous: boolean;
  clients: number;
  latencyMs: number[];
  tps: number[];
  load: number[];
}

export interface PitrBenchmark {
  scale: number;
  databaseBytes: number;
  serverVersion: string;
  repetitions: number;
  backup: TimedRow[];
  restore: TimedRow[];
  /** Where the time of each `restore --latest --target-dir --port` went, from the agent's log. */
  phases: RestorePhases[];
  trials: RecoveryTrial[];
  latency: LatencyRow[];
  lag: { seconds: number; tps: number; walBytes: number; maxBytes: number; maxFlushLagSeconds: number; maxAgentLagSeconds: number; finalBytes: number; samples: number; load: number };
  load: [number, number];
  minutes: number;
}

export interface PitrBenchOptions {
  scale?: number;
  repetitions?: number;
  trials?: number;
  syncTrials?: number;
  print?: (line: string) => void;
}

const postgresIds = () => ({ uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) });

function run(file: string, args: string[], options: { env?: NodeJS.ProcessEnv; asPostgres?: boolean; timeoutMs?: number } = {}): Promise<string> {
  const ids = options.asPostgres ? postgresIds() : {};
  return new Promise((resolve, reject) => {
    execFile(file, args, { env: { ...process.env, ...options.env }, cwd: '/', timeout: options.timeoutMs ?? 1_200_000, maxBuffer: 64 * 1024 * 1024, ...ids }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${path.basename(file)} ${args.join(' ')} failed: ${error.message}\n${String(stderr).slice(-2000)}`));
      else resolve(String(stdout) + String(stderr));
    });
  });
}

async function query<T extends Record<string, unknown>>(connection: ClientConfig, text: string, values: unknown[] = []): Promise<T[]> {
  const client = new Client(connection);
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/** Every table's row count and sum of 64-bit row hashes: equal on both sides means the same rows. */
async function digest(connection: ClientConfig): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const table of DIGEST_TABLES) {
    const [row] = await query<{ d: string }>(connection, `SELECT count(*) || ' rows, hash sum ' || coalesce(sum(hashtextextended(t::text, 0)::numeric), 0) AS d FROM ${table} t`);
    result[table] = row.d;
  }
  return result;
}

function sameDigest(expected: Record<string, string>, actual: Record<string, string>, what: string): void {
  const differ = DIGEST_TABLES.filter((t) => expected[t] !== actual[t]);
  if (differ.length) throw new Error(`${what}: contents differ from the source in ${differ.map((t) => `${t} (${actual[t]} instead of ${expected[t]})`).join(', ')}`);
}

const postmasterPid = (pgdata: string) => Number(fs.readFileSync(path.join(pgdata, 'postmaster.pid'), 'utf8').split('\n')[0]);

/** Drops the clean page cache (after a sync: nothing is lost), where the bench runs as root; a no-op elsewhere. */
function dropPageCache(): void {
  if (process.getuid?.() === 0) fs.writeFileSync('/proc/sys/vm/drop_caches', '1');
}

/** A Postgres started with pg_ctl on a data directory (a copy, or a restore) and stopped the same way. */
class LocalServer {
  constructor(
    readonly pgdata: string,
    readonly port: number,
    readonly binDir: string,
  ) {}

  static async start(pgdata: string, port: number, binDir: string, settings: Record<string, string> = {}): Promise<LocalServer> {
    const options = Object.entries({ port: String(port), listen_addresses: '127.0.0.1', unix_socket_directories: '', ...settings })
      .map(([k, v]) => `-c ${k}=${v === '' ? "''" : `'${v.replace(/'/g, "''")}'`}`)
      .join(' ');
    await run(path.join(binDir, 'pg_ctl'), ['--pgdata', pgdata, '--options', options, '--log', `${pgdata}.log`, '--wait', '--silent', 'start'], { asPostgres: true });
    return new LocalServer(pgdata, port, binDir);
  }

  async stop(): Promise<void> {
    if (fs.existsSync(path.join(this.pgdata, 'postmaster.pid'))) await run(path.join(this.binDir, 'pg_ctl'), ['--pgdata', this.pgdata, '--mode', 'fast', '--wait', '--silent', 'stop'], { asPostgres: true });
  }

  /** SIGKILL to the postmaster and every backend at once: the host is gone, nothing is shut down. */
  killAll(): void {
    killTree(postmasterPid(this.pgdata));
  }
}

/**
 * The agent through its commands, as the backup container runs it: as a user of its own that owns
 * the backup volume (the image's `tenantry`, here the OS user postgres), not as root. An agent run
 * as root hands recovery to the OS user postgres, which cannot read the 0600 WAL files a receiver
 * running as another user wrote.
 */
class AgentProcess {
  private serving?: LongRunning;

  constructor(
    readonly backupDir: string,
    readonly httpPort: number,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  static async create(backupDir: string, pgPort: number, superuserPassword: string): Promise<AgentProcess> {
    const httpPort = await freePort();
    const config = {
      tenant: 'bench',
      environment: 'bench',
      timeZone: 'UTC',
      backupDir,
      http: { port: httpPort, host: '127.0.0.1' },
      jobs: [
        {
          name: PITR_JOB,
          kind: 'postgres-pitr',
          schedule: '0 3 * * *',
          retention: { daily: 100, weekly: 0, monthly: 0 },
          offsite: false,
          pitr: { host: '127.0.0.1', port: pgPort, user: REPLICATOR.user, passwordEnv: 'PITR_PASSWORD', slot: SLOT, windowDays: 7, maxLagSeconds: 60, maxSlotWalKeepMb: 8192, databases: ['bench'] },
        },
        {
          name: LOGICAL_JOB,
          kind: 'postgres',
          schedule: '0 3 * * *',
          retention: { daily: 100, weekly: 0, monthly: 0 },
          offsite: false,
          postgres: { host: '127.0.0.1', port: pgPort, user: 'postgres', passwordEnv: 'PG_PASSWORD', databases: ['bench'], parallelJobs: 2 },
        },
      ],
    };
    parseAgentConfig(config, 'bench config');
    fs.mkdirSync(backupDir, { recursive: true });
    const ids = postgresIds();
    fs.chownSync(backupDir, ids.uid, ids.gid);
    return new AgentProcess(backupDir, httpPort, {
      PATH: process.env.PATH,
      // The recovery server's socket folder (the container's /tmp); the bench's own TMPDIR is root's.
      TMPDIR: '/tmp',
      [CONFIG_JSON_ENV]: JSON.stringify(config),
      PITR_PASSWORD: REPLICATOR.password,
      PG_PASSWORD: superuserPassword,
      [RESTORE_CREDENTIAL_ENV.userEnv]: 'postgres',
      [RESTORE_CREDENTIAL_ENV.passwordEnv]: superuserPassword,
    });
  }

  command(args: string[]): Promise<string> {
    return run(process.execPath, [CLI, ...args], { env: this.env, asPostgres: true });
  }

  /** `serve` (the WAL receiver runs while it does), ready once pg_receivewal streams. */
  async serve(): Promise<void> {
    this.serving = await startLongRunning('tenantry-agent serve', [process.execPath, CLI, 'serve'], { env: this.env, owner: postgresIds(), stopSignal: 'SIGTERM', emergencySignal: 'SIGKILL' }, async () => (await this.metric('tenantry_pitr_receiver_up')) === 1, 60_000);
  }

  async stop(): Promise<void> {
    await this.serving?.stop();
    this.serving = undefined;
  }

  metric(name: string): Promise<number | undefined> {
    return agentMetric(this.httpPort, name, PITR_JOB);
  }

  /** The newest promoted backup of a job: its folder and manifest size. */
  newest(job: string): { id: string; sizeBytes: number } {
    const dir = path.join(this.backupDir, job);
    const ids = fs.readdirSync(dir).filter((name) => fs.existsSync(path.join(dir, name, 'manifest.json'))).sort();
    const id = ids[ids.length - 1];
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, id, 'manifest.json'), 'utf8')) as { sizeBytes: number };
    return { id, sizeBytes: manifest.sizeBytes };
  }
}

export interface RestorePhases {
  /** Node start-up, config, choosing the base backup and checking the WAL. */
  prepare: number;
  /** Base backup extracted, recovery server started. */
  extract: number;
  /** WAL replayed to the end of the archive, promoted, consistency checks. */
  replay: number;
  /** Clean shutdown, then the server started on its own (pg_ctl). */
  restart: number;
}

/** The phases of one restore from the times of its log lines (JSON, one per line). */
function restorePhases(output: string, began: number, ended: number): RestorePhases {
  const at = (msg: string) => {
    const line = output.split('\n').find((l) => l.includes(`"msg":"${msg}"`));
    if (!line) throw new Error(`the restore's output has no "${msg}" line:\n${output.slice(-2000)}`);
    return Date.parse((JSON.parse(line) as { time: string }).time);
  };
  const [started, server, promoted] = [at('restore to a point started'), at('recovery server started'), at('recovery promoted')];
  return { prepare: (started - began) / 1000, extract: (server - started) / 1000, replay: (promoted - server) / 1000, restart: (ended - promoted) / 1000 };
}

/** Waits until the receiver has flushed all WAL the server has flushed. */
async function receiverCaughtUp(connection: ClientConfig): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const [row] = await query<{ behind: boolean }>(connection, `SELECT coalesce((SELECT flush_lsn < pg_current_wal_flush_lsn() FROM pg_stat_replication WHERE application_name = $1), true) AS behind`, [RECEIVER_APPLICATION_NAME]);
    if (!row.behind) return;
    await sleep(100);
  }
  throw new Error('the WAL receiver did not catch up within 60 s');
}

function pgbench(binDir: string, env: NodeJS.ProcessEnv, args: string[]): ChildProcess {
  return spawn(path.join(binDir, 'pgbench'), args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

function pgbenchResult(child: ChildProcess): Promise<{ tps: number; latencyMs: number; output: string }> {
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return new Promise((resolve) =>
    child.once('close', () => resolve({ tps: Number(/tps = ([\d.]+)/.exec(output)?.[1] ?? NaN), latencyMs: Number(/latency average = ([\d.]+) ms/.exec(output)?.[1] ?? NaN), output })),
  );
}

export async function runPitrBenchmark(options: PitrBenchOptions = {}): Promise<PitrBenchmark> {
  const began = Date.now();
  const scale = options.scale ?? Number(process.env.BENCH_PG_SCALE ?? 70);
  const repetitions = options.repetitions ?? Number(process.env.BENCH_REPETITIONS ?? 3);
  const trialCount = options.trials ?? Number(process.env.BENCH_PITR_TRIALS ?? 10);
  const syncTrialCount = options.syncTrials ?? Number(process.env.BENCH_PITR_SYNC_TRIALS ?? 3);
  const print = options.print ?? (() => undefined);
  const load: [number, number] = [load1(), 0];
  // BENCH_PG_MAJOR=17: the servers, the bench's own tools and the agent's all of that version.
  const major = Number(process.env.BENCH_PG_MAJOR ?? DEFAULT_MAJOR);
  const chosen = postgresVersionsUnderTest().find((v) => v.major === major);
  if (!chosen) throw new Error(`BENCH_PG_MAJOR=${major}: the tests' PostgreSQL versions are ${postgresVersionsUnderTest().map((v) => v.major).join(', ')}`);
  process.env.PATH = `${chosen.binDir}:${process.env.PATH}`;
  const server: PostgresServer = await startPostgres({ binDir: chosen.binDir, parameters: { wal_level: 'replica', max_wal_senders: '10', max_replication_slots: '10', max_slot_wal_keep_size: '8GB' } });
  // The logical restores load into another server: loading into the archived one would add their
  // WAL (twice the database) to what every later restore to latest replays. Without autovacuum:
  // the databases they load stay until the comparison ends (below), and vacuuming and analysing
  // each 1.1 GB load would share the two cores and the disk with the timed steps after it.
  const target: PostgresServer = await startPostgres({ binDir: chosen.binDir, password: server.password, parameters: { autovacuum: 'off' } });
  const binDir = server.binDir;
  const work = tempDir('bench-pitr');
  const env = server.env;
  const source: ClientConfig = { host: server.host, port: server.port, user: 'postgres', password: server.password, database: 'bench' };
  const admin: ClientConfig = { ...source, database: 'postgres' };
  const targetAdmin: ClientConfig = { ...admin, port: target.port };
  let agent: AgentProcess | undefined;
  const timed = async (connection: ClientConfig, work: () => Promise<unknown>, coldCache = false) => {
    await query(connection, 'CHECKPOINT');
    execFileSync('sync');
    if (coldCache) dropPageCache();
    const start = performance.now();
    await work();
    return (performance.now() - start) / 1000;
  };
  try {
    print(`pgbench -i -s ${scale} on port ${server.port} ...`);
    await query(admin, `CREATE ROLE ${REPLICATOR.user} LOGIN REPLICATION PASSWORD '${REPLICATOR.password}'`);
    await query(admin, `GRANT pg_read_all_data TO ${REPLICATOR.user}`);
    await query(admin, 'CREATE DATABASE bench');
    execFileSync(path.join(binDir, 'pgbench'), ['-i', '-s', String(scale), '-q', 'bench'], { env: { ...process.env, ...env }, stdio: 'ignore' });
    await query(source, ACK_TABLE_DDL(ACKS));
    await query(source, `CREATE TABLE ${PROBE} (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())`);
    const databaseBytes = Number((await query<{ size: string }>(admin, "SELECT pg_database_size('bench') AS size"))[0].size);
    const serverVersion = (await query<{ v: string }>(admin, "SELECT current_setting('server_version') AS v"))[0].v;
    const expected = await digest(source);

    agent = await AgentProcess.create(path.join(work, 'agent'), server.port, server.password);
    await agent.serve();
    const targetAgent = await AgentProcess.create(agent.backupDir, target.port, target.password);
    print(`agent serving, receiver streaming (http ${agent.httpPort})`);

    // 1. Base backup, alternating.
    const dumpFile = path.join(work, 'bench.sql.gz');
    const backup: Record<string, TimedRow> = {
      dump: { method: 'pg_dump | gzip (plain SQL, gzip -6)', seconds: [], load: [] },
      pitr: { method: `tenantry-agent run ${PITR_JOB} (pg_basebackup --compress=${BASE_BACKUP_COMPRESSION}; check: tars streamed against backup_manifest (${manifestChecksum()}) + pg_waldump)`, seconds: [], load: [] },
      basebackup: { method: `pg_basebackup alone (the job's flags, no check)`, seconds: [], load: [] },
      logical: { method: `tenantry-agent run ${LOGICAL_JOB} (logical, issue 4)`, seconds: [], load: [] },
    };
    const step = async (row: TimedRow, connection: ClientConfig, work: () => Promise<unknown>, coldCache = false) => {
      row.load.push(load1());
      row.seconds.push(await timed(connection, work, coldCache));
    };
    for (let i = 1; i <= repetitions; i++) {
      await step(backup.dump, admin, () => runPipeline({ file: 'pg_dump', args: ['--dbname=bench'] }, { file: 'sh', args: ['-c', 'exec gzip > "$0"', dumpFile] }, { env }));
      backup.dump.sizeBytes = fs.statSync(dumpFile).size;
      await step(backup.pitr, admin, () => agent!.command(['run', PITR_JOB]));
      backup.pitr.sizeBytes = agent.newest(PITR_JOB).sizeBytes;
      const raw = path.join(work, 'basebackup');
      await step(backup.basebackup, admin, () =>
        run(path.join(binDir, 'pg_basebackup'), [`--host=127.0.0.1`, `--port=${server.port}`, `--username=${REPLICATOR.user}`, `--pgdata=${raw}`, '--format=tar', '--wal-method=stream', '--checkpoint=fast', `--compress=${BASE_BACKUP_COMPRESSION}`, `--manifest-checksums=${manifestChecksum()}`], { env: { PGPASSWORD: REPLICATOR.password } }),
      );
      backup.basebackup.sizeBytes = Number(execFileSync('du', ['-sb', raw]).toString().split('\t')[0]);
      fs.rmSync(raw, { recursive: true, force: true });
      await step(backup.logical, admin, () => agent!.command(['run', LOGICAL_JOB]));
      backup.logical.sizeBytes = agent.newest(LOGICAL_JOB).sizeBytes;
      print(`run ${i}: ${Object.values(backup).map((r) => `${r.method.split(' (')[0]} ${r.seconds[i - 1].toFixed(1)} s`).join(', ')}`);
    }

    // 2. Restore to a server that accepts connections, alternating; contents compared after each.
    const restore: Record<string, TimedRow> = {
      psql: { method: 'gunzip | psql (into a new database on another server)', seconds: [], load: [] },
      logical: { method: `tenantry-agent restore ${LOGICAL_JOB} --from latest --target <new database> (on another server)`, seconds: [], load: [] },
      scratch: { method: `tenantry-agent restore ${PITR_JOB} --latest --target-dir <dir> --port <port> (recovered, then started)`, seconds: [], load: [] },
      dedicated: { method: `tenantry-agent restore ${PITR_JOB} --latest, restore-on-start script, server start (the dedicated server's path)`, seconds: [], load: [] },
    };
    const phases: RestorePhases[] = [];
    const wrapper = path.join(work, 'restore-on-start.sh');
    fs.writeFileSync(wrapper, renderRestoreOnStart({ backupMount: agent.backupDir }), { mode: 0o755 });
    const ids = postgresIds();
    // Every run's copies (about 1,300 files each) stay until the comparison ends: on ext4 without a
    // journal (this machine's disk) creating files within a minute of deleting many others costs
    // far more, as the kernel skips recently deleted inodes one by one (recently_deleted() in
    // fs/ext4/ialloc.c; with perf, half of tar's time), which the next timed step would pay for
    // the previous step's clean-up. Kept, they grow the page cache by about 5 GB a run, and from
    // the second run on every method slowed down (gunzip | psql 6.4-7.5 s in runs 1-2, 9.9-11.7 s
    // in run 3), so each restore starts with the clean page cache dropped (root only): every side
    // cold, reading its dump or base backup from disk.
    const removeLater: (() => Promise<unknown>)[] = [];
    for (let i = 1; i <= repetitions; i++) {
      await query(targetAdmin, `CREATE DATABASE plain_${i}`);
      await step(restore.psql, targetAdmin, () => runPipeline({ file: 'gunzip', args: ['-c', dumpFile] }, { file: 'psql', args: ['--quiet', '--no-psqlrc', '-v', 'ON_ERROR_STOP=1', `--dbname=plain_${i}`] }, { env: target.env }), true);
      sameDigest(expected, await digest({ ...targetAdmin, database: `plain_${i}` }), 'gunzip | psql');
      removeLater.push(() => query(targetAdmin, `DROP DATABASE plain_${i}`));

      await step(restore.logical, targetAdmin, () => targetAgent.command(['restore', LOGICAL_JOB, '--from', 'latest', '--target', `logical_${i}`]), true);
      sameDigest(expected, await digest({ ...targetAdmin, database: `logical_${i}` }), 'the agent\'s logical restore');
      removeLater.push(() => query(targetAdmin, `DROP DATABASE logical_${i}`));

      const scratchDir = path.join(work, `scratch-${i}`);
      const scratchPort = await freePort();
      let output = '';
      let began = 0;
      await step(restore.scratch, admin, async () => {
        began = Date.now();
        output = await agent!.command(['restore', PITR_JOB, '--latest', '--target-dir', scratchDir, '--port', String(scratchPort)]);
      }, true);
      phases.push(restorePhases(output, began, Date.now()));
      const scratch = new LocalServer(scratchDir, scratchPort, binDir);
      sameDigest(expected, await digest({ ...source, port: scratchPort }), 'restore --latest --target-dir --port');
      await scratch.stop();
      removeLater.push(() => fs.promises.rm(scratchDir, { recursive: true, force: true }));

      // The Postgres container's data volume: owned by postgres, as the image's is.
      const volume = path.join(work, `volume-${i}`);
      fs.mkdirSync(volume, { mode: 0o700 });
      fs.chownSync(volume, ids.uid, ids.gid);
      const pgdata = path.join(volume, 'pgdata');
      const dedicatedPort = await freePort();
      await step(restore.dedicated, admin, async () => {
        await agent!.command(['restore', PITR_JOB, '--latest']);
        await run('/bin/sh', [wrapper, 'true'], { env: { PGDATA: pgdata } });
        await LocalServer.start(pgdata, dedicatedPort, binDir);
      }, true);
      sameDigest(expected, await digest({ ...source, port: dedicatedPort }), 'restore --latest applied by the restore-on-start script');
      await new LocalServer(pgdata, dedicatedPort, binDir).stop();
      removeLater.push(() => fs.promises.rm(volume, { recursive: true, force: true }));
      print(`run ${i}: ${Object.values(restore).map((r) => `${r.method.split(' (')[0].split(' --')[0]} ${r.seconds[i - 1].toFixed(1)} s`).join(', ')} (contents identical)`);
    }
    for (const remove of removeLater) await remove();
    fs.rmSync(path.join(agent.backupDir, PITR_JOB, 'restores'), { recursive: true, force: true });

    // 3. Commit latency with and without synchronous replication to the receiver, alternating.
    const probeScript = path.join(work, 'probe.sql');
    fs.writeFileSync(probeScript, `INSERT INTO ${PROBE} DEFAULT VALUES;\n`);
    const latency: LatencyRow[] = [];
    const seconds = Number(process.env.BENCH_PITR_LATENCY_SECONDS ?? 6);
    for (const clients of [1, 4]) {
      for (const synchronous of [false, true]) latency.push({ synchronous, clients, latencyMs: [], tps: [], load: [] });
    }
    const setSynchronous = async (on: boolean) => {
      await query(admin, `ALTER SYSTEM SET synchronous_standby_names = '${on ? `"${RECEIVER_APPLICATION_NAME}"` : ''}'`);
      await query(admin, 'SELECT pg_reload_conf()');
      for (let i = 0; i < 100; i++) {
        const [row] = await query<{ state: string | null }>(admin, 'SELECT (SELECT sync_state FROM pg_stat_replication WHERE application_name = $1) AS state', [RECEIVER_APPLICATION_NAME]);
        if (row.state === (on ? 'sync' : 'async')) return;
        await sleep(100);
      }
      throw new Error(`the receiver did not become ${on ? 'a synchronous' : 'an asynchronous'} standby`);
    };
    // Single commits are short and the machine is shared: more alternations than the other comparisons.
    const latencyRepetitions = Math.max(repetitions, Number(process.env.BENCH_PITR_LATENCY_REPETITIONS ?? 5));
    for (let i = 1; i <= latencyRepetitions; i++) {
      for (const row of latency) {
        await setSynchronous(row.synchronous);
        row.load.push(load1());
        const result = await pgbenchResult(pgbench(binDir, env, ['-n', '-c', String(row.clients), '-j', String(Math.min(row.clients, 2)), '-T', String(seconds), '-f', probeScript, 'bench']));
        if (!Number.isFinite(result.latencyMs)) throw new Error(`pgbench: ${result.output.slice(-1000)}`);
        row.latencyMs.push(result.latencyMs);
        row.tps.push(result.tps);
      }
      print(`latency run ${i}: ${latency.map((r) => `${r.clients} client(s) ${r.synchronous ? 'sync' : 'async'} ${r.latencyMs[i - 1].toFixed(2)} ms`).join(', ')}`);
    }
    await setSynchronous(false);

    // 4. Archive lag while pgbench runs at full speed (TPC-B-like, 4 clients on 2 cores).
    const lagSeconds = Number(process.env.BENCH_PITR_LAG_SECONDS ?? 20);
    const lagLoad = load1();
    const startLsn = (await query<{ lsn: string }>(admin, 'SELECT pg_current_wal_lsn()::text AS lsn'))[0].lsn;
    const full = pgbenchResult(pgbench(binDir, env, ['-n', '-c', '4', '-j', '2', '-T', String(lagSeconds), 'bench']));
    let finished = false;
    void full.then(() => (finished = true));
    let maxBytes = 0;
    let maxFlushLag = 0;
    let maxAgentLag = 0;
    let samples = 0;
    const sampler = new Client(admin);
    await sampler.connect();
    try {
      let lastAgentPoll = 0;
      while (!finished) {
        const [row] = (
          await sampler.query<{ bytes: string | null; lag: string | null }>(
            'SELECT pg_wal_lsn_diff(pg_current_wal_flush_lsn(), flush_lsn)::text AS bytes, extract(epoch FROM flush_lag)::text AS lag FROM pg_stat_replication WHERE application_name = $1',
            [RECEIVER_APPLICATION_NAME],
          )
        ).rows;
        if (!row) throw new Error('the receiver disconnected during the full-speed run');
        maxBytes = Math.max(maxBytes, Number(row.bytes ?? 0));
        maxFlushLag = Math.max(maxFlushLag, Number(row.lag ?? 0));
        samples++;
        if (Date.now() - lastAgentPoll >= 1000) {
          lastAgentPoll = Date.now();
          maxAgentLag = Math.max(maxAgentLag, (await agent.metric('tenantry_pitr_archive_lag_seconds')) ?? 0);
        }
        await sleep(100);
      }
    } finally {
      await sampler.end();
    }
    const fullResult = await full;
    const walBytes = Number((await query<{ b: string }>(admin, 'SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::text AS b', [startLsn]))[0].b);
    const finalBytes = Number((await query<{ b: string | null }>(admin, 'SELECT (SELECT pg_wal_lsn_diff(pg_current_wal_flush_lsn(), flush_lsn) FROM pg_stat_replication WHERE application_name = $1)::text AS b', [RECEIVER_APPLICATION_NAME]))[0].b ?? 0);
    const lag = { seconds: lagSeconds, tps: fullResult.tps, walBytes, maxBytes, maxFlushLagSeconds: maxFlushLag, maxAgentLagSeconds: maxAgentLag, finalBytes, samples, load: lagLoad };
    print(`full speed: ${fullResult.tps.toFixed(0)} tps, ${(walBytes / 1e6).toFixed(0)} MB of WAL in ${lagSeconds} s; max lag ${(maxBytes / 1024).toFixed(0)} KiB, flush_lag ${(maxFlushLag * 1000).toFixed(1)} ms`);

    // 5. Recovery point. The database as it is now, cleanly shut down, is each trial's starting point.
    await agent.stop();
    agent = undefined;
    // Each trial's agent makes its own slot on its own copy.
    await query(admin, "SELECT pg_drop_replication_slot($1)", [SLOT]);
    await run(path.join(binDir, 'pg_ctl'), ['--pgdata', server.dataDir, '--mode', 'fast', '--wait', '--silent', 'stop'], { asPostgres: true });
    const trials: RecoveryTrial[] = [];
    const plan = [...Array(trialCount).fill(false), ...Array(syncTrialCount).fill(true)] as boolean[];
    for (const [n, synchronous] of plan.entries()) {
      const trialDir = tempDir(`bench-pitr-trial-${n + 1}`);
      const trialLoad = load1();
      const live = path.join(trialDir, 'live');
      execFileSync('cp', ['-a', server.dataDir, live]);
      fs.rmSync(path.join(live, 'postmaster.pid'), { force: true });
      const livePort = await freePort();
      const liveServer = await LocalServer.start(live, livePort, binDir, synchronous ? { synchronous_standby_names: `"${RECEIVER_APPLICATION_NAME}"` } : {});
      const trialAgent = await AgentProcess.create(path.join(trialDir, 'agent'), livePort, server.password);
      const liveConnection: ClientConfig = { ...source, port: livePort };
      let writer: CommitWriter | undefined;
      let load: ChildProcess | undefined;
      let restored: LocalServer | undefined;
      try {
        await trialAgent.serve();
        await trialAgent.command(['run', PITR_JOB]);
        await receiverCaughtUp({ ...admin, port: livePort });
        load = pgbench(binDir, { ...env, PGPORT: String(livePort) }, ['-n', '-c', '2', '-j', '2', '-T', '120', 'bench']);
        void pgbenchResult(load);
        writer = new CommitWriter(liveConnection, ACKS, 2);
        await writer.start();
        // A moment that falls anywhere in a commit's round trip: 4 s plus a varying fraction of a second.
        await sleep(4000 + ((n * 397) % 1000));
        const lostAt = Date.now();
        liveServer.killAll();
        await writer.stop();
        load.kill('SIGKILL');
        fs.rmSync(live, { recursive: true, force: true });
        const restoredDir = path.join(trialDir, 'restored');
        const restoredPort = await freePort();
        const restoreStart = performance.now();
        await trialAgent.command(['restore', PITR_JOB, '--latest', '--target-dir', restoredDir, '--port', String(restoredPort)]);
        const restoreSeconds = (performance.now() - restoreStart) / 1000;
        restored = new LocalServer(restoredDir, restoredPort, binDir);
        const present = await rowsPresent({ ...source, port: restoredPort }, ACKS);
        const compared = compareLatest(writer.commits, present.rows, lostAt);
        if (compared.unknown > 0 || present.badChecksums > 0) throw new Error(`trial ${n + 1}: the restore holds ${compared.unknown} rows never written and ${present.badChecksums} with a wrong checksum`);
        const firstSent = Math.min(...writer.commits.map((c) => c.sentAt));
        trials.push({
          synchronous,
          acknowledged: compared.acknowledged,
          commitsPerSecond: compared.acknowledged / ((lostAt - firstSent) / 1000),
          lost: compared.lost.length,
          lostSeconds: compared.lostSeconds,
          unacknowledgedPresent: compared.unacknowledgedPresent,
          restoreSeconds,
          load: trialLoad,
        });
        print(`trial ${n + 1}${synchronous ? ' (synchronous)' : ''}: ${compared.acknowledged} acknowledged, ${compared.lost.length} lost (${(compared.lostSeconds * 1000).toFixed(0)} ms), restore ${restoreSeconds.toFixed(1)} s`);
      } finally {
        if (writer) await writer.stop();
        load?.kill('SIGKILL');
        await restored?.stop().catch(() => undefined);
        if (fs.existsSync(path.join(live, 'postmaster.pid'))) liveServer.killAll();
        await trialAgent.stop();
        fs.rmSync(trialDir, { recursive: true, force: true });
      }
    }

    load[1] = load1();
    return {
      scale,
      databaseBytes,
      serverVersion,
      repetitions,
      backup: Object.values(backup),
      restore: Object.values(restore),
      phases,
      trials,
      latency,
      lag,
      load,
      minutes: (Date.now() - began) / 60_000,
    };
  } finally {
    await agent?.stop().catch(() => undefined);
    await target.stop();
    await server.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

const range = (values: number[], digits: number) => (values.length > 1 ? `${Math.min(...values).toFixed(digits)}-${Math.max(...values).toFixed(digits)}` : '-');

export function formatPitrBenchmark(result: PitrBenchmark): string {
  const cores = os.cpus().length;
  const header = [
    `Point-in-time recovery vs logical: pgbench -i -s ${result.scale} (${(result.databaseBytes / 1e9).toFixed(2)} GB on disk), server ${result.serverVersion}, 127.0.0.1; medians of ${result.repetitions} alternating runs`,
    `machine: ${cores} cores (nproc), ${os.cpus()[0]?.model ?? 'unknown CPU'}; load average ${result.load[0].toFixed(1)} at start, ${result.load[1].toFixed(1)} at end; ${result.minutes.toFixed(1)} min`,
    `${versionLine(['pg_dump', '--version'])}; ${versionLine(['pg_basebackup', '--version'])}; ${versionLine(['gzip', '--version'])}; ${versionLine(['zstd', '--version'])}`,
    '',
  ];
  const timedTable = (rows: TimedRow[], what: string, target: number) => {
    const base = median(rows[0].seconds);
    return textTable(
      [what, 's (median)', 's (range)', 'size (bytes)', `x faster than ${rows[0].method.split(' (')[0]}`, 'load avg'],
      rows.map((r) => [r.method, median(r.seconds).toFixed(2), range(r.seconds, 2), r.sizeBytes === undefined ? '-' : r.sizeBytes.toLocaleString('en-US'), `${(base / median(r.seconds)).toFixed(2)}x`, range(r.load, 1)]),
    ).concat(`\ntarget: >= ${target}x, i.e. <= ${(base / target).toFixed(2)} s`);
  };
  const latency = textTable(
    ['commit', 'clients', 'latency ms (median)', 'range', 'tps (median)', 'load avg'],
    result.latency.map((r) => [r.synchronous ? `synchronous_standby_names = '"${RECEIVER_APPLICATION_NAME}"'` : 'asynchronous (the default)', String(r.clients), median(r.latencyMs).toFixed(2), range(r.latencyMs, 2), median(r.tps).toFixed(0), range(r.load, 1)]),
  );
  const costs = [1, 4].map((clients) => {
    const [a, s] = [false, true].map((sync) => result.latency.find((r) => r.clients === clients && r.synchronous === sync)!);
    return `${clients} client(s): +${(median(s.latencyMs) - median(a.latencyMs)).toFixed(2)} ms per commit (${(median(s.latencyMs) / median(a.latencyMs)).toFixed(2)}x)`;
  });
  const trialRows = (sync: boolean) => result.trials.filter((t) => t.synchronous === sync);
  const trials = textTable(
    ['trial', 'commit', 'acknowledged', 'commits/s', 'lost', 'lost within ms', 'unacked but kept', 'restore s', 'load avg'],
    result.trials.map((t, i) => [String(i + 1), t.synchronous ? 'synchronous' : 'asynchronous', String(t.acknowledged), t.commitsPerSecond.toFixed(0), String(t.lost), (t.lostSeconds * 1000).toFixed(0), String(t.unacknowledgedPresent), t.restoreSeconds.toFixed(1), t.load.toFixed(1)]),
  );
  const summary = (sync: boolean) => {
    const rows = trialRows(sync);
    if (!rows.length) return `${sync ? 'synchronous' : 'asynchronous'}: no trials`;
    return `${sync ? 'synchronous' : 'asynchronous'}, ${rows.length} trials: median ${median(rows.map((t) => t.lost))} commits lost (max ${Math.max(...rows.map((t) => t.lost))}), median ${(median(rows.map((t) => t.lostSeconds)) * 1000).toFixed(0)} ms of writes lost (max ${(Math.max(...rows.map((t) => t.lostSeconds)) * 1000).toFixed(0)} ms); target: median < 1000 ms`;
  };
  const lag = result.lag;
  return [
    ...header,
    'Base backup',
    timedTable(result.backup, 'backup method', 2),
    '',
    'Restore to a server that accepts connections, contents compared with the source (row count and hash sum of every table)',
    timedTable(result.restore, 'restore method', 3),
    `restore --latest --target-dir --port, medians from the agent's log: ${(['prepare', 'extract', 'replay', 'restart'] as const).map((k) => `${k} ${median(result.phases.map((p) => p[k])).toFixed(2)} s`).join(', ')}`,
    '  (prepare: node start-up, base backup and WAL checks; extract: base backup unpacked, recovery server started; replay: WAL to the end of the archive, promotion, checks; restart: clean shutdown, pg_ctl start)',
    '',
    'Recovery point: pgbench -c 2 plus 2 connections recording every acknowledged commit; SIGKILL of every server process, data directory deleted, restore --latest',
    trials,
    summary(false),
    summary(true),
    '',
    `Commit latency: ${result.latency[0].latencyMs.length} alternations of pgbench -n -T ${process.env.BENCH_PITR_LATENCY_SECONDS ?? 6} of one single-row INSERT per transaction, with the agent's receiver asynchronous and synchronous`,
    latency,
    `cost of zero loss: ${costs.join('; ')}`,
    '',
    `Archive lag at full speed: pgbench -c 4 -j 2 -T ${lag.seconds} (TPC-B-like), load avg ${lag.load.toFixed(1)}: ${lag.tps.toFixed(0)} tps, ${(lag.walBytes / 1e6).toFixed(0)} MB of WAL (${(lag.walBytes / 1e6 / lag.seconds).toFixed(1)} MB/s);`,
    `  max lag ${(lag.maxBytes / 1024).toFixed(0)} KiB behind the server's flushed WAL, max flush_lag ${(lag.maxFlushLagSeconds * 1000).toFixed(1)} ms (pg_stat_replication, ${lag.samples} samples every 100 ms);`,
    `  max tenantry_pitr_archive_lag_seconds ${lag.maxAgentLagSeconds.toFixed(1)} (the agent samples once a second); ${lag.finalBytes} bytes behind after pgbench ended`,
  ].join('\n');
}

if (require.main === module) runBenchmarkProgram((print) => runPitrBenchmark({ print }), formatPitrBenchmark);

/**
 * Backup and restore of a ~1 GB Postgres database (pgbench -i -s 70): Tenantry's agent (a real
 * `runBackup`: big tables in ctid-range chunks through binary COPY and zstd, pg_dump -Fd -j2 -Z5
 * for the rest, all in one exported snapshot, with row counts, globals, pg_restore --list, sha256
 * manifest; a real `restoreBackup`: pre-data, then chunks and archive data on 2 workers, then
 * post-data) against the common
 * `pg_dump | gzip` and `gunzip | psql`. Each side runs `repetitions` times, alternating, on a
 * server started like the tests start theirs, every step after a CHECKPOINT and a sync; the
 * table shows medians.
 * Run: `npx tsc && node dist/bench/backup.js` (BENCH_PG_SCALE, BENCH_REPETITIONS and BENCH_PG_BIN override).
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { Client } from 'pg';
import { textTable } from '../e2e/text-table';
import { inPool } from '../runtime/agent/concurrency';
import { parseAgentConfig } from '../runtime/agent/config';
import { runPipeline, runTool } from '../runtime/agent/exec';
import { createLogger } from '../runtime/agent/log';
import { RESTORE_SESSION } from '../runtime/agent/jobs/postgres/server';
import { blockRanges, rangeCondition } from '../runtime/agent/jobs/postgres/chunks';
import { Agent, restoreBackup, runBackup } from '../runtime/agent/runner';
import { AgentState } from '../runtime/agent/status';
import { PostgresServer, startPostgres, tempDir } from '../test/helpers/servers';
import { runBenchmarkProgram, versionLine } from './program';

export interface BackupBenchRow {
  method: string;
  restoreMethod: string;
  backupSeconds: number;
  sizeBytes: number;
  restoreSeconds: number;
}

export interface BackupBenchmark {
  rows: BackupBenchRow[];
  /** The same work done by the server alone, with no client: how much of each side is the server's own. */
  serverAlone: { backupSeconds: number; restoreSeconds: number };
  scale: number;
  databaseBytes: number;
  serverVersion: string;
  repetitions: number;
  /** 1-minute load average before and after: the machine may be shared. */
  load: [number, number];
}

export interface BackupBenchOptions {
  scale?: number;
  repetitions?: number;
  print?: (line: string) => void;
}

async function sql(server: PostgresServer, database: string, text: string, options?: string): Promise<string> {
  const client = new Client({ host: server.host, port: server.port, user: 'postgres', password: server.password, database, options });
  await client.connect();
  try {
    const result = await client.query(text);
    return String(Object.values(result.rows[0] ?? {})[0] ?? '');
  } finally {
    await client.end();
  }
}

/**
 * Times `work` after a CHECKPOINT and a sync, so that no step pays for the writeback of the one
 * before it (a restore leaves about 2 GB to write; this VM's buffered writes run at ~300 MB/s).
 */
async function timed(server: PostgresServer, work: () => Promise<unknown>): Promise<number> {
  await sql(server, 'postgres', 'CHECKPOINT');
  execFileSync('sync');
  const start = performance.now();
  await work();
  return (performance.now() - start) / 1000;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** The split tables of a Tenantry backup's one database, from its manifest. */
type SplitTables = { qualified: string; columns: string; format: string; parts: { file: string }[] }[];

/**
 * The server's own share of a backup and a restore: the same work done by the server alone, side
 * by side on `workers` sessions as Tenantry's chunks run, with no client, socket, pipe or
 * compressor in the way. Backup: each ctid range of pgbench_accounts copied by the server to
 * /dev/null. Restore: pre-data, the chunks loaded by the server from server-side files
 * (decompressed beforehand, untimed) beside the archive's data, then post-data, with the agent's
 * session settings. Not a lower bound (a backend reading a file is not free either: Tenantry's
 * streamed restore has measured a little faster), but the server's own share: when it alone
 * takes about as long as the whole restore, only less server work can make the restore faster.
 * Superuser COPY to and from server files: a benchmark's tool, not the agent's.
 */
async function serverAlone(server: PostgresServer, backupDir: string, split: SplitTables, scratch: string, workers: number, database: string): Promise<{ backupSeconds: number; restoreSeconds: number }> {
  const blocks = Number(await sql(server, 'bench', "SELECT pg_relation_size('pgbench_accounts') / current_setting('block_size')::int"));
  const ranges = blockRanges(blocks, workers).map(rangeCondition);
  const backupSeconds = await timed(server, () => Promise.all(ranges.map((range) => sql(server, 'bench', `COPY (SELECT * FROM ONLY public.pgbench_accounts WHERE ${range}) TO '/dev/null' (FORMAT binary)`))));

  fs.mkdirSync(scratch, { recursive: true, mode: 0o755 });
  const loads = split.flatMap((table) =>
    table.parts.map((part, p) => {
      const file = path.join(scratch, `${path.basename(part.file)}.${p}`);
      execFileSync('zstd', ['--decompress', '--quiet', '--force', '-o', file, path.join(backupDir, part.file)]);
      fs.chmodSync(file, 0o644);
      return `COPY ${table.qualified} (${table.columns}) FROM '${file}' (FORMAT ${table.format})`;
    }),
  );
  const archive = path.join(backupDir, 'bench.dump');
  // The session settings of the agent's restore (RESTORE_SESSION in runtime/agent/jobs/postgres/server.ts).
  const pgRestore = (args: string[]) => runTool('pg_restore', [...args, `--jobs=${workers}`, `--dbname=${database}`, archive], { env: { ...server.env, PGOPTIONS: RESTORE_SESSION } });
  await sql(server, 'postgres', `CREATE DATABASE ${database}`);
  const restoreSeconds = await timed(server, async () => {
    await pgRestore(['--section=pre-data']);
    // Chunks `workers` at a time, as loadChunks runs them.
    await Promise.all([pgRestore(['--section=data']), inPool(loads, workers, undefined, (load) => sql(server, database, load, RESTORE_SESSION))]);
    await pgRestore(['--section=post-data']);
  });
  await sql(server, 'postgres', `DROP DATABASE ${database}`);
  fs.rmSync(scratch, { recursive: true, force: true });
  return { backupSeconds, restoreSeconds };
}

export async function runBackupBenchmark(options: BackupBenchOptions = {}): Promise<BackupBenchmark> {
  const scale = options.scale ?? Number(process.env.BENCH_PG_SCALE ?? 70);
  const repetitions = options.repetitions ?? Number(process.env.BENCH_REPETITIONS ?? 5);
  const print = options.print ?? (() => undefined);
  const load: [number, number] = [os.loadavg()[0], 0];
  // BENCH_PG_BIN: another PostgreSQL's bin directory (e.g. 17, from bench/fetch-postgres-trixie.sh)
  // for the server and for every client tool of both sides.
  const binDir = process.env.BENCH_PG_BIN;
  if (binDir) process.env.PATH = `${binDir}:${process.env.PATH ?? ''}`;
  const server = await startPostgres(binDir ? { binDir, parameters: { jit: 'off' } } : {});
  const work = tempDir('bench-backup');
  try {
    const env = server.env;
    print(`pgbench -i -s ${scale} on port ${server.port} ...`);
    await sql(server, 'postgres', 'CREATE DATABASE bench');
    execFileSync(path.join(server.binDir, 'pgbench'), ['-i', '-s', String(scale), '-q', 'bench'], { env: { ...process.env, ...env }, stdio: 'ignore' });
    const databaseBytes = Number(await sql(server, 'postgres', "SELECT pg_database_size('bench')"));
    const serverVersion = await sql(server, 'postgres', 'SHOW server_version');

    const config = parseAgentConfig(
      {
        tenant: 'bench',
        environment: 'bench',
        timeZone: 'UTC',
        backupDir: path.join(work, 'agent'),
        http: { port: 1 },
        jobs: [{ name: 'pg', kind: 'postgres', schedule: '@daily', retention: { daily: 100, weekly: 0, monthly: 0 }, offsite: false, postgres: { host: server.host, port: server.port, user: 'postgres', passwordEnv: 'PG_PASSWORD', databases: ['bench'], parallelJobs: 2 } }],
      },
      'bench config',
    );
    const agent: Agent = {
      config,
      state: new AgentState(config),
      log: createLogger(() => undefined),
      env: { PG_PASSWORD: server.password },
      notify: async () => undefined,
      signal: new AbortController().signal,
    };

    const common = { backup: [] as number[], restore: [] as number[], size: 0 };
    const tenantry = { backup: [] as number[], restore: [] as number[], size: 0 };
    const alone = { backup: [] as number[], restore: [] as number[] };
    for (let i = 1; i <= repetitions; i++) {
      const dumpFile = path.join(work, `plain-${i}.sql.gz`);
      common.backup.push(await timed(server, () => runPipeline({ file: 'pg_dump', args: ['--dbname=bench'] }, { file: 'sh', args: ['-c', 'exec gzip > "$0"', dumpFile] }, { env })));
      common.size = fs.statSync(dumpFile).size;
      await sql(server, 'postgres', `CREATE DATABASE plain_${i}`);
      common.restore.push(await timed(server, () => runPipeline({ file: 'gunzip', args: ['-c', dumpFile] }, { file: 'psql', args: ['--quiet', '--no-psqlrc', '-v', 'ON_ERROR_STOP=1', `--dbname=plain_${i}`] }, { env })));
      print(`run ${i}: pg_dump | gzip ${common.backup[i - 1].toFixed(1)} s, gunzip | psql ${common.restore[i - 1].toFixed(1)} s`);
      await sql(server, 'postgres', `DROP DATABASE plain_${i}`);
      fs.rmSync(dumpFile);

      let id = '';
      let split: SplitTables = [];
      tenantry.backup.push(await timed(server, async () => {
        const manifest = await runBackup(agent, config.jobs[0]);
        if (manifest.status !== 'ok') throw new Error(`Tenantry backup failed: ${manifest.error}`);
        id = manifest.id;
        tenantry.size = manifest.sizeBytes;
        split = (manifest.details as { databases: Record<string, { split?: SplitTables }> }).databases.bench.split ?? [];
      }));
      tenantry.restore.push(await timed(server, () => restoreBackup(agent, config.jobs[0], { from: id, target: `tenantry_${i}`, force: false, withGlobals: false, fromOffsite: false, ignoreVerification: false })));
      print(`run ${i}: tenantry-agent run ${tenantry.backup[i - 1].toFixed(1)} s, restore ${tenantry.restore[i - 1].toFixed(1)} s`);
      await sql(server, 'postgres', `DROP DATABASE tenantry_${i}`);

      const floor = await serverAlone(server, path.join(config.backupDir, 'pg', id), split, path.join(work, 'server-files'), 2, `alone_${i}`);
      alone.backup.push(floor.backupSeconds);
      alone.restore.push(floor.restoreSeconds);
      print(`run ${i}: the server alone: copy out ${floor.backupSeconds.toFixed(1)} s, load and index ${floor.restoreSeconds.toFixed(1)} s`);
    }
    load[1] = os.loadavg()[0];
    return {
      rows: [
        { method: 'pg_dump | gzip (plain SQL, gzip -6)', restoreMethod: 'gunzip | psql', backupSeconds: median(common.backup), sizeBytes: common.size, restoreSeconds: median(common.restore) },
        { method: 'tenantry-agent run (2 workers: big tables in ctid chunks, binary COPY | zstd -3; pg_dump -Fd -Z5 for the rest; row counts, globals, checks)', restoreMethod: 'tenantry-agent restore (pre-data; chunks and archive data on 2 workers; post-data -j2)', backupSeconds: median(tenantry.backup), sizeBytes: tenantry.size, restoreSeconds: median(tenantry.restore) },
      ],
      serverAlone: { backupSeconds: median(alone.backup), restoreSeconds: median(alone.restore) },
      scale,
      databaseBytes,
      serverVersion,
      repetitions,
      load,
    };
  } finally {
    await server.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export function formatBackupBenchmark(result: BackupBenchmark): string {
  const [baseline] = result.rows;
  const header = [
    `Postgres backup and restore: pgbench -i -s ${result.scale} (${(result.databaseBytes / 1e9).toFixed(2)} GB on disk), server ${result.serverVersion}, 127.0.0.1; median of ${result.repetitions} alternating runs`,
    `machine: ${os.cpus().length} cores (nproc), ${os.cpus()[0]?.model ?? 'unknown CPU'}; load average ${result.load[0].toFixed(1)} before, ${result.load[1].toFixed(1)} after`,
    `${versionLine(['pg_dump', '--version'])}; ${versionLine(['pg_restore', '--version'])}; ${versionLine(['gzip', '--version'])}; ${versionLine(['zstd', '--version'])}`,
    '',
  ];
  const table = textTable(
    ['backup method', 'backup s', 'size (bytes)', 'restore method', 'restore s', 'backup speed-up', 'restore speed-up'],
    result.rows.map((r) => [
      r.method,
      r.backupSeconds.toFixed(1),
      r.sizeBytes.toLocaleString('en-US'),
      r.restoreMethod,
      r.restoreSeconds.toFixed(1),
      `${(baseline.backupSeconds / r.backupSeconds).toFixed(2)}x`,
      `${(baseline.restoreSeconds / r.restoreSeconds).toFixed(2)}x`,
    ]),
  );
  const alone = result.serverAlone;
  const footer = [
    '',
    `2x targets: backup <= ${(baseline.backupSeconds / 2).toFixed(2)} s, restore <= ${(baseline.restoreSeconds / 2).toFixed(2)} s.`,
    `The server alone (no client: COPY to /dev/null and from server-side files, 2 sessions, then post-data): backup ${alone.backupSeconds.toFixed(2)} s, restore ${alone.restoreSeconds.toFixed(2)} s;`,
    `Tenantry's run is ${(result.rows[1].backupSeconds / alone.backupSeconds).toFixed(2)}x and its restore ${(result.rows[1].restoreSeconds / alone.restoreSeconds).toFixed(2)}x the server's own time.`,
  ];
  return [...header, table, ...footer].join('\n');
}

if (require.main === module) runBenchmarkProgram((print) => runBackupBenchmark({ print }), formatBackupBenchmark);

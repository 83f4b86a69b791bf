/**
 * What PgBouncer saves an application that opens a connection per request: `pgbench -C` (a new
 * connection for every transaction, select-only, fixed duration) straight to Postgres and through
 * PgBouncer, both started from tenant acme's synthesized dev containers by the drill's launcher
 * (so the pool, auth and server settings are the synthesized ones). Both sides authenticate
 * with SCRAM, as configured. Run: `npm run build && node dist/bench/connections.js`.
 */
import * as os from 'os';
import * as path from 'path';
import { checkBinaries, postgresBinDir, TenantRun } from '../e2e/launcher';
import { runToCompletion } from '../e2e/processes';
import { textTable } from '../e2e/text-table';
import { runBenchmarkProgram, versionLine } from './program';

export interface ConnectionsRow {
  target: 'postgres' | 'pgbouncer';
  clients: number;
  seconds: number;
  /** Runs of `seconds` each; the figures below are medians over them. */
  runs: number;
  transactions: number;
  failed: number;
  /** Including reconnection times, as pgbench -C reports it. */
  tps: number;
  tpsMin: number;
  tpsMax: number;
  latencyMs: number;
  connectionMs: number;
}

export interface ConnectionsOptions {
  clients?: number[];
  seconds?: number;
  /** Runs per target and client count, alternating targets so that machine noise hits both. */
  runs?: number;
  print?: (line: string) => void;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

interface PgbenchRun {
  transactions: number;
  failed: number;
  tps: number;
  latencyMs: number;
  connectionMs: number;
}

function figure(output: string, pattern: RegExp): number {
  const match = pattern.exec(output);
  return match ? Number(match[1]) : NaN;
}

export async function runConnectionsBenchmark(options: ConnectionsOptions = {}): Promise<ConnectionsRow[]> {
  const clients = options.clients ?? [2, 8];
  const seconds = options.seconds ?? 10;
  const print = options.print ?? (() => undefined);
  const pgbench = path.join(postgresBinDir(), 'pgbench');
  checkBinaries([[pgbench, 'postgresql']]);
  const run = await TenantRun.prepare('dev', 'acme');
  try {
    const [postgres] = run.byService('postgres');
    const [pgbouncer] = run.byService('pgbouncer');
    await run.start(postgres.name);
    await run.start(pgbouncer.name);
    const url = new URL(run.translation.output.database_urls.app);
    const database = url.pathname.slice(1);
    const env = { PATH: process.env.PATH, PGUSER: decodeURIComponent(url.username), PGPASSWORD: decodeURIComponent(url.password), PGDATABASE: database, PGHOST: '127.0.0.1' };
    const init = await runToCompletion([pgbench, '-i', '-s', '1', '-q', '-p', String(postgres.port)], { env, timeoutMs: 120_000 });
    if (init.code !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);
    const runs = options.runs ?? 3;
    const rows: ConnectionsRow[] = [];
    for (const n of clients) {
      const results: Record<'postgres' | 'pgbouncer', PgbenchRun[]> = { postgres: [], pgbouncer: [] };
      for (let r = 0; r < runs; r++) {
        for (const target of ['postgres', 'pgbouncer'] as const) {
          const port = target === 'postgres' ? postgres.port : pgbouncer.port;
          // -n: no vacuum first (PgBouncer has no pgbench tables of its own to vacuum; same for both).
          const args = ['-C', '-S', '-n', '-T', String(seconds), '-c', String(n), '-j', String(Math.min(n, os.cpus().length)), '-p', String(port)];
          const result = await runToCompletion([pgbench, ...args], { env, timeoutMs: (seconds + 60) * 1000 });
          if (result.code !== 0) throw new Error(`pgbench ${args.join(' ')} against ${target} failed (exit ${result.code}): ${result.stderr.slice(-1000)}`);
          const one: PgbenchRun = {
            transactions: figure(result.stdout, /number of transactions actually processed: (\d+)/),
            failed: figure(result.stdout, /number of failed transactions: (\d+)/) || 0,
            tps: figure(result.stdout, /tps = ([\d.]+)/),
            latencyMs: figure(result.stdout, /latency average = ([\d.]+) ms/),
            connectionMs: figure(result.stdout, /average connection time = ([\d.]+) ms/),
          };
          results[target].push(one);
          print(`  ${target}, ${n} clients, run ${r + 1}/${runs}: ${one.tps.toFixed(0)} tps`);
        }
      }
      for (const target of ['postgres', 'pgbouncer'] as const) {
        const list = results[target];
        const tps = list.map((x) => x.tps);
        rows.push({
          target,
          clients: n,
          seconds,
          runs,
          transactions: list.reduce((a, x) => a + x.transactions, 0),
          failed: list.reduce((a, x) => a + x.failed, 0),
          tps: median(tps),
          tpsMin: Math.min(...tps),
          tpsMax: Math.max(...tps),
          latencyMs: median(list.map((x) => x.latencyMs)),
          connectionMs: median(list.map((x) => x.connectionMs)),
        });
      }
    }
    return rows;
  } finally {
    await run.stopAll();
  }
}

export function formatConnectionsRows(rows: ConnectionsRow[]): string {
  const bin = postgresBinDir();
  const header = [
    `pgbench -C -S -n -T ${rows[0]?.seconds ?? '?'} (new connection per transaction, select-only), ${rows[0]?.runs ?? '?'} runs per row alternating targets, medians; 127.0.0.1, SCRAM on both paths`,
    `machine: ${os.cpus().length} cores (nproc), ${os.cpus()[0]?.model ?? 'unknown CPU'}, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} (shared machine: compare rows, not absolute numbers)`,
    `${versionLine([path.join(bin, 'postgres'), '--version'])}; ${versionLine(['/usr/sbin/pgbouncer', '--version'])}; ${versionLine([path.join(bin, 'pgbench'), '--version'])}`,
    'settings: synthesized dev stack of tenant acme (pool_mode transaction, default_pool_size 25; Postgres -c args as synthesized)',
    '',
  ];
  const table = textTable(
    ['target', 'clients', 'transactions', 'failed', 'tps (incl. reconnect)', 'tps min-max', 'avg latency ms', 'avg connect ms'],
    rows.map((r) => [r.target, r.clients, r.transactions, r.failed, r.tps.toFixed(1), `${r.tpsMin.toFixed(0)}-${r.tpsMax.toFixed(0)}`, r.latencyMs.toFixed(2), r.connectionMs.toFixed(2)]),
  );
  return [...header, table].join('\n');
}

if (require.main === module) runBenchmarkProgram((print) => runConnectionsBenchmark({ print }), formatConnectionsRows);

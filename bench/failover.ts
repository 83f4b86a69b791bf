/**
 * Sentinel failover time with the synthesized settings of tenant acme's dev stack (started by the
 * drill's launcher: the same templates, start scripts, down-after-milliseconds, quorum and
 * failover-timeout): kill the current master by PID (SIGKILL) N times, each time timing from the
 * kill until every sentinel names the new master, then restarting the killed node as Docker's
 * `restart: unless-stopped` would and waiting until it is a connected replica again.
 * Run: `npm run build && node dist/bench/failover.js [kills]`.
 */
import * as os from 'os';
import { checkBinaries, TenantRun } from '../e2e/launcher';
import { killMasterAndTime, SentinelView, waitForSteadyState } from '../e2e/redis-failover';
import { textTable } from '../e2e/text-table';
import { runBenchmarkProgram } from './program';

export interface FailoverRow {
  kill: number;
  killed: string;
  promoted: string;
  failoverMs: number;
}

export interface FailoverBenchmark {
  rows: FailoverRow[];
  /** The synthesized Sentinel settings the runs used. */
  settings: string[];
}

export async function runFailoverBenchmark(options: { kills?: number; print?: (line: string) => void } = {}): Promise<FailoverBenchmark> {
  const kills = options.kills ?? 10;
  const print = options.print ?? (() => undefined);
  checkBinaries();
  const run = await TenantRun.prepare('dev', 'acme');
  try {
    const nodes = run.byService('redis');
    const sentinels = run.byService('sentinel');
    for (const c of [...nodes, ...sentinels]) await run.start(c.name);
    const redis = run.translation.output.redis;
    if (!redis) throw new Error('the tenant output has no redis section');
    const view: SentinelView = { masterName: redis.master_name, password: redis.password, sentinelPassword: redis.sentinel_password, sentinels: sentinels.map((s) => s.port) };
    const template = sentinels[0].files.find((f) => f.path.endsWith('/sentinel.conf'))?.content ?? '';
    const settings = template.split('\n').filter((line) => /^sentinel (monitor|down-after-milliseconds|failover-timeout|parallel-syncs) /.test(line));
    const nodeConf = nodes[0].files.find((f) => f.path.endsWith('/redis.conf'))?.content ?? '';
    settings.push(...nodeConf.split('\n').filter((line) => /^min-replicas-/.test(line)));
    const nameOf = (port: number) => nodes.find((n) => n.port === port)?.name ?? `127.0.0.1:${port}`;

    const rows: FailoverRow[] = [];
    for (let kill = 1; kill <= kills; kill++) {
      await waitForSteadyState(view, nodes.length - 1, 120_000);
      let killedName = '';
      const timing = await killMasterAndTime(
        view,
        (port) => {
          killedName = nameOf(port);
          process.kill(run.running(killedName).pid, 'SIGKILL');
          run.forget(killedName);
        },
        120_000,
      );
      rows.push({ kill, killed: killedName, promoted: nameOf(timing.newMasterPort), failoverMs: timing.failoverMs });
      print(`  kill ${kill}: ${killedName} → ${nameOf(timing.newMasterPort)} in ${(timing.failoverMs / 1000).toFixed(2)} s`);
      await run.start(killedName);
    }
    return { rows, settings };
  } finally {
    await run.stopAll();
  }
}

export function formatFailover(result: FailoverBenchmark): string {
  const times = result.rows.map((r) => r.failoverMs).sort((a, b) => a - b);
  const median = times.length % 2 ? times[(times.length - 1) / 2] : (times[times.length / 2 - 1] + times[times.length / 2]) / 2;
  const s = (ms: number) => (ms / 1000).toFixed(2);
  return [
    `Sentinel failover: SIGKILL of the master → every sentinel names the new master (polled every 50 ms)`,
    `machine: ${os.cpus().length} cores (nproc), load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}; redis-server/redis-sentinel from Debian; tenant acme, dev stack as synthesized (after translation):`,
    ...result.settings.map((line) => `  ${line}`),
    '',
    textTable(['kill', 'killed', 'promoted', 'failover s'], result.rows.map((r) => [r.kill, r.killed, r.promoted, s(r.failoverMs)])),
    '',
    textTable(['kills', 'min s', 'median s', 'max s'], [[times.length, s(times[0]), s(median), s(times[times.length - 1])]]),
  ].join('\n');
}

if (require.main === module) {
  const kills = Number(process.argv[2] ?? 10);
  runBenchmarkProgram((print) => runFailoverBenchmark({ kills, print }), formatFailover);
}

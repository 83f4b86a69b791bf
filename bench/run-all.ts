/**
 * `npm run bench`: every benchmark in sequence, each printing its table. Synthesis first, then
 * backup and point-in-time recovery, then the others listed below.
 *
 * A missing program that cannot be installed (as root the benchmarks install Debian packages
 * themselves) ends the run with exit code 2 and one sentence naming the package. No process is
 * left running: the synthesis benchmark kills its children by process group, the others stop
 * their servers in `finally`, and on exit or a signal any remaining descendant of this process is
 * killed by PID.
 */
import * as fs from 'fs';
import { MissingBinary } from '../e2e/launcher';
import { formatBackupBenchmark, runBackupBenchmark } from './backup';
import { formatConnectionsRows, runConnectionsBenchmark } from './connections';
import { formatFailover, runFailoverBenchmark } from './failover';
import { formatPitrBenchmark, runPitrBenchmark } from './pitr';
import { ensureGnuTime, formatSynthBenchmark, killSynthBenchChildren, runSynthBenchmark } from './synth';

interface Benchmark {
  readonly name: string;
  readonly run: (print: (line: string) => void) => Promise<string>;
}

const progress = (line: string) => console.error(`  ${line}`);

// ------------------------------------------------------------------------------------------
// THE BENCHMARKS, in the order they run. Synthesis and backup are required; the others are the
// ones present in bench/ when this list was last edited (connections.ts, failover.ts from the
// drill work). A new benchmark: import its run/format functions above and add a line here.
// ------------------------------------------------------------------------------------------
const BENCHMARKS: Benchmark[] = [
  { name: 'synth', run: async (print) => formatSynthBenchmark(await runSynthBenchmark({ print })) },
  { name: 'backup', run: async (print) => formatBackupBenchmark(await runBackupBenchmark({ print })) },
  { name: 'pitr', run: async (print) => formatPitrBenchmark(await runPitrBenchmark({ print })) },
  { name: 'connections', run: async (print) => formatConnectionsRows(await runConnectionsBenchmark({ print })) },
  { name: 'failover', run: async (print) => formatFailover(await runFailoverBenchmark({ print })) },
];

/** Programs the benchmarks need that nothing else checks before a long run: refuse early. */
function preflight(): void {
  ensureGnuTime();
}

/** PIDs of every live descendant of `root`, deepest first (read from /proc). */
function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const entry of fs.existsSync('/proc') ? fs.readdirSync('/proc') : []) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      parent.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited meanwhile
    }
  }
  const found: number[] = [];
  const visit = (pid: number) => {
    for (const [child, ppid] of parent) {
      if (ppid === pid) {
        visit(child);
        found.push(child);
      }
    }
  };
  visit(root);
  return found;
}

function killDescendants(): number {
  killSynthBenchChildren();
  const left = descendants(process.pid);
  for (const pid of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return left.length;
}

function isMissingBinary(error: unknown): error is Error {
  return error instanceof MissingBinary || (error instanceof Error && /is not installed; install it with|are missing; install them with/.test(error.message));
}

async function main(): Promise<number> {
  try {
    preflight();
  } catch (error) {
    if (isMissingBinary(error)) {
      console.error(`bench: ${error.message.split('\n')[0]}`);
      return 2;
    }
    throw error;
  }
  let failed = 0;
  for (const benchmark of BENCHMARKS) {
    console.error(`== ${benchmark.name} benchmark ==`);
    try {
      console.log(await benchmark.run(progress));
      console.log('');
    } catch (error) {
      if (isMissingBinary(error)) {
        console.error(`bench: ${error.message.split('\n')[0]}`);
        return 2;
      }
      failed++;
      console.error(`bench: the ${benchmark.name} benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    } finally {
      const killed = killDescendants();
      if (killed > 0) console.error(`bench: killed ${killed} process(es) the ${benchmark.name} benchmark left running`);
    }
  }
  return failed > 0 ? 1 : 0;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killDescendants();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });
}

main().then(
  (code) => {
    killDescendants();
    process.exitCode = code;
  },
  (error: unknown) => {
    killDescendants();
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exitCode = 1;
  },
);

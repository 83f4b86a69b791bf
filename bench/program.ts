/**
 * What the benchmark programs share when run on their own (`node dist/bench/<name>.js`): progress
 * on stderr, the table on stdout, and a failure as one line and exit code 1.
 */
import { execFileSync } from 'child_process';
import * as path from 'path';

/** Runs a benchmark and prints its formatted result. */
export function runBenchmarkProgram<T>(run: (print: (line: string) => void) => Promise<T>, format: (result: T) => string): void {
  run((line) => console.error(line)).then(
    (result) => console.log(format(result)),
    (error) => {
      console.error(error instanceof Error ? error.message : error);
      process.exit(1);
    },
  );
}

/** The first line a program prints for `argv` (e.g. `[pg_dump, --version]`), for a table's header. */
export function versionLine(argv: string[]): string {
  try {
    return execFileSync(argv[0], argv.slice(1), { encoding: 'utf8' }).split('\n')[0].trim();
  } catch {
    return `${path.basename(argv[0])}: unknown`;
  }
}

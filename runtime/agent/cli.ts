#!/usr/bin/env node
/** Entry point of `tenantry-agent` (see `tenantry-agent --help`). */
import { main } from './commands';

const stopRequested = new Promise<void>((resolve) => {
  process.once('SIGTERM', () => resolve());
  process.once('SIGINT', () => resolve());
});

main(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  stopRequested,
}).then(
  (code) => {
    process.exitCode = code;
    // Pending timers (e.g. an S3 socket's keep-alive) must not hold a finished command open.
    setImmediate(() => process.exit(code));
  },
  (error: unknown) => {
    process.stderr.write(`tenantry-agent: unexpected failure: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);

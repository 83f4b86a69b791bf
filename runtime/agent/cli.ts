#!/usr/bin/env node
/** Entry point of `tenantry-agent` (see `tenantry-agent --help`). */
import { constants } from 'os';
import { main, STOP_DEADLINE_MS } from './commands';

const stopRequested = new Promise<NodeJS.Signals>((resolve) => {
  const stop = (signal: NodeJS.Signals) => {
    resolve(signal);
    // The orderly stop (tools stopped, partial output removed, failure recorded, webhook sent)
    // normally takes a few seconds; past the deadline the agent exits anyway, before a container
    // runtime's own SIGKILL (Docker waits 10 s), and its tools die with it (exec.ts).
    setTimeout(() => {
      process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: 'stop took too long; exiting now', fields: { signal, deadlineMs: STOP_DEADLINE_MS } })}\n`);
      process.exit(128 + constants.signals[signal]);
    }, STOP_DEADLINE_MS).unref();
  };
  // Handled on every delivery: a second Ctrl-C must not kill the agent half-way through its stop.
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
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

#!/usr/bin/env node
import { configureTokenStackTraces } from '../stacks/cdktf-seam';
import { runTenantry } from './program';

// Before any construct exists (plan and add-tenant synthesize): cdktf's per-token stack traces are off.
configureTokenStackTraces();
runTenantry(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  isTTY: process.stdout.isTTY === true,
  env: process.env,
}).then(
  (code) => (process.exitCode = code),
  // runTenantry reports every error itself; this is the last guard against a stack trace.
  (error: unknown) => {
    process.stderr.write(`tenantry: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);

#!/usr/bin/env node
import { configureTokenStackTraces } from '../stacks/cdktf-seam';
import { createInterface } from 'readline/promises';
import { runTenantry } from './program';

async function ask(question: string): Promise<string> {
  const prompt = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return await prompt.question(question);
  } finally {
    prompt.close();
  }
}

// Before any construct exists (plan and add-tenant synthesize): cdktf's per-token stack traces are off.
configureTokenStackTraces();
runTenantry(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  isTTY: process.stdout.isTTY === true,
  env: process.env,
  terminal: process.stdout.isTTY ? process.stdout : undefined,
  ask: process.stdin.isTTY ? ask : undefined,
}).then(
  (code) => (process.exitCode = code),
  // runTenantry reports every error itself; this is the last guard against a stack trace.
  (error: unknown) => {
    process.stderr.write(`tenantry: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);

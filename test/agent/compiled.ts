/**
 * The agent as plain JavaScript, for tests that start it many times: ts-node costs about a second
 * of CPU per start, which the signal tests would pay dozens of times. Each file is transpiled on
 * its own (no type check: `npx tsc -p tsconfig.test.json` does that) into a folder under the
 * repository's .tmp, so that modules still resolve from the repository's node_modules.
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';

const REPO = path.resolve(__dirname, '..', '..');
const SOURCES = ['runtime/agent', 'runtime/schedule'];

let compiled: string | undefined;

/** Path of the transpiled cli.js (built once per test file). */
export function compiledCli(): string {
  if (compiled !== undefined) return compiled;
  const out = fs.mkdtempSync(path.join(REPO, '.tmp', 'agent-js-'));
  for (const source of SOURCES) {
    for (const entry of fs.readdirSync(path.join(REPO, source), { recursive: true }) as string[]) {
      if (!entry.endsWith('.ts')) continue;
      const from = path.join(REPO, source, entry);
      const to = path.join(out, source, entry.replace(/\.ts$/, '.js'));
      const { outputText } = ts.transpileModule(fs.readFileSync(from, 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true, resolveJsonModule: true },
        fileName: from,
      });
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.writeFileSync(to, outputText);
    }
  }
  fs.copyFileSync(path.join(REPO, 'package.json'), path.join(out, 'package.json'));
  compiled = path.join(out, 'runtime/agent/cli.js');
  return compiled;
}

export type AgentProcess = ChildProcess & { output(): { stdout: string; stderr: string } };

export function startCompiledAgent(args: string[], env: NodeJS.ProcessEnv): AgentProcess {
  const child = spawn(process.execPath, [compiledCli(), ...args], { cwd: REPO, env: { PATH: process.env.PATH, TMPDIR: process.env.TMPDIR, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return Object.assign(child, { output: () => ({ stdout, stderr }) });
}

/** Resolves with how the process ended: its exit code, or the signal that killed it. */
export function endOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve({ code: child.exitCode, signal: child.signalCode });
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

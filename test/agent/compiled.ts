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
  compiled ??= transpileAgent(fs.mkdtempSync(path.join(REPO, '.tmp', 'agent-js-')));
  return compiled;
}

/**
 * The npm packages the TypeScript files under `dirs` (repository-relative) import, by package name
 * (`@scope/name` or `name`), limited to package.json's dependencies: what an image or a standalone
 * copy of that code must carry. Node's own modules are not dependencies, so they drop out.
 */
export function importedPackages(dirs: readonly string[]): string[] {
  const dependencies = Object.keys((JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies);
  const files = dirs.flatMap((dir) => (fs.readdirSync(path.join(REPO, dir), { recursive: true, encoding: 'utf8' }) as string[]).filter((f) => f.endsWith('.ts')).map((f) => path.join(REPO, dir, f)));
  const imported = new Set(
    files.flatMap((file) => [...fs.readFileSync(file, 'utf8').matchAll(/(?:from|require\()\s*'([^.'][^']*)'/g)].map((m) => m[1].split('/').slice(0, m[1].startsWith('@') ? 2 : 1).join('/'))),
  );
  return dependencies.filter((d) => imported.has(d)).sort();
}

/**
 * The agent transpiled into `out` beside a copy of the packages it loads, so that it runs without
 * the repository: for tests that start it as another user, who may not be able to enter the
 * checkout (a clone inside `mktemp -d` is 0700). Returns the path of its cli.js.
 */
export function standaloneAgent(out: string): string {
  const cli = transpileAgent(out);
  for (const name of packageClosure(importedPackages(SOURCES))) {
    fs.cpSync(path.join(REPO, 'node_modules', name), path.join(out, 'node_modules', name), { recursive: true });
  }
  return cli;
}

/** `roots` and every package they depend on that npm hoisted to the top of node_modules. */
function packageClosure(roots: string[]): string[] {
  const found = new Set<string>();
  const queue = [...roots];
  for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
    const dir = path.join(REPO, 'node_modules', name);
    if (found.has(name) || !fs.existsSync(dir)) continue;
    found.add(name);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { dependencies?: object; optionalDependencies?: object };
    // A dependency nested in the package's own node_modules is copied with it.
    for (const dependency of Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies })) {
      if (!fs.existsSync(path.join(dir, 'node_modules', dependency))) queue.push(dependency);
    }
  }
  return [...found];
}

/** Transpiles each source file on its own into `out`; returns the path of cli.js. */
function transpileAgent(out: string): string {
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
  return path.join(out, 'runtime/agent/cli.js');
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

/**
 * Running the agent from tests: configs written to temp files, the CLI run in-process (for exit
 * codes and output) or as a real process (for locks and `serve`), JSON log lines captured.
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { main } from '../../runtime/agent/commands';
import type { z } from 'zod';
import { AgentConfig, agentConfigSchema, parseAgentConfig } from '../../runtime/agent/config';
import { createLogger } from '../../runtime/agent/log';
import { Manifest } from '../../runtime/agent/manifest';
import { Agent } from '../../runtime/agent/runner';
import { AgentState } from '../../runtime/agent/status';
import { BackupStore } from '../../runtime/agent/store';
import { PostgresServer, tempDir } from '../helpers/servers';

const REPO = path.resolve(__dirname, '..', '..');

/** The config as written (defaults may be left out), with the fields every test shares optional. */
type AgentConfigFile = z.input<typeof agentConfigSchema>;
export type ConfigInput = Omit<AgentConfigFile, 'http' | 'tenant' | 'environment' | 'timeZone' | 'backupDir'> &
  Partial<Pick<AgentConfigFile, 'http' | 'tenant' | 'environment' | 'timeZone' | 'backupDir'>>;

/** Validates like the agent does (defaults applied) and writes the JSON where the CLI can read it. */
export function writeConfig(input: ConfigInput): { path: string; config: AgentConfig } {
  const dir = tempDir('agent-config');
  const raw = {
    tenant: 'acme',
    environment: 'test',
    timeZone: 'Europe/Berlin',
    backupDir: path.join(tempDir('agent-backups'), 'backups'),
    http: { port: 18080, host: '127.0.0.1' },
    ...input,
  };
  const config = parseAgentConfig(raw, 'test config');
  const file = path.join(dir, 'agent.json');
  fs.writeFileSync(file, JSON.stringify(raw, null, 2));
  return { path: file, config };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stderr lines that are JSON log entries. */
  logs: { level: string; job?: string; msg: string; fields?: Record<string, unknown> }[];
}

function parseLogs(stderr: string): CliResult['logs'] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as CliResult['logs'][number]);
}

/** The CLI in this process: same code path as the binary, minus process.exit. */
export async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
    env: { PATH: process.env.PATH, ...env },
    stopRequested: new Promise(() => undefined),
  });
  return { code, stdout, stderr, logs: parseLogs(stderr) };
}

/** The CLI as its own process (transpiled on the fly), for what needs a second process. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess & { output(): { stdout: string; stderr: string } } {
  const child = spawn(process.execPath, ['-r', 'ts-node/register', path.join(REPO, 'runtime/agent/cli.ts'), ...args], {
    cwd: REPO,
    env: { PATH: process.env.PATH, TS_NODE_TRANSPILE_ONLY: 'true', TMPDIR: process.env.TMPDIR, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return Object.assign(child, { output: () => ({ stdout, stderr }) });
}

export function exitOf(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** An Agent for calling the runner directly, with its log lines collected. */
export function testAgent(
  config: AgentConfig,
  env: NodeJS.ProcessEnv,
  opts: { startedAt?: Date; signal?: AbortSignal; /** Called with each log entry as it is written: a fault injected at a known moment. */ onLog?: (entry: { level: string; msg: string }) => void } = {},
) {
  const lines: { level: string; job?: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const notices: string[] = [];
  const agent: Agent = {
    config,
    state: new AgentState(config, opts.startedAt),
    log: createLogger((line) => {
      const entry = JSON.parse(line);
      lines.push(entry);
      opts.onLog?.(entry);
    }),
    env,
    notify: async (text) => {
      notices.push(text);
    },
    signal: opts.signal ?? new AbortController().signal,
  };
  return { agent, lines, notices };
}

export async function manifests(config: AgentConfig, job: string): Promise<Manifest[]> {
  return (await new BackupStore(config.backupDir, job).list()).flatMap((e) => (e.manifest ? [e.manifest] : []));
}

export function jobDirEntries(config: AgentConfig, job: string): string[] {
  const dir = path.join(config.backupDir, job);
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

export function httpGet(port: number, route: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: route }, (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * A Postgres job backing up `databases` of `server` as its superuser (password in PG_PASSWORD).
 * `splitTablesLargerThanMb`: 256 is the agent's default; 0 puts every table's data in chunks.
 */
export function postgresJob(server: PostgresServer, databases: string[], splitTablesLargerThanMb = 256, retention = { daily: 7, weekly: 4, monthly: 6 }) {
  return {
    name: 'pg',
    kind: 'postgres' as const,
    schedule: '0 3 * * *',
    retention,
    offsite: false,
    postgres: { host: server.host, port: server.port, user: 'postgres', passwordEnv: 'PG_PASSWORD', databases, parallelJobs: 2, splitTablesLargerThanMb },
  };
}

/**
 * Runs the backup tools (pg_dump, redis-cli, …). Secrets travel in the child's environment
 * (PGPASSWORD, REDISCLI_AUTH), never in argv, which `ps` and error messages would show.
 */
import { ChildProcess, spawn, spawnSync } from 'child_process';
import execa from 'execa';
import * as fs from 'fs';

export interface ToolRun {
  /** Extra environment for the child, on top of the agent's own. */
  env?: NodeJS.ProcessEnv;
  /** Aborting kills the tool (the agent is shutting down). */
  signal?: AbortSignal;
  input?: string;
}

const OUTPUT_TAIL = 2000;

const notInstalled = (file: string) => `${file} is not installed (not found on PATH)`;

/** "<tool> exited with 2: <the end of its stderr, or stdout>", or "… was killed by SIGTERM". */
function failure(file: string, exit: { code: number | null | undefined; signal: string | null | undefined }, stderr: string, stdout: string): string {
  const why = exit.signal ? `was killed by ${exit.signal}` : `exited with ${exit.code}`;
  const output = (stderr || stdout).slice(-OUTPUT_TAIL).trim();
  return `${file} ${why}${output ? `: ${output}` : ''}`;
}

/** Runs a tool to completion and returns its stdout; a failure says which tool and why. */
export async function runTool(file: string, args: readonly string[], options: ToolRun = {}): Promise<string> {
  const child = execa(file, [...args], { env: options.env, input: options.input, reject: false });
  const onAbort = () => child.kill('SIGTERM');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const result = await child;
    if (!result.failed) return result.stdout;
    if ((result as { code?: string }).code === 'ENOENT') throw new Error(notInstalled(file));
    throw new Error(failure(file, { code: result.exitCode, signal: result.signal }, result.stderr, result.stdout));
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}

export interface GrowthWatch {
  /** Aborts when the file has not grown for the given time, or when the parent signal aborts. */
  signal: AbortSignal;
  /** Whether the watch, not the parent, aborted. */
  stalled(): boolean;
  stop(): void;
}

/**
 * Watches a file that a tool is writing (a transfer), for tools that have no read timeout of
 * their own: its signal aborts when the file has not grown for `stallMs`, so a source that stops
 * sending in the middle cannot hold a job for ever. A file not yet created counts as size -1.
 */
export function watchGrowth(file: string, stallMs: number, parent?: AbortSignal): GrowthWatch {
  const controller = new AbortController();
  let size = -1;
  let grewAt = Date.now();
  let stalled = false;
  const timer = setInterval(() => {
    let now = -1;
    try {
      now = fs.statSync(file).size;
    } catch {
      // Not created yet.
    }
    if (now !== size) {
      size = now;
      grewAt = Date.now();
    } else if (Date.now() - grewAt >= stallMs && !controller.signal.aborted) {
      stalled = true;
      controller.abort();
    }
  }, Math.max(10, Math.min(1000, stallMs / 4)));
  const onParent = () => controller.abort();
  if (parent?.aborted) controller.abort();
  else parent?.addEventListener('abort', onParent, { once: true });
  return {
    signal: controller.signal,
    stalled: () => stalled,
    stop: () => {
      clearInterval(timer);
      parent?.removeEventListener('abort', onParent);
    },
  };
}

/** First line of `<tool> --version`, for the manifest (`env`: e.g. the PATH the job's tools run with). */
export async function toolVersion(file: string, env?: NodeJS.ProcessEnv): Promise<string> {
  return (await runTool(file, ['--version'], { env })).split('\n')[0].trim();
}

/** One side of a pipeline: a tool and its arguments. */
export interface ToolCommand {
  file: string;
  args: readonly string[];
  /** The tool's name in failures, when `file` only wraps it (stdbuf). @default file */
  name?: string;
}

/** The stdout buffer withLargeOutputBuffer gives a tool. */
const OUTPUT_BUFFER = '1M';
/** Whether `stdbuf` works, per PATH: it needs coreutils' preload library beside it. */
const stdbufWorks = new Map<string, boolean>();

/**
 * `command` run through coreutils' stdbuf with a 1 MiB stdout buffer where stdbuf works, and as
 * it is where it does not. C stdio writes to a pipe in pieces of its buffer (4 KiB with glibc,
 * 1 KiB with musl), so a tool that hands every row to fwrite (psql copying a table out) makes one
 * write(2), and wakes its reader once, per piece. Measured with Debian's glibc psql on 800 MB of
 * binary COPY rows through zstd, two streams on 2 cores: 2.4-2.7 s with stdio's buffer, 2.0-2.3 s
 * with 1 MiB (docs/benchmarks.md).
 */
export function withLargeOutputBuffer(command: ToolCommand, env: NodeJS.ProcessEnv = {}): ToolCommand {
  if (!largeOutputBufferWorks(env)) return command;
  return { file: 'stdbuf', args: [`--output=${OUTPUT_BUFFER}`, command.file, ...command.args], name: command.name ?? command.file };
}

/** Whether withLargeOutputBuffer can give tools run with `env` (its PATH) the larger buffer. */
export function largeOutputBufferWorks(env: NodeJS.ProcessEnv = {}): boolean {
  const searchPath = { ...process.env, ...env }.PATH ?? '';
  let works = stdbufWorks.get(searchPath);
  if (works === undefined) {
    works = spawnSync('stdbuf', [`--output=${OUTPUT_BUFFER}`, 'true'], { env: { ...process.env, PATH: searchPath }, stdio: 'ignore' }).status === 0;
    stdbufWorks.set(searchPath, works);
  }
  return works;
}

export interface PipelineRun extends ToolRun {
  /** Working directory of both tools. */
  cwd?: string;
}

export interface PipelineOutput {
  /** The consumer's standard output. */
  stdout: string;
  /** Standard error of the producer, then of the consumer. */
  stderr: [string, string];
}

/**
 * Runs `from | to` with the producer's stdout wired to the consumer's stdin at the descriptor
 * level, so the data never passes through the agent. Both must exit 0. When both fail, both
 * errors are reported, the consumer's first: either may be the cause (a consumer stopped by a
 * full disk breaks the producer's pipe; a corrupt input makes the consumer see a short stream).
 */
export async function runPipeline(from: ToolCommand, to: ToolCommand, options: PipelineRun = {}): Promise<PipelineOutput> {
  const env = { ...process.env, ...options.env };
  const consumer = spawn(to.file, [...to.args], { env, cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  const consumerDone = settle(to, consumer);
  // The producer gets its own copy of the pipe's write end; the agent's copy is closed so that
  // the consumer sees end-of-file when the producer exits.
  const producer = consumer.stdin ? spawn(from.file, [...from.args], { env, cwd: options.cwd, stdio: ['ignore', consumer.stdin, 'pipe'] }) : undefined;
  consumer.stdin?.destroy();
  const producerDone = producer ? settle(from, producer) : Promise.resolve({ stdout: '', stderr: '', error: `${toolName(to)} has no stdin` });
  const kill = () => {
    producer?.kill('SIGTERM');
    consumer.kill('SIGTERM');
  };
  options.signal?.addEventListener('abort', kill, { once: true });
  try {
    const [made, taken] = await Promise.all([producerDone, consumerDone]);
    const failures = [taken.error, made.error].filter((error): error is string => error !== undefined);
    if (failures.length > 0) throw new Error(failures.join('; '));
    return { stdout: taken.stdout, stderr: [made.stderr, taken.stderr] };
  } finally {
    options.signal?.removeEventListener('abort', kill);
  }
}

interface Settled {
  stdout: string;
  stderr: string;
  /** Why the tool failed, in the words runTool uses; undefined when it exited 0. */
  error?: string;
}

/** The name failures give a command: its tool's, also when a wrapper (stdbuf) runs it. */
const toolName = (command: ToolCommand) => command.name ?? command.file;

function settle(command: ToolCommand, child: ChildProcess): Promise<Settled> {
  const file = toolName(command);
  const wrapped = command.name !== undefined;
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout = (stdout + chunk.toString()).slice(-OUTPUT_TAIL)));
    child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-OUTPUT_TAIL)));
    child.once('error', (error: NodeJS.ErrnoException) =>
      resolve({ stdout, stderr, error: error.code === 'ENOENT' ? notInstalled(file) : `${file}: ${error.message}` }),
    );
    child.once('close', (code, signal) => {
      if (code === 0) resolve({ stdout, stderr });
      // A wrapper (stdbuf) that cannot start its tool exits 127, as a shell does.
      else if (code === 127 && wrapped) resolve({ stdout, stderr, error: notInstalled(file) });
      else resolve({ stdout, stderr, error: failure(file, { code, signal }, stderr, stdout) });
    });
  });
}

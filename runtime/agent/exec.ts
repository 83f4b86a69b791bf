/**
 * Runs the backup tools (pg_dump, redis-cli, …). Secrets travel in the child's environment
 * (PGPASSWORD, REDISCLI_AUTH), never in argv, which `ps` and error messages would show.
 *
 * No tool outlives the agent, whatever ends the agent (SIGKILL and crashes included): every tool
 * starts in a process group of its own (so pg_dump's -j workers go with it) beside a watchdog
 * that waits on a pipe only the agent holds open. The kernel closes that pipe when the agent dies,
 * the watchdog reads end-of-file and SIGKILLs the whole group. Node cannot reach
 * prctl(PR_SET_PDEATHSIG), and a group of its own also keeps a terminal's Ctrl-C for the agent,
 * which then stops its tools itself (SIGTERM to the group, SIGKILL after TOOL_STOP_GRACE_MS).
 */
import { ChildProcess, IOType, spawn, spawnSync } from 'child_process';
import type { Readable, Stream } from 'stream';
import * as fs from 'fs';

export interface ToolRun {
  /** Extra environment for the child, on top of the agent's own. */
  env?: NodeJS.ProcessEnv;
  /** Aborting kills the tool (the agent is shutting down). */
  signal?: AbortSignal;
  input?: string;
  /** Run as this OS user (uid, gid) instead of the agent's own. */
  user?: { uid: number; gid: number };
}

const OUTPUT_TAIL = 2000;

/** How long a stopped tool may take to exit on SIGTERM before its group gets SIGKILL. */
export const TOOL_STOP_GRACE_MS = 3000;

/** A shell's exit code for a command it could not find (also stdbuf's for a missing tool). */
const NOT_FOUND = 127;

const notInstalled = (file: string) => `${file} is not installed (not found on PATH)`;

/** "<tool> exited with 2: <the end of its stderr, or stdout>", or "… was killed by SIGTERM". */
function failure(file: string, exit: { code: number | null | undefined; signal: string | null | undefined }, stderr: string, stdout: string): string {
  const why = exit.signal ? `was killed by ${exit.signal}` : `exited with ${exit.code}`;
  const output = (stderr || stdout).slice(-OUTPUT_TAIL).trim();
  return `${file} ${why}${output ? `: ${output}` : ''}`;
}

/**
 * The watchdog (fd 3 is the agent's pipe; its own stdio is detached so that it holds no pipe a
 * reader waits on), then the tool in the shell's place, so the tool's PID is the group's and its
 * exit status or signal is the agent's to see.
 */
const GUARD = '( read -r _ <&3; kill -KILL 0 ) </dev/null >/dev/null 2>&1 & exec 3<&-; exec "$@"';

/** A tool started in its own process group with a watchdog that kills the group when the agent dies. */
export interface GuardedChild {
  readonly child: ChildProcess;
  /** SIGTERM to the tool's group, SIGKILL after TOOL_STOP_GRACE_MS if it is still there. */
  stop(): void;
}

type ToolStdio = IOType | Stream | number;

/** Every tool running now, so that a stopping agent reaches those started without its signal. */
const runningTools = new Set<GuardedChild>();

/** Stops every running tool (the agent is stopping): SIGTERM to each group, SIGKILL after the grace. */
export function stopEveryTool(): void {
  for (const tool of runningTools) tool.stop();
}

export function spawnGuarded(
  file: string,
  args: readonly string[],
  options: { env: NodeJS.ProcessEnv; cwd?: string; stdio: [ToolStdio, ToolStdio, ToolStdio]; user?: { uid: number; gid: number } },
): GuardedChild {
  const child: ChildProcess = spawn('sh', ['-c', GUARD, 'tenantry-guard', file, ...args], {
    env: options.env,
    cwd: options.cwd,
    detached: true,
    stdio: [...options.stdio, 'pipe'],
    ...(options.user ?? {}),
  });
  const lifeline = child.stdio[3];
  let killer: NodeJS.Timeout | undefined;
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, signal);
    } catch {
      // The group is gone already.
    }
  };
  const guarded: GuardedChild = {
    child,
    stop: () => {
      if (child.exitCode !== null || child.signalCode !== null || killer !== undefined) return;
      signalGroup('SIGTERM');
      killer = setTimeout(() => signalGroup('SIGKILL'), TOOL_STOP_GRACE_MS);
      killer.unref();
    },
  };
  runningTools.add(guarded);
  // The tool has exited: closing the lifeline lets the watchdog clear what the tool left behind.
  child.once('exit', () => {
    runningTools.delete(guarded);
    clearTimeout(killer);
    lifeline?.destroy();
  });
  child.once('error', () => {
    runningTools.delete(guarded);
    lifeline?.destroy();
  });
  return guarded;
}

/** Runs a tool to completion and returns its stdout; a failure says which tool and why. */
export async function runTool(file: string, args: readonly string[], options: ToolRun = {}): Promise<string> {
  const { child, stop } = spawnGuarded(file, args, { env: { ...process.env, ...options.env }, stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], user: options.user });
  child.stdin?.on('error', () => undefined);
  child.stdin?.end(options.input);
  let stdout = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const done = settle({ file, args }, child);
  if (options.signal?.aborted) stop();
  options.signal?.addEventListener('abort', stop, { once: true });
  try {
    const { error } = await done;
    if (error !== undefined) throw new Error(error);
    return stdout.replace(/\r?\n$/, '');
  } finally {
    options.signal?.removeEventListener('abort', stop);
  }
}

/**
 * Runs a tool and hands its stdout, as a stream, to `consume` (large binary output: nothing of it
 * is kept as text). Rejects when either fails; the tool is stopped when `consume` fails first.
 */
export async function readToolStream<T>(
  file: string,
  args: readonly string[],
  consume: (stdout: Readable) => Promise<T>,
  options: Omit<ToolRun, 'input'> & { stdin?: Readable } = {},
): Promise<T> {
  const { child, stop } = spawnGuarded(file, args, { env: { ...process.env, ...options.env }, stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'], user: options.user });
  const done = settle({ file, args }, child, false);
  if (options.stdin && child.stdin) {
    // A tool that exits early closes its stdin: that is its failure to report, not the pipe's.
    child.stdin.on('error', () => undefined);
    options.stdin.on('error', () => child.stdin?.destroy());
    options.stdin.pipe(child.stdin);
  }
  if (options.signal?.aborted) stop();
  options.signal?.addEventListener('abort', stop, { once: true });
  try {
    let result: T;
    try {
      result = await consume(child.stdout!);
    } catch (error) {
      // The reader failing first is often the tool failing (a damaged input ends the stream
      // early): give the tool a moment to exit on its own, reading what it still writes, and
      // let its own words explain; then stop it.
      child.stdout?.resume();
      const alone = await Promise.race([done, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), TOOL_EXPLAINS_MS))]);
      stop();
      const settled = alone ?? (await done);
      throw alone?.error !== undefined ? new Error(`${settled.error} (then: ${errorText(error)})`) : error;
    }
    const { error } = await done;
    if (error !== undefined) throw new Error(error);
    return result;
  } finally {
    options.signal?.removeEventListener('abort', stop);
  }
}

/** How long a tool whose reader failed may take to exit and say why. */
const TOOL_EXPLAINS_MS = 2000;
const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

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

/**
 * `command` run through coreutils' stdbuf with a 1 MiB stdout buffer where stdbuf works, and as
 * it is where it does not. C stdio writes to a pipe in pieces of its buffer (4 KiB with glibc,
 * 1 KiB with musl), so a tool that hands every row to fwrite (psql copying a table out) makes one
 * write(2), and wakes its reader once, per piece. Measurements: docs/benchmarks.md.
 */
export function withLargeOutputBuffer(command: ToolCommand, works: boolean = largeOutputBufferWorks()): ToolCommand {
  if (!works) return command;
  return { file: 'stdbuf', args: [`--output=${OUTPUT_BUFFER}`, command.file, ...command.args], name: command.name ?? command.file };
}

/**
 * Whether withLargeOutputBuffer can give tools run with `env` (its PATH) the larger buffer: stdbuf
 * needs coreutils' preload library beside it. A probe (one process): callers ask once and keep the answer.
 */
export function largeOutputBufferWorks(env: NodeJS.ProcessEnv = {}): boolean {
  const searchPath = { ...process.env, ...env }.PATH ?? '';
  return spawnSync('stdbuf', [`--output=${OUTPUT_BUFFER}`, 'true'], { env: { ...process.env, PATH: searchPath }, stdio: 'ignore' }).status === 0;
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
  const consumer = spawnGuarded(to.file, to.args, { env, cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  const consumerDone = settle(to, consumer.child);
  // The producer gets its own copy of the pipe's write end; the agent's copy is closed so that
  // the consumer sees end-of-file when the producer exits.
  const stdin = consumer.child.stdin;
  const producer = stdin ? spawnGuarded(from.file, from.args, { env, cwd: options.cwd, stdio: ['ignore', stdin, 'pipe'] }) : undefined;
  stdin?.destroy();
  const producerDone = producer ? settle(from, producer.child) : Promise.resolve({ stdout: '', stderr: '', error: `${toolName(to)} has no stdin` });
  const kill = () => {
    producer?.stop();
    consumer.stop();
  };
  if (options.signal?.aborted) kill();
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

/** `keepStdout` false: stdout is someone else's to read (readToolStream), and stays out of messages. */
function settle(command: ToolCommand, child: ChildProcess, keepStdout = true): Promise<Settled> {
  const file = toolName(command);
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    if (keepStdout) child.stdout?.on('data', (chunk: Buffer) => (stdout = (stdout + chunk.toString()).slice(-OUTPUT_TAIL)));
    child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-OUTPUT_TAIL)));
    child.once('error', (error: NodeJS.ErrnoException) =>
      resolve({ stdout, stderr, error: error.code === 'ENOENT' ? notInstalled(file) : `${file}: ${error.message}` }),
    );
    child.once('close', (code, signal) => {
      if (code === 0) resolve({ stdout, stderr });
      // Tools start through a shell (and maybe stdbuf): both exit 127 when the tool is missing.
      else if (code === NOT_FOUND) resolve({ stdout, stderr, error: notInstalled(file) });
      else resolve({ stdout, stderr, error: failure(file, { code, signal }, stderr, stdout) });
    });
  });
}

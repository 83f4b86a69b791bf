/**
 * Processes the drill starts itself: those test/helpers/servers.ts has no starter for (the
 * emulated Postgres image entrypoint, the backup agent). Same rules as there: every process is
 * tracked by PID, stopped by PID (a signal, then SIGKILL after a grace period), and whatever is
 * still running when the drill's process exits is killed then.
 */
import { ChildProcess, execFile, spawn } from 'child_process';
import * as net from 'net';
import { signalThenKill, sleep } from '../test/helpers/pids';

const LOG_TAIL_CHARS = 4000;

export interface Owner {
  uid: number;
  gid: number;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

interface Tracked {
  pid: number;
  emergencySignal: NodeJS.Signals;
}

const running = new Map<number, Tracked>();

/** Kills what is left; synchronous, so it also works from an 'exit' handler. */
export function killEverythingLeft(): number {
  let killed = 0;
  for (const { pid, emergencySignal } of running.values()) {
    try {
      process.kill(pid, emergencySignal);
      killed++;
    } catch {
      // Already gone.
    }
  }
  running.clear();
  return killed;
}

process.once('exit', killEverythingLeft);

/** `signal`, then SIGKILL after the grace period; resolves once the PID is gone. */
export async function stopPid(pid: number, signal: NodeJS.Signals): Promise<void> {
  running.delete(pid);
  await signalThenKill(pid, signal);
}

/** Runs a command to completion (bounded by `timeoutMs`); never rejects, the caller decides. */
export function runToCompletion(
  argv: string[],
  options: { env: NodeJS.ProcessEnv; owner?: Owner; timeoutMs: number; cwd?: string },
): Promise<RunResult> {
  const [file, ...args] = argv;
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { env: options.env, uid: options.owner?.uid, gid: options.owner?.gid, cwd: options.cwd ?? '/', timeout: options.timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : error.killed ? 124 : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

export interface LongRunning {
  name: string;
  pid: number;
  logTail(): string;
  /** Whether the process has exited (and how). */
  exited(): string | undefined;
  stop(): Promise<void>;
}

function captureOutput(child: ChildProcess): () => string {
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-LOG_TAIL_CHARS);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => tail || '(no output)';
}

/**
 * Starts a long-running process and waits (bounded) until `ready` holds. `stopSignal` is the
 * orderly stop; `emergencySignal` is sent at process exit, when no one can wait any more.
 */
export async function startLongRunning(
  name: string,
  argv: string[],
  options: { env: NodeJS.ProcessEnv; owner?: Owner; cwd?: string; stopSignal: NodeJS.Signals; emergencySignal: NodeJS.Signals },
  ready: () => Promise<boolean>,
  readyTimeoutMs = 30_000,
): Promise<LongRunning> {
  const [file, ...args] = argv;
  const child = spawn(file, args, { env: options.env, uid: options.owner?.uid, gid: options.owner?.gid, cwd: options.cwd ?? '/', stdio: ['ignore', 'pipe', 'pipe'] });
  const logTail = captureOutput(child);
  let exit: string | undefined;
  child.once('exit', (code, signal) => {
    exit = signal ? `signal ${signal}` : `exit code ${code}`;
  });
  child.once('error', (error) => {
    exit = error.message;
  });
  await sleep(0);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name} could not be started: ${exit ?? 'no pid'}`);
  running.set(pid, { pid, emergencySignal: options.emergencySignal });
  const handle: LongRunning = { name, pid, logTail, exited: () => exit, stop: () => stopPid(pid, options.stopSignal) };
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (await ready()) return handle;
    if (exit) {
      running.delete(pid);
      throw new Error(`${name} exited before it was ready (${exit}). Output:\n${logTail()}`);
    }
    if (Date.now() > deadline) {
      await handle.stop();
      throw new Error(`${name} was not ready within ${readyTimeoutMs / 1000} s. Output:\n${logTail()}`);
    }
    await sleep(100);
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

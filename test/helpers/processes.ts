import { spawn, SpawnOptions } from 'child_process';
import * as net from 'net';
import { isAlive } from '../../runtime/agent/lock';

/**
 * Starting, watching and stopping server processes: shared by the test harness and the e2e drill,
 * which each keep their own registry of what to kill on exit and their own readiness rules.
 */

/** How long a process gets to exit on its stop signal before SIGKILL. */
export const STOP_GRACE_MS = 10_000;

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// The agent's own check (runtime/agent/lock.ts), so the harness and the agent agree on what is alive.
export { isAlive };

async function waitUntilGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await sleep(50);
  }
  return !isAlive(pid);
}

/** `signal`, then SIGKILL after the grace period; resolves once the PID is gone. */
export async function signalThenKill(pid: number, signal: NodeJS.Signals): Promise<void> {
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  if (await waitUntilGone(pid, STOP_GRACE_MS)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitUntilGone(pid, STOP_GRACE_MS);
}

const LOG_TAIL_CHARS = 4000;

/** A spawned process: its PID, the tail of its output, and how it exited (once it has). */
export interface WatchedProcess {
  readonly pid: number;
  logTail(): string;
  exited(): string | undefined;
}

/** Spawns `argv` with its output captured; throws when it cannot even start (e.g. a missing binary). */
export async function spawnWatched(name: string, argv: string[], options: SpawnOptions): Promise<WatchedProcess> {
  const [file, ...args] = argv;
  const child = spawn(file, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-LOG_TAIL_CHARS);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exit: string | undefined;
  child.once('exit', (code, signal) => {
    exit = signal ? `signal ${signal}` : `exit code ${code}`;
  });
  child.once('error', (error) => {
    exit = error.message;
  });
  // `spawn` reports a missing binary asynchronously; give it one tick before reading the pid.
  await sleep(0);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name} could not be started: ${exit ?? 'no pid'}`);
  return { pid, logTail: () => tail || '(no output)', exited: () => exit };
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

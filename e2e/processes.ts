/**
 * Processes the drill starts itself: those test/helpers/servers.ts has no starter for (the
 * emulated Postgres image entrypoint, the backup agent). Same rules as there: every process is
 * tracked by PID, stopped by PID (a signal, then SIGKILL after a grace period), and whatever is
 * still running when the drill's process exits is killed then.
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import { portAccepts, signalThenKill, sleep, spawnWatched } from '../test/helpers/processes';

export { portAccepts };


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

/** `root` and every live descendant of it (from /proc), parents first. */
export function processTree(root: number): number[] {
  const parent = new Map<number, number>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      parent.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited meanwhile
    }
  }
  const found = [root];
  for (let i = 0; i < found.length; i++) for (const [pid, ppid] of parent) if (ppid === found[i]) found.push(pid);
  return found;
}

/**
 * SIGKILL to `root` and all its descendants at once, as losing the host would end them (a killed
 * postmaster alone leaves its backends to finish what they were doing). Returns how many were signalled.
 */
export function killTree(root: number): number {
  let killed = 0;
  for (const pid of processTree(root)) {
    running.delete(pid);
    try {
      process.kill(pid, 'SIGKILL');
      killed++;
    } catch {
      // already gone
    }
  }
  return killed;
}

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
  const { pid, logTail, exited } = await spawnWatched(name, argv, { env: options.env, uid: options.owner?.uid, gid: options.owner?.gid, cwd: options.cwd ?? '/' });
  running.set(pid, { pid, emergencySignal: options.emergencySignal });
  const handle: LongRunning = { name, pid, logTail, exited, stop: () => stopPid(pid, options.stopSignal) };
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (await ready()) return handle;
    const exit = exited();
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


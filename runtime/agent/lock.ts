/**
 * One run of a job at a time, across processes (`serve` and a `run` typed into the container).
 * The lock is a file created with O_EXCL holding the owner's PID and the kernel's start time for
 * that PID. A lock whose owner is gone is broken; comparing start times as well as PIDs matters
 * in containers, where a restarted agent is PID 1 again and would otherwise look like the owner.
 */
import * as fs from 'fs';
import { UserError } from './errors';

interface LockOwner {
  pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks since boot); null where /proc is unavailable. */
  startTime: string | null;
  acquiredAt: string;
}

function processStartTime(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is parenthesised and may contain spaces: split after it.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** Whether a process with this PID exists; EPERM says it does, only not ours to signal. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Locks this process holds: a lock naming our own PID that is not in here is a previous life's. */
const heldByThisProcess = new Set<string>();

function ownerIsRunning(owner: LockOwner): boolean {
  if (owner.pid === process.pid) return false;
  if (!isAlive(owner.pid)) return false;
  const startTime = processStartTime(owner.pid);
  return owner.startTime === null || startTime === null || startTime === owner.startTime;
}

function readOwner(file: string): LockOwner | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as LockOwner;
  } catch {
    // Unreadable or half-written (the owner died between open and write): treat as stale.
    return undefined;
  }
}

export interface Lock {
  release(): void;
}

/**
 * Takes the lock or throws a UserError naming the PID that holds it. `what` names the locked
 * thing in that message ("job pg").
 */
export function acquireLock(file: string, what: string): Lock {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o644);
      const owner: LockOwner = { pid: process.pid, startTime: processStartTime(process.pid), acquiredAt: new Date().toISOString() };
      try {
        fs.writeSync(fd, JSON.stringify(owner));
        fs.fsyncSync(fd);
      } catch (error) {
        // A full disk lets the file be created but not written: leave no empty lock behind.
        fs.closeSync(fd);
        fs.rmSync(file, { force: true });
        throw error;
      }
      fs.closeSync(fd);
      heldByThisProcess.add(file);
      return { release: () => releaseLock(file) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = heldByThisProcess.has(file) ? undefined : readOwner(file);
    if (heldByThisProcess.has(file) || (owner !== undefined && ownerIsRunning(owner))) {
      const pid = owner?.pid ?? process.pid;
      throw new UserError(`${what} is already running (PID ${pid}, lock ${file}); wait for it to finish`);
    }
    // Stale: break it and try once more (a racing process may win, which the retry reports).
    fs.rmSync(file, { force: true });
  }
  throw new UserError(`${what} is already running (another process took the lock ${file} just now)`);
}

function releaseLock(file: string): void {
  if (!heldByThisProcess.delete(file)) return;
  fs.rmSync(file, { force: true });
}

/** Whether some live process holds the lock (used to tell a running job's partial from debris). */
export function isLockHeld(file: string): boolean {
  if (heldByThisProcess.has(file)) return true;
  const owner = fs.existsSync(file) ? readOwner(file) : undefined;
  return owner !== undefined && ownerIsRunning(owner);
}

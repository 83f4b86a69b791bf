import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { acquireLock, isLockHeld } from '../../runtime/agent/lock';

function lockPath(): string {
  return path.join(fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), 'lock-')), '.lock');
}

describe('job lock', () => {
  test('held until released; a second acquire names the holder', () => {
    const file = lockPath();
    const lock = acquireLock(file, 'job pg');
    expect(isLockHeld(file)).toBe(true);
    expect(() => acquireLock(file, 'job pg')).toThrow(`job pg is already running (PID ${process.pid}, lock ${file}); wait for it to finish`);
    lock.release();
    expect(fs.existsSync(file)).toBe(false);
    acquireLock(file, 'job pg').release();
  });

  test('a lock naming our own PID that this process does not hold is a previous life\'s (PID 1 in containers): broken', () => {
    const file = lockPath();
    fs.writeFileSync(file, JSON.stringify({ pid: process.pid, startTime: 'old', acquiredAt: '2025-01-01T00:00:00Z' }));
    expect(isLockHeld(file)).toBe(false);
    acquireLock(file, 'job pg').release();
  });

  test('a live PID with another start time is a reused PID: broken', () => {
    const file = lockPath();
    fs.writeFileSync(file, JSON.stringify({ pid: 1, startTime: 'not-init-start-time', acquiredAt: '2025-01-01T00:00:00Z' }));
    expect(isLockHeld(file)).toBe(false);
  });

  test('a half-written lock (owner died between create and write) is broken', () => {
    const file = lockPath();
    fs.writeFileSync(file, '');
    acquireLock(file, 'job pg').release();
  });
});

/**
 * The open-files limit. A thousand client sockets live in the drill's process, and PgBouncer (a
 * child, which inherits the limit at spawn) needs one per client too. Node already raises its
 * soft limit to the hard limit at start-up, so a soft limit below what is needed means the hard
 * limit is too low: `prlimit` raises both for this process (root may), before any server starts.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';

export interface FileLimit {
  soft: number;
  hard: number;
}

export function openFilesLimit(pid: number | 'self' = 'self'): FileLimit {
  const line = fs
    .readFileSync(`/proc/${pid}/limits`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const [soft, hard] = (line ?? '').split(/\s{2,}/).slice(1, 3).map((v) => (v === 'unlimited' ? Infinity : Number(v)));
  return { soft, hard };
}

/** Ensures at least `needed` open files; says what it found and what it did. */
export function ensureOpenFiles(needed: number): string {
  const before = openFilesLimit();
  if (before.soft >= needed) return `open files: soft ${before.soft}, hard ${before.hard} (≥ ${needed} needed; unchanged)`;
  execFileSync('prlimit', [`--pid=${process.pid}`, `--nofile=${needed}:${Math.max(needed, before.hard)}`], { stdio: 'pipe' });
  const after = openFilesLimit();
  if (after.soft < needed) throw new Error(`the open-files limit is ${after.soft} after prlimit; ${needed} are needed`);
  return `open files: soft ${before.soft} → ${after.soft} with prlimit (≥ ${needed} needed); servers started after this inherit it`;
}

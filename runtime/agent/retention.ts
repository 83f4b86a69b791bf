/**
 * Grandfather-father-son retention, as a pure function so it can be tested against a simulated
 * clock. Periods are calendar periods of `timeZone`, counted back from `now`:
 *
 * | policy      | keeps                                                                     |
 * |-------------|---------------------------------------------------------------------------|
 * | daily: N    | the newest good backup of each of the N days ending today                 |
 * | weekly: N   | the newest good backup of each of the N ISO weeks (Mon-Sun) ending this one |
 * | monthly: N  | the newest good backup of each of the N months ending this one            |
 *
 * A period is claimed by its newest good scheduled backup; a period with none is claimed by its
 * newest good manual one (`tenantry-agent run`). A manual run never takes a scheduled backup's
 * place, so it cannot make one disappear: every good manual backup is kept besides while it is
 * within the daily window (the `daily` days ending today), and after that only if it claims a
 * period. Backups whose manifest predates the `trigger` field count as scheduled.
 *
 * Whatever the policy says, these are never removed:
 * - the newest verified backup, however old (the last one proven to restore);
 * - the newest good backup (so the only good backup is never removed), and the newest good
 *   scheduled one;
 * - a backup of a job that is running now (its files are still being written);
 * - a backup dated after `now` (the clock moved back; its age cannot be judged).
 * Everything else is removed: older good backups outside the periods, failed and interrupted runs.
 */
import type { RetentionPolicy } from './config';

export interface RetentionCandidate {
  readonly id: string;
  readonly startedAt: Date;
  /** Finished and passed its checks, its files intact (see `isIntact` in manifest.ts): a verification that disagreed does not make a backup removable. */
  readonly good: boolean;
  /** Passed a verification (a test restore for Postgres). */
  readonly verified: boolean;
  /** Unfinished and owned by a job that is running now. */
  readonly running: boolean;
  /** Made by `tenantry-agent run` rather than by the schedule. @default false */
  readonly manual?: boolean;
}

export interface RetentionDecision {
  /** Ids to keep, each with why (e.g. "daily 2025-06-01", "newest verified"). */
  readonly keep: ReadonlyMap<string, string[]>;
  readonly remove: readonly string[];
}

interface LocalDate {
  year: number;
  month: number;
  day: number;
}

function localDate(instant: Date, formatter: Intl.DateTimeFormat): LocalDate {
  const parts = formatter.formatToParts(instant);
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  return { year: get('year'), month: get('month'), day: get('day') };
}

const DAY_MS = 86_400_000;

const formatters = new Map<string, Intl.DateTimeFormat>();

function dateFormatter(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: 'numeric', day: 'numeric' });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

/** Days since 1970-01-01 of a calendar date: a number that subtracts across months and years. */
function dayNumber(d: LocalDate): number {
  return Date.UTC(d.year, d.month - 1, d.day) / DAY_MS;
}

/** Monday-based week number: 1970-01-05 was a Monday. */
function weekNumber(d: LocalDate): number {
  return Math.floor((dayNumber(d) - 4) / 7);
}

function monthNumber(d: LocalDate): number {
  return d.year * 12 + (d.month - 1);
}

interface Period {
  readonly name: 'daily' | 'weekly' | 'monthly';
  readonly count: number;
  readonly index: (d: LocalDate) => number;
  readonly label: (d: LocalDate) => string;
}

const iso = (d: LocalDate) => `${d.year}-${String(d.month).padStart(2, '0')}-${String(d.day).padStart(2, '0')}`;

export function selectRetained(
  backups: readonly RetentionCandidate[],
  policy: RetentionPolicy,
  now: Date,
  timeZone: string,
): RetentionDecision {
  const formatter = dateFormatter(timeZone);
  const today = localDate(now, formatter);
  const keep = new Map<string, string[]>();
  const reason = (id: string, why: string) => keep.set(id, [...(keep.get(id) ?? []), why]);

  const newestFirst = [...backups].sort((a, b) => b.startedAt.getTime() - a.startedAt.getTime());
  const good = newestFirst.filter((b) => b.good && b.startedAt <= now);

  const periods: Period[] = [
    { name: 'daily', count: policy.daily, index: dayNumber, label: iso },
    { name: 'weekly', count: policy.weekly, index: weekNumber, label: (d) => `week of ${iso(d)}` },
    { name: 'monthly', count: policy.monthly, index: monthNumber, label: (d) => iso(d).slice(0, 7) },
  ];
  for (const period of periods) {
    const current = period.index(today);
    const claimed = new Set<number>();
    // Scheduled backups claim first, so a newer manual one never displaces them.
    for (const backup of [...good.filter((b) => !b.manual), ...good.filter((b) => b.manual)]) {
      const date = localDate(backup.startedAt, formatter);
      const index = period.index(date);
      if (current - index >= period.count) continue;
      if (period.name === 'daily' && backup.manual) reason(backup.id, `manual ${period.label(date)}`);
      if (claimed.has(index)) continue;
      claimed.add(index);
      reason(backup.id, `${period.name} ${period.label(date)}`);
    }
  }

  const newestVerified = good.find((b) => b.verified);
  if (newestVerified) reason(newestVerified.id, 'newest verified');
  if (good[0]) reason(good[0].id, 'newest good');
  // Otherwise a manual run would take "newest good" from the schedule's last backup and retire it.
  const newestScheduled = good.find((b) => !b.manual);
  if (newestScheduled && newestScheduled !== good[0]) reason(newestScheduled.id, 'newest scheduled');
  for (const backup of newestFirst) {
    if (backup.running) reason(backup.id, 'job running');
    else if (backup.startedAt > now) reason(backup.id, 'dated in the future');
  }

  return { keep, remove: newestFirst.filter((b) => !keep.has(b.id)).map((b) => b.id) };
}

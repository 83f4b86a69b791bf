import fc from 'fast-check';
import { RetentionCandidate, selectRetained } from '../../runtime/agent/retention';

const TZ = 'Europe/Berlin';
const DAY = 86_400_000;

function backup(id: string, iso: string, over: Partial<RetentionCandidate> = {}): RetentionCandidate {
  return { id, startedAt: new Date(iso), good: true, verified: false, running: false, ...over };
}

describe('selectRetained', () => {
  test('GIVEN a year of nightly backups WHEN 7/4/6 THEN it keeps 7 days, 4 weeks and 6 months', () => {
    const now = new Date('2025-06-30T12:00:00Z'); // a Monday
    const backups = Array.from({ length: 365 }, (_, i) => {
      const at = new Date(Date.parse('2025-06-30T01:00:00Z') - i * DAY);
      return backup(at.toISOString().slice(0, 10), at.toISOString());
    });
    const { keep } = selectRetained(backups, { daily: 7, weekly: 4, monthly: 6 }, now, TZ);
    expect([...keep.keys()].sort()).toEqual([
      '2025-01-31', '2025-02-28', '2025-03-31', '2025-04-30', '2025-05-31', // months: newest of each
      '2025-06-15', '2025-06-22', // weeks: newest (Sunday) of the previous weeks; 06-29 is also a day
      '2025-06-24', '2025-06-25', '2025-06-26', '2025-06-27', '2025-06-28', '2025-06-29', '2025-06-30', // 7 days
    ].sort());
    expect(keep.get('2025-06-30')).toEqual(['daily 2025-06-30', 'weekly week of 2025-06-30', 'monthly 2025-06', 'newest good']);
  });

  test('keeps the newest verified backup however old, and the only good backup whatever the policy', () => {
    const now = new Date('2025-06-30T12:00:00Z');
    const backups = [
      backup('old-verified', '2024-01-01T01:00:00Z', { verified: true }),
      backup('only-good', '2024-02-01T01:00:00Z'),
      backup('failed', '2025-06-30T01:00:00Z', { good: false }),
    ];
    const { keep, remove } = selectRetained(backups, { daily: 0, weekly: 0, monthly: 0 }, now, TZ);
    expect(keep.get('old-verified')).toEqual(['newest verified']);
    expect(keep.get('only-good')).toEqual(['newest good']);
    expect(remove).toEqual(['failed']);
  });

  test('never removes the unfinished backup of a running job, nor one dated after now', () => {
    const now = new Date('2025-06-30T12:00:00Z');
    const backups = [
      backup('running', '2025-06-30T11:00:00Z', { good: false, running: true }),
      backup('interrupted', '2025-06-29T11:00:00Z', { good: false }),
      backup('future', '2025-07-30T11:00:00Z'),
    ];
    const { keep, remove } = selectRetained(backups, { daily: 1, weekly: 0, monthly: 0 }, now, TZ);
    expect([...keep.keys()].sort()).toEqual(['future', 'running']);
    expect(remove).toEqual(['interrupted']);
  });

  test('days are calendar days of the time zone: 23:30 UTC on 2025-06-29 is June 30th in Berlin', () => {
    const now = new Date('2025-06-30T12:00:00Z');
    const backups = [backup('late', '2025-06-29T23:30:00Z'), backup('early', '2025-06-29T21:30:00Z')];
    const { keep } = selectRetained(backups, { daily: 2, weekly: 0, monthly: 0 }, now, TZ);
    expect(keep.get('late')).toContain('daily 2025-06-30');
    expect(keep.get('early')).toEqual(['daily 2025-06-29']);
  });
});

// ---------------------------------------------------------------------------------------------
// Property: a year of nightly runs on a simulated clock, retention applied after each run as the
// agent does. The oracle below computes periods differently (date strings from another Intl
// locale, ISO week numbers by the Thursday rule, month arithmetic on strings).

/** "YYYY-MM-DD" in Berlin, via the Swedish locale's ISO-like date format. */
const berlinDates = new Map<number, string>();
function berlinDate(at: Date): string {
  let date = berlinDates.get(at.getTime());
  if (date === undefined) {
    date = at.toLocaleDateString('sv-SE', { timeZone: TZ });
    berlinDates.set(at.getTime(), date);
  }
  return date;
}

function addDays(date: string, days: number): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + days * DAY).toISOString().slice(0, 10);
}

/** ISO 8601 week "YYYY-Www": the week belongs to the year of its Thursday. */
function isoWeek(date: string): string {
  const d = new Date(`${date}T00:00:00Z`);
  const thursday = new Date(d.getTime() + (3 - ((d.getUTCDay() + 6) % 7)) * DAY);
  const yearStart = Date.UTC(thursday.getUTCFullYear(), 0, 1);
  const week = 1 + Math.floor((thursday.getTime() - yearStart) / (7 * DAY));
  return `${thursday.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

function monthsBack(month: string, n: number): string {
  const [y, m] = month.split('-').map(Number);
  const total = y * 12 + (m - 1) - n;
  return `${Math.floor(total / 12)}-${String((total % 12) + 1).padStart(2, '0')}`;
}

function oracleKeep(backups: RetentionCandidate[], policy: { daily: number; weekly: number; monthly: number }, now: Date): Set<string> {
  const good = backups.filter((b) => b.good && b.startedAt <= now);
  const newestIn = (key: (b: RetentionCandidate) => string, allowed: Set<string>) => {
    const best = new Map<string, RetentionCandidate>();
    for (const b of good) {
      const k = key(b);
      if (!allowed.has(k)) continue;
      const current = best.get(k);
      if (!current || b.startedAt > current.startedAt) best.set(k, b);
    }
    return [...best.values()].map((b) => b.id);
  };
  const today = berlinDate(now);
  const days = new Set(Array.from({ length: policy.daily }, (_, i) => addDays(today, -i)));
  const weeks = new Set(Array.from({ length: policy.weekly }, (_, i) => isoWeek(addDays(today, -7 * i))));
  const months = new Set(Array.from({ length: policy.monthly }, (_, i) => monthsBack(today.slice(0, 7), i)));
  const kept = new Set([
    ...newestIn((b) => berlinDate(b.startedAt), days),
    ...newestIn((b) => isoWeek(berlinDate(b.startedAt)), weeks),
    ...newestIn((b) => berlinDate(b.startedAt).slice(0, 7), months),
  ]);
  const newest = (list: RetentionCandidate[]) => list.reduce<RetentionCandidate | undefined>((a, b) => (!a || b.startedAt > a.startedAt ? b : a), undefined);
  const newestGood = newest(good);
  const newestVerified = newest(good.filter((b) => b.verified));
  if (newestGood) kept.add(newestGood.id);
  if (newestVerified) kept.add(newestVerified.id);
  for (const b of backups) if (b.running || b.startedAt > now) kept.add(b.id);
  return kept;
}

interface Night {
  /** Minutes after 21:00 UTC, so runs straddle Berlin's midnight. */
  minute: number;
  outcome: 'ok' | 'failed';
  verifyNewest: boolean;
  /** Another run of the job is in flight (its unfinished backup exists) when retention runs. */
  concurrentPartial: boolean;
}

const nightArb: fc.Arbitrary<Night> = fc.record({
  minute: fc.integer({ min: 0, max: 6 * 60 }),
  outcome: fc.constantFrom<Night['outcome']>('ok', 'ok', 'ok', 'ok', 'failed'),
  verifyNewest: fc.integer({ min: 0, max: 6 }).map((n) => n === 0),
  concurrentPartial: fc.constantFrom(false, false, false, false, false, false, false, false, false, true),
});

test('property: over a simulated year the kept set matches the policy and the newest verified backup survives', () => {
  fc.assert(
    fc.property(
      fc.record({ daily: fc.integer({ min: 0, max: 10 }), weekly: fc.integer({ min: 0, max: 6 }), monthly: fc.integer({ min: 0, max: 13 }) }),
      fc.array(nightArb, { minLength: 365, maxLength: 365 }),
      (policy, nights) => {
        let stored: RetentionCandidate[] = [];
        let newestVerifiedEver: string | undefined;
        nights.forEach((night, day) => {
          const startedAt = new Date(Date.parse('2025-01-01T21:00:00Z') + day * DAY + night.minute * 60_000);
          const id = `run-${day}`;
          stored.push({ id, startedAt, good: night.outcome === 'ok', verified: false, running: false });
          if (night.verifyNewest) {
            const newestGood = [...stored].reverse().find((b) => b.good);
            if (newestGood) {
              stored = stored.map((b) => (b === newestGood ? { ...b, verified: true } : b));
              newestVerifiedEver = newestGood.id;
            }
          }
          const candidates = night.concurrentPartial
            ? [...stored, { id: `partial-${day}`, startedAt: new Date(startedAt.getTime() + 60_000), good: false, verified: false, running: true }]
            : stored;
          const now = new Date(startedAt.getTime() + 30 * 60_000);

          const { keep, remove } = selectRetained(candidates, policy, now, TZ);

          expect(new Set(keep.keys())).toEqual(oracleKeep(candidates, policy, now));
          expect(new Set([...keep.keys(), ...remove])).toEqual(new Set(candidates.map((b) => b.id)));
          if (newestVerifiedEver !== undefined) expect(keep.has(newestVerifiedEver)).toBe(true);
          if (night.concurrentPartial) expect(keep.has(`partial-${day}`)).toBe(true);
          stored = stored.filter((b) => keep.has(b.id));
        });
      },
    ),
    { numRuns: 40 },
  );
});

describe('manual runs (tenantry-agent run) and retention', () => {
  test('a manual run never displaces the scheduled backup of its day, nor any earlier one', () => {
    const now = new Date('2025-06-30T12:00:00Z');
    const backups = [
      backup('scheduled-29', '2025-06-29T01:00:00Z'),
      backup('manual-29', '2025-06-29T15:00:00Z', { manual: true }),
      backup('scheduled-30', '2025-06-30T01:00:00Z'),
      backup('manual-30-a', '2025-06-30T09:00:00Z', { manual: true }),
      backup('manual-30-b', '2025-06-30T11:00:00Z', { manual: true }),
    ];
    const { keep, remove } = selectRetained(backups, { daily: 2, weekly: 0, monthly: 0 }, now, TZ);
    expect(remove).toEqual([]);
    expect(keep.get('scheduled-30')).toEqual(['daily 2025-06-30', 'newest scheduled']);
    expect(keep.get('manual-30-b')).toEqual(['manual 2025-06-30', 'newest good']);
    expect(keep.get('manual-30-a')).toEqual(['manual 2025-06-30']);
    expect(keep.get('scheduled-29')).toEqual(['daily 2025-06-29']);
  });

  test('manual backups leave with the daily window, unless one is the only backup of a period', () => {
    const now = new Date('2025-06-30T12:00:00Z');
    const backups = [
      backup('manual-only-may', '2025-05-10T09:00:00Z', { manual: true }),
      backup('scheduled-28', '2025-06-28T01:00:00Z'),
      backup('manual-28', '2025-06-28T15:00:00Z', { manual: true }),
      backup('scheduled-30', '2025-06-30T01:00:00Z'),
    ];
    const { keep, remove } = selectRetained(backups, { daily: 2, weekly: 0, monthly: 2 }, now, TZ);
    expect(keep.get('manual-only-may')).toEqual(['monthly 2025-05']);
    expect(remove).toEqual(['manual-28', 'scheduled-28']);
  });

  test('property: adding manual runs never changes which scheduled backups are kept (daily >= 1)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ minute: fc.integer({ min: 0, max: 60 * 24 * 40 }), manual: fc.boolean(), good: fc.boolean() }), { maxLength: 60 }),
        fc.record({ daily: fc.integer({ min: 1, max: 10 }), weekly: fc.integer({ min: 0, max: 5 }), monthly: fc.integer({ min: 0, max: 3 }) }),
        (runs, policy) => {
          const now = new Date('2025-06-30T12:00:00Z');
          const all = runs.map((r, i) => backup(`${r.manual ? 'manual' : 'scheduled'}-${i}`, new Date(now.getTime() - r.minute * 60_000).toISOString(), { manual: r.manual, good: r.good }));
          const scheduledOnly = all.filter((b) => !b.manual);
          const keptScheduled = (set: readonly RetentionCandidate[]) => [...selectRetained(set, policy, now, TZ).keep.keys()].filter((id) => id.startsWith('scheduled')).sort();
          expect(keptScheduled(all)).toEqual(keptScheduled(scheduledOnly));
        },
      ),
      { numRuns: 200 },
    );
  });
});

import fc from 'fast-check';
import { BaseBackupCandidate, selectPitrRetained } from '../../runtime/agent/pitr/retention';

const TZ = 'Europe/Berlin';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const START = Date.parse('2025-01-01T02:00:00Z');

/** LSNs grow with time in this simulation: one byte per millisecond since START. */
const lsnAt = (at: number) => BigInt(at - START);

function base(id: string, startedAt: number, over: Partial<BaseBackupCandidate> = {}): BaseBackupCandidate {
  return { id, startedAt: new Date(startedAt), consistentAt: new Date(startedAt + HOUR), startLsn: lsnAt(startedAt), systemIdentifier: '7000', good: true, verified: false, running: false, ...over };
}

describe('selectPitrRetained', () => {
  test('keeps the newest base backup consistent by the window\'s start, beyond what GFS keeps, and prunes WAL only before the oldest kept', () => {
    const now = START + 20 * DAY;
    const backups = Array.from({ length: 20 }, (_, day) => base(`day-${day}`, START + day * DAY));
    const { keep, remove, pruneWalBefore } = selectPitrRetained(backups, { daily: 3, weekly: 0, monthly: 0 }, 10, new Date(now), TZ);
    expect(keep.get('day-9')).toEqual(['window of 10 days']);
    expect([...keep.keys()].sort()).toEqual(['day-18', 'day-19', 'day-9']);
    expect(remove).toContain('day-8');
    expect(remove).toContain('day-10');
    expect(pruneWalBefore).toEqual(new Map([['7000', lsnAt(START + 9 * DAY)]]));
  });

  test('while no base backup is as old as the window, the oldest good one stays', () => {
    const now = START + 3 * DAY;
    const backups = [base('failed', START - HOUR, { good: false, consistentAt: undefined, startLsn: undefined }), base('first', START), base('second', START + DAY), base('third', START + 2 * DAY)];
    const { keep, remove } = selectPitrRetained(backups, { daily: 1, weekly: 0, monthly: 0 }, 30, new Date(now), TZ);
    expect(keep.get('first')).toEqual(['window of 30 days']);
    expect(remove).toEqual(['second', 'failed']);
  });
});

interface Night {
  outcome: 'ok' | 'failed';
  /** Hours the base backup takes to become consistent. */
  hours: number;
  verifyNewest: boolean;
}

test('property: over a simulated year, every moment of the window is restorable from what is kept (a base backup consistent at or before it, and WAL from its start)', () => {
  fc.assert(
    fc.property(
      fc.record({ daily: fc.integer({ min: 0, max: 10 }), weekly: fc.integer({ min: 0, max: 6 }), monthly: fc.integer({ min: 0, max: 13 }) }),
      fc.integer({ min: 0, max: 45 }),
      fc.array(
        fc.record({ outcome: fc.constantFrom<Night['outcome']>('ok', 'ok', 'ok', 'failed'), hours: fc.integer({ min: 0, max: 5 }), verifyNewest: fc.integer({ min: 0, max: 6 }).map((n) => n === 0) }),
        { minLength: 365, maxLength: 365 },
      ),
      (policy, windowDays, nights) => {
        let stored: BaseBackupCandidate[] = [];
        /** WAL is archived without gaps from the first base backup on; retention prunes its head. */
        let walFrom: bigint | undefined;
        let firstConsistent: number | undefined;
        let newestVerified: string | undefined;
        nights.forEach((night, day) => {
          const startedAt = START + day * DAY;
          const consistentAt = startedAt + night.hours * HOUR;
          const ok = night.outcome === 'ok';
          stored.push(base(`run-${day}`, startedAt, ok ? { consistentAt: new Date(consistentAt) } : { good: false, consistentAt: undefined, startLsn: undefined }));
          if (ok) {
            firstConsistent ??= consistentAt;
            walFrom ??= lsnAt(startedAt);
          }
          if (night.verifyNewest) {
            const newestGood = [...stored].reverse().find((b) => b.good);
            if (newestGood) {
              stored = stored.map((b) => (b === newestGood ? { ...b, verified: true } : b));
              newestVerified = newestGood.id;
            }
          }
          const now = consistentAt + HOUR;

          const { keep, pruneWalBefore } = selectPitrRetained(stored, policy, windowDays, new Date(now), TZ);
          stored = stored.filter((b) => keep.has(b.id));
          const pruned = pruneWalBefore.get('7000');
          if (pruned !== undefined && walFrom !== undefined && pruned > walFrom) walFrom = pruned;

          if (newestVerified !== undefined) expect(keep.has(newestVerified)).toBe(true);
          if (firstConsistent === undefined) return;
          // The hardest moment: the window's start (or the first moment any backup made restorable).
          // A base backup that serves it serves every later moment too, WAL being kept from its start.
          const moment = Math.max(now - windowDays * DAY, firstConsistent);
          const serves = stored.some((b) => b.good && b.consistentAt!.getTime() <= moment && b.startLsn! >= walFrom!);
          expect({ day, moment: new Date(moment).toISOString(), serves }).toEqual({ day, moment: new Date(moment).toISOString(), serves: true });
        });
      },
    ),
    { numRuns: 25 },
  );
});

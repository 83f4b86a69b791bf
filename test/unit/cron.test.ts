import fc from 'fast-check';
import { CronError, isValidTimeZone, longestGapSeconds, nextRun, parseCron } from '../../runtime/schedule/cron';

const HOUR = 3600;
const DAY = 24 * HOUR;

function next(expression: string, afterIso: string, tz = 'UTC'): string {
  return nextRun(parseCron(expression), new Date(afterIso), tz).toISOString();
}

/** Successive runs, to read a schedule's rhythm through a DST change. */
function runs(expression: string, afterIso: string, tz: string, count: number): string[] {
  const schedule = parseCron(expression);
  const out: string[] = [];
  let t = new Date(afterIso);
  for (let i = 0; i < count; i++) {
    t = nextRun(schedule, t, tz);
    out.push(t.toISOString());
  }
  return out;
}

describe('parseCron', () => {
  test('expands lists, ranges, steps and names', () => {
    const s = parseCron('*/20 1-3,22 1,15 jan-mar,DEC mon-fri');
    expect([...s.minutes]).toEqual([0, 20, 40]);
    expect([...s.hours]).toEqual([1, 2, 3, 22]);
    expect([...s.daysOfMonth]).toEqual([1, 15]);
    expect([...s.months]).toEqual([1, 2, 3, 12]);
    expect([...s.daysOfWeek]).toEqual([1, 2, 3, 4, 5]);
  });

  test('reads 7 as Sunday and `start/step` as running to the end of the field', () => {
    const s = parseCron('5/20 0 * * 7');
    expect([...s.minutes]).toEqual([5, 25, 45]);
    expect([...s.daysOfWeek]).toEqual([0]);
  });

  test.each([
    ['@hourly', '0 * * * *'],
    ['@daily', '0 0 * * *'],
    ['@weekly', '0 0 * * 0'],
    ['@monthly', '0 0 1 * *'],
  ])('macro %s means %s', (macro, expanded) => {
    const a = parseCron(macro);
    const b = parseCron(expanded);
    expect({ ...a, expression: '' }).toEqual({ ...b, expression: '' });
    expect(a.expression).toBe(macro);
  });

  test.each<[string, string | undefined, string]>([
    ['0 25 * * *', 'hour', 'hour field: 25 is out of range 0-23'],
    ['0 0 * *', undefined, 'expected 5 fields (minute hour day-of-month month day-of-week), got 4'],
    ['60 * * * *', 'minute', 'minute field: 60 is out of range 0-59'],
    ['0 0 0 * *', 'day-of-month', 'day-of-month field: 0 is out of range 1-31'],
    ['0 0 * foo *', 'month', "month field: 'foo' is not a number or a name like 'jan'"],
    ['0 0 * * 1-', 'day-of-week', "day-of-week field: '1-' is not a value or a range like 1-5"],
    ['*/0 * * * *', 'minute', "minute field: step '0' in '*/0' must be a positive whole number"],
    ['0 5-2 * * *', 'hour', 'hour field: range 5-2 runs backwards (write the smaller value first)'],
    ['0 0 1,,2 * *', 'day-of-month', "day-of-month field: empty list item in '1,,2'"],
    ['@fortnightly', undefined, "unknown macro '@fortnightly' (known: @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually)"],
    ['0 0 30 2 *', 'day-of-month', 'day-of-month field: day(s) 30 never occur in month(s) 2'],
    ['  ', undefined, 'the expression is empty'],
  ])('rejects %j: %s', (expression, field, message) => {
    let error: unknown;
    try {
      parseCron(expression);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CronError);
    expect((error as CronError).field).toBe(field);
    expect((error as CronError).message).toBe(message);
  });
});

describe('nextRun', () => {
  test('is strictly after the given time', () => {
    expect(next('*/15 * * * *', '2025-05-01T10:07:00Z')).toBe('2025-05-01T10:15:00.000Z');
    expect(next('*/15 * * * *', '2025-05-01T10:15:00Z')).toBe('2025-05-01T10:30:00.000Z');
    expect(next('0 0 1 1 *', '2025-12-31T23:59:59.999Z')).toBe('2026-01-01T00:00:00.000Z');
  });

  test('with both day fields restricted, a day matches if either does (Vixie OR rule)', () => {
    // 2025-06-13 is a Friday; the next Friday is the 20th, and July 13th is a Sunday.
    expect(runs('0 0 13 * 5', '2025-06-12T00:00:00Z', 'UTC', 3)).toEqual([
      '2025-06-13T00:00:00.000Z',
      '2025-06-20T00:00:00.000Z',
      '2025-06-27T00:00:00.000Z',
    ]);
    expect(next('0 0 13 * 5', '2025-07-11T00:00:00Z')).toBe('2025-07-13T00:00:00.000Z');
  });

  test('a day field starting with * keeps the AND rule, even with a step (as Vixie cron does)', () => {
    expect(next('0 0 13 * *', '2025-06-14T00:00:00Z')).toBe('2025-07-13T00:00:00.000Z');
    // Every second day AND Monday: 2025-06-02 (Mon, day 2) is not odd; 2025-06-09 (Mon, day 9) is.
    expect(next('0 0 */2 * mon', '2025-06-01T00:00:00Z')).toBe('2025-06-09T00:00:00.000Z');
  });

  test('evaluates the wall clock of the time zone', () => {
    expect(next('0 9 * * *', '2025-01-10T00:00:00Z', 'America/New_York')).toBe('2025-01-10T14:00:00.000Z');
    expect(next('0 9 * * *', '2025-01-10T00:00:00Z', 'Asia/Kolkata')).toBe('2025-01-10T03:30:00.000Z');
  });

  test('Europe/Berlin spring forward: a job in the missing hour runs once, shifted by the gap', () => {
    // 2025-03-30 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that night.
    expect(runs('30 2 * * *', '2025-03-28T12:00:00Z', 'Europe/Berlin', 3)).toEqual([
      '2025-03-29T01:30:00.000Z', // 02:30 CET
      '2025-03-30T01:30:00.000Z', // 03:30 CEST: the shifted run
      '2025-03-31T00:30:00.000Z', // 02:30 CEST
    ]);
  });

  test('Europe/Berlin spring forward: frequent jobs skip the missing hour without duplicates', () => {
    expect(runs('*/30 * * * *', '2025-03-30T00:00:00Z', 'Europe/Berlin', 4)).toEqual([
      '2025-03-30T00:30:00.000Z', // 01:30 CET
      '2025-03-30T01:00:00.000Z', // 03:00 CEST (02:00 and 02:30 would shift onto 03:00 and 03:30)
      '2025-03-30T01:30:00.000Z', // 03:30 CEST
      '2025-03-30T02:00:00.000Z',
    ]);
  });

  test('Europe/Berlin fall back: a nightly job runs once, at the first 02:30', () => {
    // 2025-10-26 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    expect(runs('30 2 * * *', '2025-10-25T12:00:00Z', 'Europe/Berlin', 2)).toEqual([
      '2025-10-26T00:30:00.000Z', // 02:30 CEST
      '2025-10-27T01:30:00.000Z', // 02:30 CET, next day
    ]);
  });

  test('Europe/Berlin fall back: an hourly job keeps its rhythm through the repeated hour', () => {
    expect(runs('0 * * * *', '2025-10-25T23:30:00Z', 'Europe/Berlin', 4)).toEqual([
      '2025-10-26T00:00:00.000Z', // 02:00 CEST
      '2025-10-26T01:00:00.000Z', // 02:00 CET
      '2025-10-26T02:00:00.000Z', // 03:00 CET
      '2025-10-26T03:00:00.000Z',
    ]);
  });

  test('rejects an unknown time zone', () => {
    expect(() => nextRun(parseCron('@daily'), new Date(), 'Mars/Olympus')).toThrow("unknown time zone 'Mars/Olympus'");
  });
});

describe('longestGapSeconds', () => {
  const from = new Date('2025-01-01T00:00:00Z');
  test.each<[string, string, number]>([
    ['0 * * * *', 'UTC', HOUR],
    ['*/5 * * * *', 'UTC', 300],
    ['0 3 * * 1-5', 'UTC', 3 * DAY], // Friday to Monday
    ['0 0 1 * *', 'UTC', 31 * DAY],
    ['@yearly', 'UTC', 365 * DAY],
    ['0 0 29 2 *', 'UTC', 1461 * DAY], // leap days 2028 -> 2032
    // The night Berlin falls back, 02:30 CEST to 02:30 CET the next night is 25 hours.
    ['30 2 * * *', 'Europe/Berlin', 25 * HOUR],
  ])('%s in %s is %d s', (expression, tz, expected) => {
    expect(longestGapSeconds(parseCron(expression), tz, from)).toBe(expected);
  });
});

describe('isValidTimeZone', () => {
  test.each([
    ['Europe/Berlin', true],
    ['UTC', true],
    ['America/Argentina/Buenos_Aires', true],
    ['Europe/Atlantis', false],
    ['', false],
  ])('%s -> %s', (tz, valid) => expect(isValidTimeZone(tz)).toBe(valid));
});

// --- Property: an independent oracle built from the generated field sets, not from parseCron. ---

interface Fields {
  minutes: number[];
  hours: number[];
  daysOfMonth: number[] | '*';
  months: number[];
  daysOfWeek: number[] | '*';
}

const subset = (min: number, max: number, maxLength: number) =>
  fc.uniqueArray(fc.integer({ min, max }), { minLength: 1, maxLength });

const fieldsArb: fc.Arbitrary<Fields> = fc.record({
  minutes: subset(0, 59, 4),
  hours: fc.oneof(subset(0, 23, 4), fc.constant(Array.from({ length: 24 }, (_, h) => h))),
  daysOfMonth: fc.oneof(fc.constant<'*'>('*'), subset(1, 28, 3)),
  months: fc.oneof(fc.constant(Array.from({ length: 12 }, (_, m) => m + 1)), subset(1, 12, 4)),
  daysOfWeek: fc.oneof(fc.constant<'*'>('*'), subset(0, 6, 3)),
});

function render(f: Fields): string {
  const list = (values: number[] | '*') => (values === '*' ? '*' : values.join(','));
  const hours = f.hours.length === 24 ? '*' : list(f.hours);
  return [list(f.minutes), hours, list(f.daysOfMonth), list(f.months), list(f.daysOfWeek)].join(' ');
}

interface Wall {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  weekday: number;
}

function wallIn(tz: string, instant: number): Wall {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone: tz,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
  }).formatToParts(new Date(instant));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  const [year, month, day] = [get('year'), get('month'), get('day')];
  return { year, month, day, hour: get('hour'), minute: get('minute'), weekday: new Date(Date.UTC(year, month - 1, day)).getUTCDay() };
}

function oracleMatches(f: Fields, w: Wall): boolean {
  const dom = f.daysOfMonth === '*' || f.daysOfMonth.includes(w.day);
  const dow = f.daysOfWeek === '*' || f.daysOfWeek.includes(w.weekday);
  const dayOk = f.daysOfMonth !== '*' && f.daysOfWeek !== '*' ? dom || dow : dom && dow;
  return f.minutes.includes(w.minute) && f.hours.includes(w.hour) && f.months.includes(w.month) && dayOk;
}

/** Wall reading minus instant, in ms. */
function offsetMs(tz: string, instant: number): number {
  const w = wallIn(tz, instant);
  return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute) - Math.floor(instant / 60_000) * 60_000;
}

const timeZones = ['UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kolkata'];
// Times near Berlin's DST changes are over-weighted: that is where wall-clock code goes wrong.
const afterArb = fc.oneof(
  fc.date({ min: new Date('2020-01-01T00:00:00Z'), max: new Date('2030-12-31T00:00:00Z'), noInvalidDate: true }),
  fc.constantFrom('2025-03-30T00:00:00Z', '2025-10-26T00:00:00Z', '2026-03-29T00:00:00Z', '2026-10-25T00:00:00Z').chain((iso) =>
    fc.integer({ min: -36 * 60, max: 36 * 60 }).map((minutes) => new Date(Date.parse(iso) + minutes * 60_000)),
  ),
);

test('property: nextRun(s, t) is after t, matches s, and no earlier run was missed', () => {
  fc.assert(
    fc.property(fieldsArb, afterArb, fc.constantFrom(...timeZones), (fields, after, tz) => {
      const run = nextRun(parseCron(render(fields)), after, tz).getTime();
      expect(run).toBeGreaterThan(after.getTime());
      expect(run % 60_000).toBe(0);

      const wall = wallIn(tz, run);
      if (!oracleMatches(fields, wall)) {
        // Only allowed as a run shifted out of a spring-forward gap: read with the offset in force
        // before the jump, the instant must show a matching wall time that did not exist.
        const before = offsetMs(tz, run - 86_400_000);
        expect(before).toBeLessThan(offsetMs(tz, run));
        const shifted = new Date(run + before);
        const shiftedWall: Wall = {
          year: shifted.getUTCFullYear(),
          month: shifted.getUTCMonth() + 1,
          day: shifted.getUTCDate(),
          hour: shifted.getUTCHours(),
          minute: shifted.getUTCMinutes(),
          weekday: shifted.getUTCDay(),
        };
        expect(oracleMatches(fields, shiftedWall)).toBe(true);
      }

      const shiftBackAt = (t: number) => offsetMs(tz, t - 86_400_000) - offsetMs(tz, t);
      const isSecondOccurrence = (t: number) =>
        shiftBackAt(t) > 0 && JSON.stringify(wallIn(tz, t - shiftBackAt(t))) === JSON.stringify(wallIn(tz, t));
      if (fields.hours.length < 24) expect(isSecondOccurrence(run)).toBe(false);

      // Minimality by day: every matching local day strictly between the two has a run (shifted
      // out of a gap at worst), so none may lie between the day of `after` and the day of the run.
      const afterWall = wallIn(tz, after.getTime());
      const lastDay = Date.UTC(wall.year, wall.month - 1, wall.day);
      for (let day = Date.UTC(afterWall.year, afterWall.month - 1, afterWall.day) + 86_400_000; day < lastDay; day += 86_400_000) {
        const d = new Date(day);
        const dayWall: Wall = { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: fields.hours[0], minute: fields.minutes[0], weekday: d.getUTCDay() };
        if (oracleMatches(fields, dayWall)) throw new Error(`missed day ${d.toISOString().slice(0, 10)}`);
      }

      // Minimality, checked minute by minute when the run is near enough to afford it. A second
      // occurrence of a wall time in a fall-back hour is not a run unless the hour field is `*`.
      if (run - after.getTime() <= 36 * 3600_000) {
        const start = Math.floor(after.getTime() / 60_000) * 60_000 + 60_000;
        for (let t = start; t < run; t += 60_000) {
          if (!oracleMatches(fields, wallIn(tz, t))) continue;
          const secondOfTwo = fields.hours.length < 24 && isSecondOccurrence(t);
          if (!secondOfTwo) throw new Error(`missed a run at ${new Date(t).toISOString()} before ${new Date(run).toISOString()}`);
        }
      }
    }),
    { numRuns: 300 },
  );
});

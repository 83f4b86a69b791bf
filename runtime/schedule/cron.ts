/**
 * Five-field cron expressions (Vixie cron dialect) evaluated in an IANA time zone.
 *
 * Supported: `*`, lists (`1,5`), ranges (`1-5`), steps (`*\/15`, `1-30/5`, `5/15` = `5-max/15`),
 * month and day names (`jan`, `mon-fri`), day-of-week 7 as Sunday, and the macros
 * `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly`, `@yearly` (`@annually`).
 *
 * Day rule (as in Vixie cron): when both day-of-month and day-of-week are restricted (neither
 * starts with `*`), a day matches if EITHER matches; otherwise both must match.
 *
 * Daylight saving time, decided per wall-clock time the schedule names:
 * - A wall time that does not exist (spring-forward gap, e.g. 02:30 on Berlin's last Sunday of
 *   March) runs as if the clock had not jumped yet, i.e. shifted forward by the gap (03:30 CEST).
 *   A nightly job still runs once that night instead of silently skipping a day.
 * - A wall time that occurs twice (fall-back overlap) runs once, at its first occurrence, so a
 *   nightly job does not run twice. If the hour field starts with `*` (an hourly-or-more-often
 *   job) it runs at both occurrences, so the job keeps its rhythm through the repeated hour.
 * These are the rules Vixie cron applies, stated for absolute instants.
 */

export type CronField = 'minute' | 'hour' | 'day-of-month' | 'month' | 'day-of-week';

export class CronError extends Error {
  constructor(
    /** The field at fault, or undefined when the expression as a whole is wrong. */
    readonly field: CronField | undefined,
    message: string,
  ) {
    super(field === undefined ? message : `${field} field: ${message}`);
    this.name = 'CronError';
  }
}

export interface CronSchedule {
  /** The expression as written (macros are kept as written). */
  readonly expression: string;
  readonly minutes: ReadonlySet<number>;
  readonly hours: ReadonlySet<number>;
  readonly daysOfMonth: ReadonlySet<number>;
  readonly months: ReadonlySet<number>;
  /** 0 = Sunday … 6 = Saturday (7 in the expression is folded into 0). */
  readonly daysOfWeek: ReadonlySet<number>;
  /** Whether day-of-month was written without a leading `*` (decides the OR rule). */
  readonly dayOfMonthRestricted: boolean;
  readonly dayOfWeekRestricted: boolean;
  /** Whether the hour field starts with `*` (decides the fall-back overlap rule). */
  readonly hourUnrestricted: boolean;
}

interface FieldSpec {
  readonly field: CronField;
  readonly min: number;
  readonly max: number;
  readonly names?: readonly string[];
}

const MONTH_NAMES = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

const FIELDS: readonly FieldSpec[] = [
  { field: 'minute', min: 0, max: 59 },
  { field: 'hour', min: 0, max: 23 },
  { field: 'day-of-month', min: 1, max: 31 },
  { field: 'month', min: 1, max: 12, names: MONTH_NAMES },
  { field: 'day-of-week', min: 0, max: 7, names: DAY_NAMES },
];

const MACROS: Readonly<Record<string, string>> = {
  '@hourly': '0 * * * *',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@weekly': '0 0 * * 0',
  '@monthly': '0 0 1 * *',
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
};

/** Longest a month can be, February counted as 29 so that leap days stay reachable. */
const MONTH_MAX_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

export function parseCron(expression: string): CronSchedule {
  const trimmed = expression.trim();
  if (trimmed === '') throw new CronError(undefined, 'the expression is empty');
  const expanded = trimmed.startsWith('@') ? expandMacro(trimmed) : trimmed;
  const parts = expanded.split(/\s+/);
  if (parts.length !== FIELDS.length) {
    throw new CronError(
      undefined,
      `expected 5 fields (minute hour day-of-month month day-of-week), got ${parts.length}`,
    );
  }
  const [minutes, hours, daysOfMonth, months, rawDaysOfWeek] = FIELDS.map((spec, i) => parseField(parts[i], spec));
  const daysOfWeek = new Set([...rawDaysOfWeek].map((d) => d % 7));
  const schedule: CronSchedule = {
    expression,
    minutes,
    hours,
    daysOfMonth,
    months,
    daysOfWeek,
    dayOfMonthRestricted: !parts[2].startsWith('*'),
    dayOfWeekRestricted: !parts[4].startsWith('*'),
    hourUnrestricted: parts[1].startsWith('*'),
  };
  rejectImpossibleDates(schedule);
  return schedule;
}

function expandMacro(macro: string): string {
  const expanded = MACROS[macro.toLowerCase()];
  if (expanded === undefined) {
    throw new CronError(undefined, `unknown macro '${macro}' (known: ${Object.keys(MACROS).join(', ')})`);
  }
  return expanded;
}

function parseField(text: string, spec: FieldSpec): Set<number> {
  const values = new Set<number>();
  for (const item of text.split(',')) {
    if (item === '') throw new CronError(spec.field, `empty list item in '${text}'`);
    for (const value of parseItem(item, spec)) values.add(value);
  }
  return values;
}

/** One list item: `*`, `a`, `a-b`, each optionally followed by `/step`. */
function parseItem(item: string, spec: FieldSpec): number[] {
  const [rangeText, stepText, extra] = item.split('/');
  if (extra !== undefined) throw new CronError(spec.field, `'${item}' has more than one '/'`);
  const step = stepText === undefined ? 1 : parseStep(stepText, item, spec);
  const [start, end] = parseRange(rangeText, stepText !== undefined, spec);
  const values: number[] = [];
  for (let v = start; v <= end; v += step) values.push(v);
  return values;
}

function parseStep(text: string, item: string, spec: FieldSpec): number {
  if (!/^\d+$/.test(text) || Number(text) === 0) {
    throw new CronError(spec.field, `step '${text}' in '${item}' must be a positive whole number`);
  }
  return Number(text);
}

function parseRange(text: string, stepped: boolean, spec: FieldSpec): [number, number] {
  if (text === '*') return [spec.min, spec.max];
  const bounds = text.split('-');
  if (bounds.length > 2 || bounds.some((b) => b === '')) {
    throw new CronError(spec.field, `'${text}' is not a value or a range like 1-5`);
  }
  const start = parseValue(bounds[0], spec);
  // `5/15` means "from 5 to the end, every 15", the common extension of Vixie's syntax.
  const end = bounds.length === 2 ? parseValue(bounds[1], spec) : stepped ? spec.max : start;
  if (start > end) throw new CronError(spec.field, `range ${text} runs backwards (write the smaller value first)`);
  return [start, end];
}

function parseValue(text: string, spec: FieldSpec): number {
  const named = spec.names?.indexOf(text.toLowerCase()) ?? -1;
  if (named >= 0) return spec.field === 'month' ? named + 1 : named;
  if (!/^\d+$/.test(text)) {
    const hint = spec.names ? ` or a name like '${spec.names[0]}'` : '';
    throw new CronError(spec.field, `'${text}' is not a number${hint}`);
  }
  const value = Number(text);
  if (value < spec.min || value > spec.max) {
    throw new CronError(spec.field, `${text} is out of range ${spec.min}-${spec.max}`);
  }
  return value;
}

/** `0 0 31 2 *` would make nextRun search forever; say so when the schedule is read instead. */
function rejectImpossibleDates(schedule: CronSchedule): void {
  if (schedule.dayOfMonthRestricted && schedule.dayOfWeekRestricted) return; // OR rule: weekdays always occur
  const possible = [...schedule.months].some((m) => [...schedule.daysOfMonth].some((d) => d <= MONTH_MAX_DAYS[m - 1]));
  if (!possible) {
    throw new CronError(
      'day-of-month',
      `day(s) ${[...schedule.daysOfMonth].join(',')} never occur in month(s) ${[...schedule.months].join(',')}`,
    );
  }
}

const knownZones = new Map<string, boolean>();

/** Cached: every tenant's config asks, and building an Intl.DateTimeFormat is not cheap. */
export function isValidTimeZone(tz: string): boolean {
  let valid = knownZones.get(tz);
  if (valid === undefined) {
    valid = tz.trim() !== '' && canFormatIn(tz);
    knownZones.set(tz, valid);
  }
  return valid;
}

function canFormatIn(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Wall-clock arithmetic. A "wall" value is the local date-time encoded as if it were UTC
// milliseconds, so calendar arithmetic is plain addition; an instant is a real epoch millisecond.

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;
/** Any instant of a local day lies within these distances of its wall midnight (UTC-12 … UTC+14). */
const MAX_OFFSET_BEHIND_MS = 12 * HOUR_MS;
const MAX_OFFSET_AHEAD_MS = 14 * HOUR_MS;

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (formatter === undefined) {
    if (!isValidTimeZone(timeZone)) throw new CronError(undefined, `unknown time zone '${timeZone}'`);
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

/** The wall-clock reading of an instant in a time zone, at second precision. */
function wallOf(instant: number, timeZone: string): number {
  const parts: Record<string, number> = {};
  for (const part of formatterFor(timeZone).formatToParts(new Date(instant))) {
    if (part.type !== 'literal') parts[part.type] = Number(part.value);
  }
  return Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second);
}

/** UTC offset (wall minus instant) in force at an instant. */
function offsetAt(instant: number, timeZone: string): number {
  const whole = Math.floor(instant / 1000) * 1000;
  return wallOf(whole, timeZone) - whole;
}

/**
 * The instants at which a wall time occurs (see the DST rules at the top of this file).
 * Assumes a zone changes its offset at most once within a day either side of the wall time,
 * which holds for every zone in the tz database.
 */
function instantsOfWall(wall: number, timeZone: string, bothInOverlap: boolean): number[] {
  const before = offsetAt(wall - DAY_MS, timeZone);
  const after = offsetAt(wall + DAY_MS, timeZone);
  const exact = [...new Set([before, after])]
    .map((offset) => wall - offset)
    .filter((instant) => wallOf(instant, timeZone) === wall)
    .sort((a, b) => a - b);
  if (exact.length === 0) return [wall - before]; // gap: as if the clock had not jumped yet
  return bothInOverlap ? exact : exact.slice(0, 1);
}

function dayMatches(schedule: CronSchedule, wallMidnight: number): boolean {
  const date = new Date(wallMidnight);
  if (!schedule.months.has(date.getUTCMonth() + 1)) return false;
  const dom = schedule.daysOfMonth.has(date.getUTCDate());
  const dow = schedule.daysOfWeek.has(date.getUTCDay());
  return schedule.dayOfMonthRestricted && schedule.dayOfWeekRestricted ? dom || dow : dom && dow;
}

/** Wall times of a matching day, ascending. */
function wallTimesOfDay(schedule: CronSchedule, wallMidnight: number): number[] {
  const hours = [...schedule.hours].sort((a, b) => a - b);
  const minutes = [...schedule.minutes].sort((a, b) => a - b);
  return hours.flatMap((h) => minutes.map((m) => wallMidnight + h * HOUR_MS + m * MINUTE_MS));
}

/** Every run of the schedule whose wall date is the given local day, as sorted instants. */
function runsOnDay(schedule: CronSchedule, wallMidnight: number, timeZone: string): number[] {
  if (!dayMatches(schedule, wallMidnight)) return [];
  const walls = wallTimesOfDay(schedule, wallMidnight);
  // Fast path: one offset around the whole day means no transition, so instants are walls shifted.
  const early = offsetAt(wallMidnight - MAX_OFFSET_AHEAD_MS, timeZone);
  const late = offsetAt(wallMidnight + DAY_MS + MAX_OFFSET_BEHIND_MS, timeZone);
  if (early === late) return walls.map((wall) => wall - early);
  const instants = walls.flatMap((wall) => instantsOfWall(wall, timeZone, schedule.hourUnrestricted));
  return [...new Set(instants)].sort((a, b) => a - b);
}

function wallMidnightOf(instant: number, timeZone: string): number {
  const wall = wallOf(instant, timeZone);
  return wall - (((wall % DAY_MS) + DAY_MS) % DAY_MS);
}

/**
 * parseCron rejects schedules that never run, but `0 0 29 2 1-5`-like rules can take years to
 * come round; nine years covers every leap-day-on-a-weekday combination.
 */
const SEARCH_LIMIT_DAYS = 9 * 366;

/** The first run strictly after `after`. */
export function nextRun(schedule: CronSchedule, after: Date, timeZone: string): Date {
  const afterMs = after.getTime();
  if (Number.isNaN(afterMs)) throw new RangeError('nextRun: `after` is an invalid Date');
  // Start a day early: a gap-shifted run of the previous wall day can land after `after`.
  const firstDay = wallMidnightOf(afterMs, timeZone) - DAY_MS;
  for (let day = 0; day <= SEARCH_LIMIT_DAYS; day++) {
    const run = runsOnDay(schedule, firstDay + day * DAY_MS, timeZone).find((instant) => instant > afterMs);
    if (run !== undefined) return new Date(run);
  }
  throw new CronError(undefined, `'${schedule.expression}' has no run within ${SEARCH_LIMIT_DAYS / 366} years`);
}

/** Wide enough to see every month, both DST transitions and a year boundary. */
const GAP_WINDOW_DAYS = 366;

/**
 * The longest interval, in seconds, between consecutive runs in the year after `from`
 * (plus the run that follows the window, so yearly or leap-day schedules still yield a gap).
 */
export function longestGapSeconds(schedule: CronSchedule, timeZone: string, from: Date): number {
  const firstDay = wallMidnightOf(from.getTime(), timeZone);
  const runs: number[] = [];
  for (let day = 0; day < GAP_WINDOW_DAYS; day++) {
    runs.push(...runsOnDay(schedule, firstDay + day * DAY_MS, timeZone));
  }
  while (runs.length < 2) {
    const last = runs.length === 0 ? from : new Date(runs[runs.length - 1]);
    runs.push(nextRun(schedule, last, timeZone).getTime());
  }
  runs.push(nextRun(schedule, new Date(runs[runs.length - 1]), timeZone).getTime());
  let longest = 0;
  for (let i = 1; i < runs.length; i++) longest = Math.max(longest, runs[i] - runs[i - 1]);
  return longest / 1000;
}

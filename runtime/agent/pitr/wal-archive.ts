/**
 * The WAL archive of a postgres-pitr job on the backup volume, and the arithmetic to read it:
 *
 *   <backupDir>/<job>/wal/<system-identifier>/          pg_receivewal's directory
 *       000000010000000000000003                         a completed segment (never rewritten)
 *       00000002.history                                 a timeline's history
 *       000000020000000000000007.partial                 the segment being received
 *       server.json                                      the server this folder belongs to
 *       .sealed/<segment>                                a hard link to each completed segment
 *       .refused/<segment>.<stamp>                       different bytes offered under a sealed name
 *       .offsite/<segment>                               marker: the segment is in the off-site bucket
 *       abandoned/<timeline>/<segment>                   a branch the server's history left (see setAsideAbandoned)
 *
 * A server re-initialised at the same address has a new system identifier and so a new folder: a
 * segment is never replaced by another server's segment of the same name. Within a folder the
 * seal keeps a completed segment's first bytes: pg_receivewal renames a finished `.partial` over
 * whatever has its name, so `sealCompleted` notices a replaced inode, puts the sealed bytes back and
 * keeps the newcomer aside (pg_receivewal cannot be told not to rename).
 *
 * LSNs are bigints: 64-bit positions in the WAL stream, beyond Number's exact integers.
 */
import * as fs from 'fs';
import * as path from 'path';
import { fsyncPath, sha256File, writeFileAtomic } from '../durable';
import { PITR_FOLDERS } from './layout';

export const SEALED_FOLDER = '.sealed';
export const REFUSED_FOLDER = '.refused';
export const OFFSITE_MARKERS_FOLDER = '.offsite';
/** Segments of a branch the server's history left (a restore forked it), under `abandoned/<timeline>/`. */
export const ABANDONED_FOLDER = 'abandoned';
const SERVER_FILE = 'server.json';
const PARTIAL_SUFFIX = '.partial';
/** WAL segment numbers per "log id" (the middle 8 hex digits): 2^32 bytes of WAL each. */
const BYTES_PER_LOG_ID = 0x1_0000_0000n;

/** `<backupDir>/<job>/wal`: one folder per system identifier below it. */
export function walRoot(backupDir: string, job: string): string {
  return path.join(backupDir, job, PITR_FOLDERS.wal);
}

/** The archive folder of one server (system identifier) of a job. */
export function walFolder(backupDir: string, job: string, systemIdentifier: string): string {
  if (!/^\d{1,20}$/.test(systemIdentifier)) throw new Error(`"${systemIdentifier}" is not a system identifier (decimal digits)`);
  return path.join(walRoot(backupDir, job), systemIdentifier);
}

/** The system identifiers that have a folder, oldest folder first. */
export async function archivedSystems(backupDir: string, job: string): Promise<string[]> {
  const root = walRoot(backupDir, job);
  let names: string[];
  try {
    names = await fs.promises.readdir(root);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const systems = names.filter((n) => /^\d{1,20}$/.test(n));
  const born = await Promise.all(systems.map(async (n) => (await fs.promises.stat(path.join(root, n))).mtimeMs));
  return systems.map((n, i) => ({ n, at: born[i] })).sort((a, b) => a.at - b.at).map((s) => s.n);
}

// ------------------------------------------------------------------------------ LSN arithmetic

/** "16/B374D848" → bigint. */
export function parseLsn(text: string): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!match) throw new Error(`"${text}" is not an LSN (like "0/3000060")`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffff_ffffn).toString(16).toUpperCase()}`;
}

/**
 * A size as the server shows it (`SHOW wal_segment_size`: "16MB"), in bytes. initdb
 * --wal-segsize chooses it per cluster (1 MB to 1 GB, a power of two), so it is read, never assumed.
 */
export function parseWalSegmentSize(shown: string): number {
  const match = /^(\d+)\s*(B|kB|MB|GB)$/.exec(shown.trim());
  if (!match) throw new Error(`wal_segment_size "${shown}" is not a size like "16MB"`);
  const bytes = Number(match[1]) * { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 }[match[2] as 'B' | 'kB' | 'MB' | 'GB'];
  if (bytes < 1024 ** 2 || bytes > 1024 ** 3 || (bytes & (bytes - 1)) !== 0) throw new Error(`wal_segment_size ${shown} is not a power of two between 1MB and 1GB`);
  return bytes;
}

export interface SegmentId {
  readonly timeline: number;
  /** Segment number: LSN / segment size. */
  readonly segno: bigint;
}

const hex8 = (value: bigint | number) => value.toString(16).toUpperCase().padStart(8, '0');

/** The segment holding `lsn` (as its first byte or any later one). */
export function segmentOf(lsn: bigint, segmentSize: number): bigint {
  return lsn / BigInt(segmentSize);
}

export function segmentStart(segno: bigint, segmentSize: number): bigint {
  return segno * BigInt(segmentSize);
}

/** `000000010000000000000003`: timeline, then the segment number split at 2^32 bytes of WAL. */
export function segmentName(id: SegmentId, segmentSize: number): string {
  const perLogId = BYTES_PER_LOG_ID / BigInt(segmentSize);
  return `${hex8(id.timeline)}${hex8(id.segno / perLogId)}${hex8(id.segno % perLogId)}`;
}

/** The file name of the segment holding `lsn` on `timeline`. */
export function segmentNameForLsn(lsn: bigint, timeline: number, segmentSize: number): string {
  return segmentName({ timeline, segno: segmentOf(lsn, segmentSize) }, segmentSize);
}

export function parseSegmentName(name: string, segmentSize: number): SegmentId | undefined {
  const match = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/.exec(name);
  if (!match) return undefined;
  const perLogId = BYTES_PER_LOG_ID / BigInt(segmentSize);
  const low = BigInt(`0x${match[3]}`);
  if (low >= perLogId) return undefined;
  return { timeline: parseInt(match[1], 16), segno: BigInt(`0x${match[2]}`) * perLogId + low };
}

const HISTORY_NAME = /^([0-9A-F]{8})\.history$/;

export const historyFileName = (timeline: number) => `${hex8(timeline)}.history`;

/** One line of a `.history` file: `parent` was left at `switchpoint` for the next timeline. */
export interface TimelineSwitch {
  readonly parent: number;
  readonly switchpoint: bigint;
}

/** `1\t0/3000060\tno recovery target specified` lines; `#` comments and blank lines skipped. */
export function parseHistory(text: string): TimelineSwitch[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const [parent, switchpoint] = line.split(/\s+/);
      return { parent: Number(parent), switchpoint: parseLsn(switchpoint) };
    });
}

// ----------------------------------------------------------------------------- folder contents

export interface WalContents {
  readonly segmentSize: number;
  /** Completed segments, by timeline then number. */
  readonly segments: readonly (SegmentId & { readonly name: string })[];
  /** pg_receivewal's segments in progress (and a timeline's last one, left unfinished at a switch). */
  readonly partials: readonly (SegmentId & { readonly name: string })[];
  /** History per timeline (timelines above 1). */
  readonly histories: ReadonlyMap<number, readonly TimelineSwitch[]>;
}

/** What the agent recorded when it first archived a server's WAL into a folder. */
export interface ArchivedServer {
  readonly systemIdentifier: string;
  readonly walSegmentSize: number;
  readonly serverMajor: number;
  readonly firstSeenAt: string;
}

export async function writeServerFile(folder: string, server: ArchivedServer): Promise<void> {
  await writeFileAtomic(path.join(folder, SERVER_FILE), `${JSON.stringify(server, null, 2)}\n`);
}

export async function readServerFile(folder: string): Promise<ArchivedServer | undefined> {
  try {
    return JSON.parse(await fs.promises.readFile(path.join(folder, SERVER_FILE), 'utf8')) as ArchivedServer;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Lists a folder's WAL files; its segment size comes from server.json unless given. */
export async function listWal(folder: string, segmentSize?: number): Promise<WalContents> {
  const size = segmentSize ?? (await readServerFile(folder))?.walSegmentSize;
  if (size === undefined) throw new Error(`${folder} has no ${SERVER_FILE}: it is not a WAL folder the agent wrote`);
  const segments: (SegmentId & { name: string })[] = [];
  const partials: (SegmentId & { name: string })[] = [];
  const histories = new Map<number, TimelineSwitch[]>();
  for (const name of await fs.promises.readdir(folder)) {
    const history = HISTORY_NAME.exec(name);
    if (history) {
      histories.set(parseInt(history[1], 16), parseHistory(await fs.promises.readFile(path.join(folder, name), 'utf8')));
      continue;
    }
    const partial = name.endsWith(PARTIAL_SUFFIX);
    const id = parseSegmentName(partial ? name.slice(0, -PARTIAL_SUFFIX.length) : name, size);
    if (id) (partial ? partials : segments).push({ ...id, name });
  }
  const order = (a: SegmentId, b: SegmentId) => a.timeline - b.timeline || (a.segno < b.segno ? -1 : a.segno > b.segno ? 1 : 0);
  return { segmentSize: size, segments: segments.sort(order), partials: partials.sort(order), histories };
}

// -------------------------------------------------------------------------------- continuity

export interface WalGap {
  /** First missing segment's name, and the last one's (the same for a single segment). */
  readonly first: string;
  readonly last: string;
  /** The WAL from `fromLsn` up to `toLsn` (exclusive) is missing. */
  readonly fromLsn: string;
  readonly toLsn: string;
}

export interface Continuity {
  /** The newest timeline: the chain is followed along its history. */
  readonly timeline: number;
  /** Start of the oldest segment the chain has (undefined: no WAL yet). */
  readonly firstLsn?: string;
  /** End of the newest completed segment of the chain; a `.partial` after it holds more. */
  readonly completeToLsn?: string;
  /** The segment being received, when there is one on the chain. */
  readonly partial?: string;
  /** From here to the end, no segment is missing: restores to a point after it can replay. */
  readonly unbrokenFromLsn?: string;
  readonly gaps: readonly WalGap[];
  /** Facts that make the chain unreadable beyond the gaps (a timeline without its history). */
  readonly problems: readonly string[];
}

/**
 * Follows the WAL chain of the newest timeline back along its history, as recovery does: segment
 * N is read from the newest timeline of the history that had begun by segment N (a timeline
 * begins inside the segment that holds its switchpoint, and pg_receivewal streams that segment
 * whole on the new timeline). Segments of abandoned branches are not part of the chain.
 * `fromLsn`: check only from the segment holding it (e.g. a base backup's start).
 */
export function checkContinuity(contents: WalContents, fromLsn?: bigint): Continuity {
  const size = contents.segmentSize;
  const timelines = [...contents.segments, ...contents.partials].map((s) => s.timeline).concat([...contents.histories.keys()]);
  const timeline = timelines.length ? Math.max(...timelines) : 1;
  const problems: string[] = [];
  const history = timeline > 1 ? contents.histories.get(timeline) : [];
  if (history === undefined) problems.push(`timeline ${timeline} has no ${historyFileName(timeline)}: the timelines before it cannot be followed`);
  // [timeline, first segment] from the newest back: a timeline begins at its parent's switchpoint.
  const begins: { timeline: number; segno: bigint }[] = [];
  const switches = history ?? [];
  switches.forEach((entry, i) => begins.push({ timeline: entry.parent, segno: i === 0 ? 0n : segmentOf(switches[i - 1].switchpoint, size) }));
  begins.push({ timeline, segno: switches.length ? segmentOf(switches[switches.length - 1].switchpoint, size) : 0n });
  begins.reverse();
  const timelineOf = (segno: bigint) => begins.find((b) => b.segno <= segno)?.timeline ?? timeline;

  const onChain = (s: SegmentId) => timelineOf(s.segno) === s.timeline;
  const complete = new Set(contents.segments.filter(onChain).map((s) => s.segno));
  const partial = contents.partials.filter(onChain).sort((a, b) => (a.segno < b.segno ? -1 : 1)).pop();
  const numbers = [...complete, ...(partial ? [partial.segno] : [])];
  if (numbers.length === 0) return { timeline, gaps: [], problems };
  const last = numbers.reduce((a, b) => (b > a ? b : a));
  const oldest = numbers.reduce((a, b) => (b < a ? b : a));
  const first = fromLsn === undefined ? oldest : segmentOf(fromLsn, size);

  const gaps: WalGap[] = [];
  let gapStart: bigint | undefined;
  const closeGap = (end: bigint) => {
    if (gapStart === undefined) return;
    const name = (n: bigint) => segmentName({ timeline: timelineOf(n), segno: n }, size);
    gaps.push({ first: name(gapStart), last: name(end - 1n), fromLsn: formatLsn(segmentStart(gapStart, size)), toLsn: formatLsn(segmentStart(end, size)) });
    gapStart = undefined;
  };
  for (let n = first; n <= last; n++) {
    const present = complete.has(n) || (n === last && partial?.segno === n);
    if (!present && gapStart === undefined) gapStart = n;
    if (present) closeGap(n);
  }
  closeGap(last + 1n);
  const completeNumbers = [...complete].filter((n) => n >= first);
  const completeTo = completeNumbers.length ? completeNumbers.reduce((a, b) => (b > a ? b : a)) : undefined;
  const lastGap = gaps[gaps.length - 1];
  return {
    timeline,
    firstLsn: formatLsn(segmentStart(first < oldest ? oldest : first, size)),
    completeToLsn: completeTo === undefined ? undefined : formatLsn(segmentStart(completeTo + 1n, size)),
    partial: partial?.name,
    unbrokenFromLsn: lastGap ? lastGap.toLsn : formatLsn(segmentStart(first < oldest ? oldest : first, size)),
    gaps,
    problems,
  };
}

/**
 * The first segment number in [from, to] that no file of the archive holds on any timeline (a
 * restore names its own timeline through the history files), or undefined when the run is
 * unbroken. `to` undefined: up to the newest segment archived.
 */
export function firstGap(files: readonly SegmentId[], from: bigint, to?: bigint): bigint | undefined {
  const present = new Set(files.map((s) => s.segno));
  const last = to ?? files.reduce((max, s) => (s.segno > max ? s.segno : max), from);
  for (let segno = from; segno <= last; segno++) if (!present.has(segno)) return segno;
  return undefined;
}

// ------------------------------------------------------------------------------- the seal

export interface SealOutcome {
  /** Names sealed in this pass (new completed segments and history files). */
  readonly sealed: string[];
  /** Names whose file had been replaced by different bytes: the sealed bytes are back in place. */
  readonly refused: { name: string; keptAs: string }[];
}

/** The files whose first bytes are for ever: completed segments and timeline histories. */
function isSealable(name: string): boolean {
  return HISTORY_NAME.test(name) || /^[0-9A-F]{24}$/.test(name);
}

async function sameBytes(a: string, b: string): Promise<boolean> {
  return (await sha256File(a)) === (await sha256File(b));
}

/**
 * Seals every completed segment and history file of `folder` (a hard link in .sealed/), and
 * refuses any sealed name whose file now has other bytes: the newcomer is moved to .refused/, the
 * sealed file linked back under its name. Same bytes under a new inode are simply re-sealed.
 */
export async function sealCompleted(folder: string, now: Date = new Date()): Promise<SealOutcome> {
  const sealedDir = path.join(folder, SEALED_FOLDER);
  await fs.promises.mkdir(sealedDir, { recursive: true });
  const sealed: string[] = [];
  const refused: { name: string; keptAs: string }[] = [];
  for (const name of await fs.promises.readdir(folder)) {
    if (!isSealable(name)) continue;
    const file = path.join(folder, name);
    const seal = path.join(sealedDir, name);
    const [current, kept] = await Promise.all([fs.promises.stat(file), fs.promises.stat(seal).catch(() => undefined)]);
    if (kept === undefined) {
      await fs.promises.link(file, seal);
      sealed.push(name);
      continue;
    }
    if (kept.ino === current.ino) continue;
    if (await sameBytes(file, seal)) {
      await fs.promises.rm(seal);
      await fs.promises.link(file, seal);
      continue;
    }
    const refusedDir = path.join(folder, REFUSED_FOLDER);
    await fs.promises.mkdir(refusedDir, { recursive: true });
    const keptAs = path.join(REFUSED_FOLDER, `${name}.${now.toISOString().replace(/[-:]/g, '')}`);
    await fs.promises.rename(file, path.join(folder, keptAs));
    await fs.promises.link(seal, file);
    refused.push({ name, keptAs });
  }
  if (sealed.length || refused.length) await fsyncPath(sealedDir);
  if (refused.length) await fsyncPath(folder);
  return { sealed, refused };
}

/** Completed segments and histories that are sealed and have no off-site marker yet, oldest first. */
export async function pendingOffsite(folder: string): Promise<string[]> {
  const marked = new Set(await fs.promises.readdir(path.join(folder, OFFSITE_MARKERS_FOLDER)).catch(() => [] as string[]));
  const sealed = await fs.promises.readdir(path.join(folder, SEALED_FOLDER)).catch(() => [] as string[]);
  return sealed.filter((name) => !marked.has(name)).sort();
}

export async function markOffsite(folder: string, name: string): Promise<void> {
  const dir = path.join(folder, OFFSITE_MARKERS_FOLDER);
  await fs.promises.mkdir(dir, { recursive: true });
  await fs.promises.writeFile(path.join(dir, name), '');
}

// ------------------------------------------------------------------------- abandoned branches

/**
 * The files of `contents` that hold WAL the server's history does not: timelines it never ran on,
 * and WAL of a timeline it left written past the point it left it (a restore to a moment T forks
 * a new timeline at T while the archive holds the old timeline's segments after T). A complete
 * segment holding the switchpoint went on past it; a `.partial` there did only if it has bytes
 * after it (pg_receivewal zero-fills a partial, and the timeline's end leaves one written up to
 * the switchpoint exactly).
 */
export async function abandonedFiles(folder: string, contents: WalContents, timeline: number, history: readonly TimelineSwitch[]): Promise<string[]> {
  const size = contents.segmentSize;
  const leftAt = new Map(history.map((entry) => [entry.parent, entry.switchpoint]));
  const abandoned: string[] = [];
  for (const [file, partial] of [...contents.segments.map((s) => [s, false] as const), ...contents.partials.map((s) => [s, true] as const)]) {
    if (file.timeline === timeline) continue;
    const switchpoint = leftAt.get(file.timeline);
    const forkSegment = switchpoint === undefined ? -1n : segmentOf(switchpoint, size);
    const past =
      switchpoint === undefined ||
      file.segno > forkSegment ||
      (file.segno === forkSegment && (!partial || (await hasBytesFrom(path.join(folder, file.name), Number(switchpoint - segmentStart(forkSegment, size))))));
    if (past) abandoned.push(file.name);
  }
  return abandoned;
}

async function hasBytesFrom(file: string, offset: number): Promise<boolean> {
  const handle = await fs.promises.open(file, 'r');
  try {
    const chunk = Buffer.alloc(64 * 1024);
    for (let at = offset; ; at += chunk.length) {
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, at);
      if (bytesRead === 0) return false;
      if (chunk.subarray(0, bytesRead).some((byte) => byte !== 0)) return true;
    }
  } finally {
    await handle.close();
  }
}

/**
 * Moves an abandoned branch out of pg_receivewal's way: it starts from the newest segment in its
 * folder, and a segment past the fork asks the server for WAL its history does not have, which it
 * refuses for ever. Each file goes to `abandoned/<timeline>/` (never deleted; a name already there
 * gets a stamp), its seal goes (its bytes stay in the moved file), its off-site marker stays.
 * Returns where each went, relative to `folder`.
 */
export async function setAsideAbandoned(folder: string, names: readonly string[], now: Date = new Date()): Promise<string[]> {
  const moved: string[] = [];
  const dirs = new Set<string>();
  for (const name of names) {
    const dir = path.join(ABANDONED_FOLDER, name.slice(0, 8));
    await fs.promises.mkdir(path.join(folder, dir), { recursive: true });
    dirs.add(path.join(folder, dir));
    let to = path.join(dir, name);
    if (fs.existsSync(path.join(folder, to))) to = `${to}.${now.toISOString().replace(/[-:]/g, '')}`;
    await fs.promises.rename(path.join(folder, name), path.join(folder, to));
    await fs.promises.rm(path.join(folder, SEALED_FOLDER, name), { force: true });
    moved.push(to);
  }
  for (const dir of [...dirs, ...(moved.length ? [path.join(folder, ABANDONED_FOLDER), folder] : [])]) await fsyncPath(dir);
  return moved;
}

// ------------------------------------------------------------------------------- retention

/**
 * Removes the WAL no restore from a kept base backup can need: every segment (any timeline, with
 * its seal and off-site marker, and leftover partials) that ends at or before the segment holding
 * `lsn`, the start LSN of the oldest base backup kept. The seal is a hard link: a segment whose
 * seal stayed would keep its blocks on the disk. History files stay: they are small and
 * recovery reads them to follow timelines. Returns the names removed.
 */
export async function pruneWalBefore(folder: string, lsn: bigint, segmentSize?: number): Promise<string[]> {
  // A base backup taken before the receiver ever ran (a manual run right after deploy): no WAL yet.
  if (!fs.existsSync(folder)) return [];
  const contents = await listWal(folder, segmentSize);
  const keepFrom = segmentOf(lsn, contents.segmentSize);
  const removed: string[] = [];
  for (const segment of [...contents.segments, ...contents.partials]) {
    if (segment.segno >= keepFrom) continue;
    for (const dir of [folder, path.join(folder, SEALED_FOLDER), path.join(folder, OFFSITE_MARKERS_FOLDER)]) {
      await fs.promises.rm(path.join(dir, segment.name), { force: true });
    }
    removed.push(segment.name);
  }
  if (removed.length) await fsyncPath(folder);
  return removed;
}

/**
 * Runs `use` on a private folder (made under `scratchParent`, removed afterwards) in which each
 * of `names` (files of the archive `folder`) is linked under its segment's own name: pg_waldump
 * opens segments by name only, and the receiver's current one is a `.partial`. Where two files
 * name one segment, the first of `names` wins.
 */
export async function withSegmentLinks<T>(folder: string, names: readonly string[], scratchParent: string, use: (linked: string) => Promise<T>): Promise<T> {
  const linked = await fs.promises.mkdtemp(path.join(scratchParent, '.tmp-waldump-'));
  try {
    for (const name of names) {
      const segment = name.endsWith(PARTIAL_SUFFIX) ? name.slice(0, -PARTIAL_SUFFIX.length) : name;
      if (!fs.existsSync(path.join(linked, segment))) await fs.promises.symlink(path.join(folder, name), path.join(linked, segment));
    }
    return await use(linked);
  } finally {
    await fs.promises.rm(linked, { recursive: true, force: true });
  }
}

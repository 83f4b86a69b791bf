/**
 * Where verification's recovery stops, so that the recovered copy holds exactly the transactions
 * the source's snapshots saw.
 *
 * A snapshot and the WAL order disagree near the moment the snapshot is taken: a commit record
 * reaches the WAL (and, with synchronous replication, waits for the receiver) before the
 * transaction leaves the list of running ones, so a snapshot can miss a transaction whose commit
 * record lies before the LSN read with it. On a server that commits without pause there is almost
 * always such a transaction. Rather than hope for a quiet moment, the archived WAL between a
 * point just before the snapshots and the LSN read with them is read with pg_waldump, and
 * recovery stops just before the first commit some snapshot did not see, provided every commit
 * the snapshots saw lies before it. Each commit counts only for the databases it wrote to (the
 * relations its records name); one whose writes are not in the scanned range counts for all.
 */
import * as fs from 'fs';
import * as path from 'path';
import { runTool } from '../exec';
import { formatLsn, segmentName, segmentOf, withSegmentLinks } from './wal-archive';

/** A database's snapshot (pg_current_snapshot() text: `xmin:xmax:xip,xip`) and its OID. */
export interface DatabaseSnapshot {
  readonly oid: number;
  readonly snapshot: string;
}

interface Snapshot {
  readonly xmax: bigint;
  readonly running: ReadonlySet<bigint>;
}

/** A commit record: where it is, its transaction's id (32 bits, as WAL has it), what it wrote to. */
export interface CommitRecord {
  readonly lsn: bigint;
  readonly xid: number;
  /** OIDs of the databases its records (and its subtransactions') wrote to; `unknown` when none is in the scanned range. */
  readonly databases: ReadonlySet<number> | 'unknown';
}

function parseSnapshot(text: string): Snapshot {
  const match = /^(\d+):(\d+):([\d,]*)$/.exec(text.trim());
  if (!match) throw new Error(`"${text}" is not a snapshot (like "740:745:741,743")`);
  return { xmax: BigInt(match[2]), running: new Set(match[3] === '' ? [] : match[3].split(',').map(BigInt)) };
}

/** A 32-bit xid read from WAL as the 64-bit one nearest `reference` (the snapshot's xmax). */
function widen(xid: number, reference: bigint): bigint {
  const candidate = (reference & ~0xffff_ffffn) | BigInt(xid);
  if (candidate > reference + 0x8000_0000n) return candidate - 0x1_0000_0000n;
  if (candidate + 0x8000_0000n < reference) return candidate + 0x1_0000_0000n;
  return candidate;
}

/** Whether a committed transaction was visible to `snapshot`: begun before its xmax and not running then. */
function sawCommit(snapshot: Snapshot, xid: number): boolean {
  const full = widen(xid, snapshot.xmax);
  return full < snapshot.xmax && !snapshot.running.has(full);
}

const RECORD = /^rmgr: (\S+)\s+len \(rec\/tot\):\s*\d+\/\s*\d+, tx:\s*(\d+), lsn: ([0-9A-F]+)\/([0-9A-F]+), prev [0-9A-F]+\/[0-9A-F]+, desc: (.*)$/;
const RELATION = /rel \d+\/(\d+)\/\d+/g;

/** The commit records in pg_waldump's output (its default one-line-per-record form, PostgreSQL 15-17). */
export function commitsInWaldump(output: string): CommitRecord[] {
  const wrote = new Map<number, Set<number>>();
  const commits: { lsn: bigint; xid: number; subxacts: number[] }[] = [];
  for (const line of output.split('\n')) {
    const match = RECORD.exec(line);
    if (!match) continue;
    const [, rmgr, tx, hi, lo, desc] = match;
    const xid = Number(tx);
    if (rmgr === 'Transaction' && desc.startsWith('COMMIT ')) {
      const subxacts = /subxacts: ([\d ]+)/.exec(desc)?.[1].trim().split(/\s+/).map(Number) ?? [];
      commits.push({ lsn: (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`), xid, subxacts });
      continue;
    }
    if (xid === 0) continue;
    for (const relation of desc.matchAll(RELATION)) {
      const database = Number(relation[1]);
      // 0: a shared catalog (roles, databases), in no database's row counts.
      if (database !== 0) (wrote.get(xid) ?? wrote.set(xid, new Set()).get(xid)!).add(database);
    }
  }
  return commits.map(({ lsn, xid, subxacts }) => {
    const databases = new Set([xid, ...subxacts].flatMap((id) => [...(wrote.get(id) ?? [])]));
    return { lsn, xid, databases: databases.size > 0 ? databases : 'unknown' };
  });
}

/** A recovery to run: stop before `lsn`, then compare these databases (their OIDs). */
export interface Stop {
  readonly lsn: bigint;
  readonly databases: readonly number[];
}

/**
 * The recoveries that give each database exactly the commits its snapshot saw: for each, the
 * WAL interval its stop must fall in (after the last commit it saw, at or before the first it
 * missed), and as few stops as stab them all (the earliest end first). One stop when the
 * snapshots fit one point; more when databases' snapshots were taken between their commits.
 * Undefined when a database's own interval is empty (a commit it saw lies after one it missed):
 * then no recovery fits and verification takes a new point. `point` is the largest LSN read
 * with the snapshots: every commit a snapshot saw lies before it.
 */
export function planStops(commits: readonly CommitRecord[], snapshots: readonly DatabaseSnapshot[], point: bigint): Stop[] | undefined {
  const intervals = snapshots.map(({ oid, snapshot: text }) => {
    const snapshot = parseSnapshot(text);
    let after = -1n;
    let upTo = point;
    for (const commit of commits) {
      if (commit.lsn >= point || (commit.databases !== 'unknown' && !commit.databases.has(oid))) continue;
      if (sawCommit(snapshot, commit.xid)) after = commit.lsn > after ? commit.lsn : after;
      else upTo = commit.lsn < upTo ? commit.lsn : upTo;
    }
    return { oid, after, upTo };
  });
  if (intervals.some((i) => i.after >= i.upTo)) return undefined;
  const stops: Stop[] = [];
  const left = [...intervals].sort((a, b) => (a.upTo < b.upTo ? -1 : a.upTo > b.upTo ? 1 : 0));
  while (left.length > 0) {
    const lsn = left[0].upTo;
    const stabbed = left.filter((i) => i.after < lsn);
    stops.push({ lsn, databases: stabbed.map((i) => i.oid) });
    for (const i of stabbed) left.splice(left.indexOf(i), 1);
  }
  return stops;
}

/**
 * Transactions (64-bit ids, as the snapshot's) whose commits were read and wrote only to other
 * databases than `database`: the recovered-copy check of its snapshot leaves them out.
 */
export function otherDatabasesCommits(commits: readonly CommitRecord[], database: DatabaseSnapshot): string[] {
  const { xmax } = parseSnapshot(database.snapshot);
  return commits.filter((c) => c.databases !== 'unknown' && !c.databases.has(database.oid)).map((c) => String(widen(c.xid, xmax)));
}

export interface WalScan {
  /** The archive folder: completed segments and the receiver's `.partial`. */
  readonly walFolder: string;
  readonly from: bigint;
  readonly to: bigint;
  readonly timeline: number;
  readonly segmentSize: number;
  /** PATH with pg_waldump of the server's major version. */
  readonly PATH: string;
  /** Where a private folder of links to the segments is made (and removed). */
  readonly scratchParent: string;
  readonly signal: AbortSignal;
}

/** The commit records between `from` and `to`, read with pg_waldump from the archive (its `.partial` too: withSegmentLinks). */
export async function scanCommits(scan: WalScan): Promise<CommitRecord[]> {
  const names: string[] = [];
  for (let segno = segmentOf(scan.from, scan.segmentSize); segno <= segmentOf(scan.to - 1n, scan.segmentSize); segno++) {
    const name = segmentName({ timeline: scan.timeline, segno }, scan.segmentSize);
    const found = [name, `${name}.partial`].find((n) => fs.existsSync(path.join(scan.walFolder, n)));
    if (found === undefined) throw new Error(`the archive has no WAL segment ${name} (nor ${name}.partial) between ${formatLsn(scan.from)} and ${formatLsn(scan.to)}`);
    names.push(found);
  }
  const args = ['--timeline', String(scan.timeline), '--start', formatLsn(scan.from), '--end', formatLsn(scan.to)];
  const output = await withSegmentLinks(scan.walFolder, names, scan.scratchParent, (linked) => runTool('pg_waldump', ['--path', linked, ...args], { env: { PATH: scan.PATH, LC_ALL: 'C' }, signal: scan.signal }));
  return commitsInWaldump(output);
}

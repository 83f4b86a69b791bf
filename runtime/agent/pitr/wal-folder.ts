/**
 * The WAL archive as restore, verification and retention read it (pitr-design.md, "Files on the
 * backup volume"):
 *
 *   <backupDir>/<job>/wal/<system-identifier>/000000010000000000000003        a completed segment
 *   <backupDir>/<job>/wal/<system-identifier>/00000002.history                a timeline's history
 *   <backupDir>/<job>/wal/<system-identifier>/000000010000000000000004.partial pg_receivewal's current one
 *
 * The WAL receiver (wal-archive.ts, owned by the walarchive part of issue 12) writes this folder;
 * this file only reads it and prunes it. The integrator keeps one of the two copies of the layout.
 */
import * as fs from 'fs';
import * as path from 'path';
import { WAL_FOLDER } from '../store';

export const walFolder = (backupDir: string, job: string, systemIdentifier: string) => path.join(backupDir, job, WAL_FOLDER, systemIdentifier);

const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.partial)?$/;
const HISTORY = /^[0-9A-F]{8}\.history$/;

/** "16/B374D848" as a number of bytes. */
export function parseLsn(lsn: string): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  if (!match) throw new Error(`"${lsn}" is not an LSN (like 0/16B3748)`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

export function formatLsn(bytes: bigint): string {
  return `${(bytes >> 32n).toString(16).toUpperCase()}/${(bytes & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** The number of the segment holding `lsn`. */
export const segmentOf = (lsn: bigint, segmentBytes: number) => lsn / BigInt(segmentBytes);

export function segmentName(timeline: number, segment: bigint, segmentBytes: number): string {
  const perId = 0x100000000n / BigInt(segmentBytes);
  const hex = (n: bigint | number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(timeline)}${hex(segment / perId)}${hex(segment % perId)}`;
}

export interface WalFile {
  readonly name: string;
  readonly timeline: number;
  readonly segment: bigint;
  readonly partial: boolean;
}

/** Segments (completed and partial) sorted by segment then timeline, and the history files. */
export async function listWal(folder: string, segmentBytes: number): Promise<{ segments: WalFile[]; histories: string[] }> {
  let names: string[];
  try {
    names = await fs.promises.readdir(folder);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { segments: [], histories: [] };
    throw error;
  }
  const perId = 0x100000000n / BigInt(segmentBytes);
  const segments = names.flatMap((name) => {
    const match = SEGMENT.exec(name);
    if (!match) return [];
    return [{ name, timeline: parseInt(match[1], 16), segment: BigInt(`0x${match[2]}`) * perId + BigInt(`0x${match[3]}`), partial: match[4] !== undefined }];
  });
  segments.sort((a, b) => (a.segment === b.segment ? a.timeline - b.timeline : a.segment < b.segment ? -1 : 1));
  return { segments, histories: names.filter((name) => HISTORY.test(name)).sort() };
}

/**
 * The first segment number in [from, to] that no file of the archive holds (on any timeline),
 * or undefined when the run is unbroken. `to` undefined: up to the newest segment archived.
 */
export function firstGap(segments: readonly WalFile[], from: bigint, to?: bigint): bigint | undefined {
  const present = new Set(segments.map((s) => s.segment));
  const last = to ?? segments.reduce((max, s) => (s.segment > max ? s.segment : max), from);
  for (let segment = from; segment <= last; segment++) if (!present.has(segment)) return segment;
  return undefined;
}

/**
 * Removes the completed segments wholly before `lsn` (the start of the oldest base backup kept):
 * nothing a kept base backup needs. History files stay: they are small and every later timeline
 * needs its ancestors'.
 */
export async function pruneWalBefore(folder: string, lsn: bigint, segmentBytes: number): Promise<string[]> {
  const keepFrom = segmentOf(lsn, segmentBytes);
  const removed: string[] = [];
  for (const file of (await listWal(folder, segmentBytes)).segments) {
    if (file.segment >= keepFrom) break;
    await fs.promises.rm(path.join(folder, file.name), { force: true });
    removed.push(file.name);
  }
  return removed;
}

/**
 * The start of a postgres-pitr job's restorable window (tenantry_pitr_window_start_timestamp_seconds):
 * every moment from it to the archive's end can be restored. A moment is restorable from a good
 * base backup consistent by then (its end) and the WAL from that end on, unbroken along the
 * newest timeline's history, as recovery reads it. So the window starts at the end of the oldest
 * good base backup whose WAL chain has no gap (and no unreadable timeline) from there on.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { BaseBackupDetails } from './base-backup';
import { checkContinuity, listWal, parseLsn, WalContents, walFolder } from './wal-archive';

/**
 * `bases`: the good base backups, oldest first. `walOf`: a system identifier's WAL folder contents
 * (undefined: no folder). Undefined when no base backup has an unbroken chain after it.
 */
export function restorableWindowStart(bases: readonly BaseBackupDetails[], walOf: (systemIdentifier: string) => WalContents | undefined): Date | undefined {
  for (const base of bases) {
    const contents = walOf(base.systemIdentifier);
    if (contents === undefined) continue;
    const chain = checkContinuity(contents, parseLsn(base.endLsn));
    if (chain.gaps.length === 0 && chain.problems.length === 0 && chain.firstLsn !== undefined) return new Date(base.endTime);
  }
  return undefined;
}

/** The same, reading each system's WAL folder of the job once. */
export async function readRestorableWindowStart(backupDir: string, job: string, bases: readonly BaseBackupDetails[]): Promise<Date | undefined> {
  const folders = new Map<string, WalContents | undefined>();
  for (const base of bases) {
    if (folders.has(base.systemIdentifier)) continue;
    const folder = walFolder(backupDir, job, base.systemIdentifier);
    folders.set(base.systemIdentifier, fs.existsSync(folder) ? await listWal(folder, base.walSegmentBytes) : undefined);
  }
  return restorableWindowStart(bases, (system) => folders.get(system));
}

/**
 * The end of the archive as a restore reads it (restore.ts accepts a time up to it): when the
 * receiver last wrote a WAL file of the folder, a segment or its `.partial`. Every commit the
 * server had made by then is in it, since pg_receivewal --synchronous writes as it receives.
 * Undefined for a folder without WAL.
 */
export async function archiveWrittenUntil(folder: string, contents: WalContents): Promise<Date | undefined> {
  const files = [...contents.segments, ...contents.partials];
  if (files.length === 0) return undefined;
  const written = await Promise.all(files.map(async (file) => (await fs.promises.stat(path.join(folder, file.name))).mtimeMs));
  return new Date(Math.max(...written));
}

/**
 * A postgres-pitr job's restorable window, for `status --json` (from: the window's start; to: the
 * end of the archive the newest base backup's server writes). Undefined when nothing is restorable.
 */
export async function readRestorableWindow(backupDir: string, job: string, bases: readonly BaseBackupDetails[]): Promise<{ from: Date; to: Date } | undefined> {
  const from = await readRestorableWindowStart(backupDir, job, bases);
  if (from === undefined) return undefined;
  const newest = bases[bases.length - 1];
  const folder = walFolder(backupDir, job, newest.systemIdentifier);
  const to = await archiveWrittenUntil(folder, await listWal(folder, newest.walSegmentBytes));
  return to === undefined ? undefined : { from, to: new Date(Math.max(from.getTime(), to.getTime())) };
}

/**
 * The start of a postgres-pitr job's restorable window (tenantry_pitr_window_start_timestamp_seconds):
 * every moment from it to the archive's end can be restored. A moment is restorable from a good
 * base backup consistent by then (its end) and the WAL from that end on, unbroken along the
 * newest timeline's history, as recovery reads it. So the window starts at the end of the oldest
 * good base backup whose WAL chain has no gap (and no unreadable timeline) from there on.
 */
import * as fs from 'fs';
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

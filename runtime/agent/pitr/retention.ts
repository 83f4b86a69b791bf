/**
 * Retention of a `postgres-pitr` job (pitr-design.md, "Retention"), as a pure function tested on
 * a simulated clock: the runner's GFS over base backups (retention.ts, which also keeps the newest
 * verified and the newest good), plus the base backup that makes the window restorable, and the
 * point before which WAL may go.
 *
 * A moment is restorable from a base backup consistent at or before it (its end) and the WAL from
 * that backup's start on. So for every moment of the last `windowDays` days, the newest good base
 * backup that was consistent by the window's start is kept ("window"); while no backup is that old,
 * the oldest good one is (the window is not full yet, and everything since it stays restorable).
 * WAL is pruned only before the start LSN of the oldest base backup kept, whatever kept it.
 */
import type { RetentionPolicy } from '../config';
import { RetentionCandidate, RetentionDecision, selectRetained } from '../retention';

export interface BaseBackupCandidate extends RetentionCandidate {
  /** When it became consistent (details.endTime); undefined for a backup that did not finish. */
  readonly consistentAt?: Date;
  /** Where its recovery reads WAL from (details.startLsn as bytes); undefined when it did not finish. */
  readonly startLsn?: bigint;
  /** Whose WAL folder it reads (details.systemIdentifier). */
  readonly systemIdentifier?: string;
}

export interface PitrRetentionDecision extends RetentionDecision {
  /**
   * Per system identifier (WAL folder) with a base backup kept: segments wholly before this LSN
   * are no longer needed. A folder not named here is left alone.
   */
  readonly pruneWalBefore: ReadonlyMap<string, bigint>;
}

const DAY_MS = 86_400_000;

export function selectPitrRetained(
  backups: readonly BaseBackupCandidate[],
  policy: RetentionPolicy,
  windowDays: number,
  now: Date,
  timeZone: string,
): PitrRetentionDecision {
  const gfs = selectRetained(backups, policy, now, timeZone);
  const keep = new Map(gfs.keep);
  const windowStart = now.getTime() - windowDays * DAY_MS;
  const good = backups
    .filter((b) => b.good && b.consistentAt !== undefined && b.startLsn !== undefined && b.startedAt <= now)
    .sort((a, b) => a.consistentAt!.getTime() - b.consistentAt!.getTime());
  const anchor = [...good].reverse().find((b) => b.consistentAt!.getTime() <= windowStart) ?? good[0];
  if (anchor !== undefined) keep.set(anchor.id, [...(keep.get(anchor.id) ?? []), `window of ${windowDays} days`]);
  const pruneWalBefore = new Map<string, bigint>();
  for (const b of good.filter((candidate) => keep.has(candidate.id) && candidate.systemIdentifier !== undefined)) {
    const current = pruneWalBefore.get(b.systemIdentifier!);
    if (current === undefined || b.startLsn! < current) pruneWalBefore.set(b.systemIdentifier!, b.startLsn!);
  }
  return { keep, remove: gfs.remove.filter((id) => !keep.has(id)), pruneWalBefore };
}

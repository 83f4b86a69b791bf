/**
 * What the WAL receiver and its monitor know about a postgres-pitr job's archive right now, for
 * /metrics, /health and the webhook (status.ts reads it; receiver.ts writes it).
 */
export class ArchiveStatus {
  receiverUp = false;
  /** Since when no pg_receivewal has been running: the agent's start until the first one runs. */
  downSince: Date | undefined;
  systemIdentifier?: string;
  timeline?: number;
  /** What the receiver has flushed to the backup volume: the slot's confirmed position, bounded by the folder's files (receiver.ts archivedPosition). */
  lastArchivedLsn?: bigint;
  /** The server's flushed WAL position at the last poll. */
  serverLsn?: bigint;
  /** The newest moment whose WAL is all archived: every commit the server had by then is safe. */
  archivedUntil?: Date;
  /** WAL the slot keeps on the server's disk (its pg_wal) for the receiver. */
  slotRetainedBytes = 0;
  gaps = 0;
  /** Why the receiver is not restarted (a refused segment): an operator must look. */
  halted?: string;
  lastError?: string;

  constructor(startedAt: Date) {
    this.downSince = startedAt;
  }

  lagBytes(): number | undefined {
    if (this.serverLsn === undefined || this.lastArchivedLsn === undefined) return undefined;
    return Math.max(0, Number(this.serverLsn - this.lastArchivedLsn));
  }

  lagSeconds(now: Date): number | undefined {
    return this.archivedUntil === undefined ? undefined : Math.max(0, (now.getTime() - this.archivedUntil.getTime()) / 1000);
  }

  /** Why the archive is unhealthy (behind by more than `maxLagSeconds`, or down that long), or undefined. */
  problem(now: Date, maxLagSeconds: number): string | undefined {
    if (this.halted) return `WAL receiver halted: ${this.halted}`;
    const down = this.downSince === undefined ? 0 : (now.getTime() - this.downSince.getTime()) / 1000;
    if (!this.receiverUp && down > maxLagSeconds) return `WAL receiver down for ${Math.round(down)} s (limit ${maxLagSeconds} s)${this.lastError ? `: ${this.lastError}` : ''}`;
    const lag = this.lagSeconds(now);
    if (lag !== undefined && lag > maxLagSeconds) return `WAL archive ${Math.round(lag)} s behind the server (limit ${maxLagSeconds} s)`;
    return undefined;
  }
}

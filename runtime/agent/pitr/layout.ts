/**
 * The names a postgres-pitr job's folder on the backup volume is laid out by (pitr-design.md,
 * "Files on the backup volume"). Two programs read them: the agent, which writes the folder, and
 * the Postgres container's start wrapper (runtime/render/postgres-restore-on-start.ts), which
 * applies a prepared restore from it. This module imports nothing, so both import it.
 *
 *   <backupDir>/postgres-pitr/wal/<system-identifier>/   the WAL archive (wal-archive.ts)
 *   <backupDir>/postgres-pitr/restores/<id>/pgdata       a recovered data directory
 *   <backupDir>/postgres-pitr/restores/<id>/READY.json   what it is (written after pgdata is whole)
 *   <backupDir>/postgres-pitr/restores/pending           the id to apply, one line (written last)
 */

/** The job's name in every synthesized agent config: its folder on the backup volume. */
export const POSTGRES_PITR_JOB = 'postgres-pitr';

/** Folders beside a job's backups that are not backups. */
export const PITR_FOLDERS = { wal: 'wal', restores: 'restores' } as const;

/** Inside `restores/`: a prepared restore's data directory and record, and the pointer to apply. */
export const PREPARED_RESTORE = { pgdata: 'pgdata', ready: 'READY.json', pending: 'pending' } as const;

/**
 * Verification of a `postgres-pitr` job (`tenantry-agent verify <job>`, and `verifySchedule`):
 * the newest base backup plus the archived WAL recovered by a real server into a scratch folder,
 * to the point at which the source's row counts were taken, and the counts compared table by
 * table. The result is recorded on the base backup's manifest (`verified`): retention keeps the
 * newest verified one, and /metrics reports it.
 *
 * The point: each database's counts are taken in a REPEATABLE READ transaction whose first
 * statement also reads pg_current_wal_lsn(); recovery stops just before the first record at or
 * after the last such LSN (L). A commit is written to WAL before it becomes visible to new
 * snapshots, so a transaction can have its commit record before L and still be invisible to a
 * snapshot taken a moment earlier: the recovered copy would then hold rows the counts do not.
 * That race is detected, not assumed away: on the recovered server, every transaction a snapshot
 * did not see (its in-progress list, and the ids from its xmax on) must not have committed. If
 * one did, the attempt is discarded and verification tries again at a new point. A non-
 * transactional WAL message written after the snapshots gives recovery a record at or after L
 * to stop at, even on an idle server.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Client } from 'pg';
import { secretFromEnv } from '../config';
import { errorMessage, UserError } from '../errors';
import type { RowCounts } from '../jobs/postgres/layout';
import { SAFE_SEARCH_PATH } from '../jobs/postgres/server';
import { compareCounts, countRows, TABLES_SQL, TableRef } from '../jobs/postgres/sql';
import { CheckResult, isGood, Manifest } from '../manifest';
import { Agent, driverContext, withJobLock } from '../runner';
import { BaseBackupDetails, extractBaseBackup } from './base-backup';
import type { PitrJob } from './replication';
import { recover } from './recovery';
import { pathForMajor } from './server-binaries';
import { walFolder } from './wal-archive';

export const VERIFY_METHOD = 'base backup + WAL recovered to the source\'s LSN, row counts compared';
/** Attempts before a source that keeps committing during every snapshot makes verification give up. */
const RACE_ATTEMPTS = 3;
/** How long the receiver may take to archive the verification's point. */
const ARCHIVE_WAIT_MS = 60_000;
/** More transactions than this between a snapshot and the recovered point are not checked one by one. */
const MAX_XIDS_CHECKED = 100_000;

interface SourcePoint {
  /** Per database: its snapshot (pg_current_snapshot) and row counts. */
  readonly databases: Record<string, { snapshot: string; counts: RowCounts }>;
  /** Recovery stops before the first record at or after this LSN. */
  readonly lsn: string;
  /** The end of the WAL message written after the snapshots: archived once the slot has passed it. */
  readonly marker: string;
}

export function verifyRecovery(agent: Agent, job: PitrJob): Promise<Manifest> {
  return withJobLock(agent, job, async (store) => {
    const log = agent.log.forJob(job.name);
    const good = (await store.list()).flatMap((e) => (e.state === 'ok' && e.manifest && isGood(e.manifest) ? [e.manifest] : []));
    const manifest = good[good.length - 1];
    if (manifest === undefined) throw new UserError(`job ${job.name} has no good base backup yet; there is nothing to verify`);
    let verified: CheckResult;
    log.info('verification started', { id: manifest.id, method: VERIFY_METHOD });
    try {
      const details = await verifyOnce(agent, job, manifest, store.dir);
      verified = { at: new Date().toISOString(), method: VERIFY_METHOD, result: 'passed', details };
      log.info('verification passed', { id: manifest.id, details });
    } catch (error) {
      if (error instanceof UserError) throw error;
      verified = { at: new Date().toISOString(), method: VERIFY_METHOD, result: 'failed', details: errorMessage(error) };
      agent.state.countersOf(job.name).verifyFailures++;
      log.error('verification failed', { id: manifest.id, error: verified.details });
      await agent.notify(`verification of ${job.name} (base backup ${manifest.id} + WAL) failed: ${verified.details}`);
    }
    const updated: Manifest = { ...manifest, verified };
    await store.updateManifest(updated);
    return updated;
  });
}

async function verifyOnce(agent: Agent, job: PitrJob, manifest: Manifest, jobDir: string): Promise<string> {
  const details = manifest.details as unknown as BaseBackupDetails;
  const password = secretFromEnv(job.pitr.passwordEnv, agent.env);
  const PATH = await pathForMajor(details.serverMajor, agent.env);
  const ctx = driverContext(agent, job);
  for (let attempt = 1; ; attempt++) {
    const point = await takeSourcePoint(job, password);
    await waitUntilArchived(job, password, point.marker, agent.signal);
    const scratch = path.join(jobDir, `.tmp-verify-${Date.now()}`);
    try {
      await extractBaseBackup(path.join(jobDir, manifest.id), details, scratch, agent.signal);
      const server = await recover({
        pgdata: scratch,
        walFolder: walFolder(agent.config.backupDir, job.name, details.systemIdentifier),
        target: { lsn: point.lsn, before: true },
        PATH,
        probeRole: job.pitr.user,
        log: ctx.log,
        signal: agent.signal,
      });
      let outcome: { raced: boolean; problems: string[] };
      try {
        outcome = await compareWithSource(point, (database) => server.connect(database));
      } finally {
        await server.abandon();
      }
      if (outcome.raced && attempt < RACE_ATTEMPTS) {
        ctx.log.info('a transaction committed between the snapshot and the recovered point; verifying again at a new point', { attempt });
        continue;
      }
      if (outcome.raced) throw new Error(`the source committed transactions between its snapshots and the recovered point in each of ${RACE_ATTEMPTS} attempts; verification could not compare a quiet moment (try again when writes are fewer)`);
      if (outcome.problems.length > 0) throw new Error(`recovered to ${point.lsn} from ${manifest.id}, row counts differ: ${outcome.problems.join('; ')}`);
      const tables = Object.values(point.databases).reduce((sum, d) => sum + Object.keys(d.counts).length, 0);
      return `recovered ${manifest.id} + WAL to ${point.lsn}; row counts of ${tables} tables in ${Object.keys(point.databases).join(', ')} match the source`;
    } finally {
      await fs.promises.rm(scratch, { recursive: true, force: true });
    }
  }
}

const connectSource = async (job: PitrJob, password: string, database: string) => {
  const client = new Client({ host: job.pitr.host, port: job.pitr.port, user: job.pitr.user, password, database, options: `${SAFE_SEARCH_PATH} -c statement_timeout=0`, connectionTimeoutMillis: 10_000 });
  await client.connect();
  return client;
};

async function takeSourcePoint(job: PitrJob, password: string): Promise<SourcePoint> {
  const databases: SourcePoint['databases'] = {};
  let lsn = '0/0';
  for (const database of job.pitr.databases) {
    const db = await connectSource(job, password, database);
    try {
      await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const first = (await db.query<{ snapshot: string; lsn: string }>('SELECT pg_current_snapshot()::text AS snapshot, pg_current_wal_lsn()::text AS lsn')).rows[0];
      const tables = (await db.query<TableRef>(TABLES_SQL)).rows;
      databases[database] = { snapshot: first.snapshot, counts: await countRows(db, tables) };
      lsn = first.lsn;
      await db.query('COMMIT');
    } finally {
      await db.end();
    }
  }
  const db = await connectSource(job, password, job.pitr.databases[0]);
  try {
    const marker = (await db.query<{ lsn: string }>("SELECT pg_logical_emit_message(false, 'tenantry-verify', '')::text AS lsn")).rows[0].lsn;
    return { databases, lsn, marker };
  } finally {
    await db.end();
  }
}

/** The receiver's slot has confirmed `lsn` flushed: recovery can reach it from the archive. */
async function waitUntilArchived(job: PitrJob, password: string, lsn: string, signal: AbortSignal): Promise<void> {
  const db = await connectSource(job, password, job.pitr.databases[0]);
  try {
    const deadline = Date.now() + ARCHIVE_WAIT_MS;
    for (;;) {
      const row = (await db.query<{ archived: boolean | null }>('SELECT restart_lsn >= $2::pg_lsn AS archived FROM pg_replication_slots WHERE slot_name = $1', [job.pitr.slot, lsn])).rows[0];
      if (row?.archived) return;
      if (signal.aborted) throw new Error(`stopped: the agent received ${String(signal.reason)}`);
      if (Date.now() > deadline) throw new Error(`the WAL receiver (slot ${job.pitr.slot}) has not archived ${lsn} after ${ARCHIVE_WAIT_MS / 1000} s${row ? '' : ': the slot does not exist'}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    await db.end();
  }
}

/** Row counts of every database on the recovered server, and whether the snapshots raced the point. */
async function compareWithSource(point: SourcePoint, connect: (database: string) => Promise<Client>): Promise<{ raced: boolean; problems: string[] }> {
  const problems: string[] = [];
  let raced = false;
  for (const [database, source] of Object.entries(point.databases)) {
    const db = await connect(database);
    try {
      raced ||= await committedUnseen(db, source.snapshot);
      const counts = await countRows(db, (await db.query<TableRef>(TABLES_SQL)).rows);
      problems.push(...compareCounts(source.counts, counts).map((p) => `${database}: ${p}`));
    } finally {
      await db.end();
    }
  }
  return { raced, problems };
}

/**
 * Whether a transaction `snapshot` did not see has committed in the recovered copy. More than
 * MAX_XIDS_CHECKED transactions begun since the snapshot count as a race without looking.
 */
export async function committedUnseen(db: Client, snapshot: string): Promise<boolean> {
  const row = (
    await db.query<{ raced: boolean }>(
      `WITH s AS (SELECT (pg_snapshot_xmax($1::pg_snapshot)::text)::bigint AS source_xmax, (pg_snapshot_xmax(pg_current_snapshot())::text)::bigint AS recovered_xmax),
            unseen AS (
              SELECT x FROM pg_snapshot_xip($1::pg_snapshot) AS x
              UNION ALL
              SELECT (n::text)::xid8 FROM s, generate_series(s.source_xmax, LEAST(s.recovered_xmax - 1, s.source_xmax + $2)) AS n)
       SELECT (SELECT recovered_xmax - source_xmax > $2 FROM s) OR coalesce((SELECT bool_or(pg_xact_status(x) = 'committed') FROM unseen), false) AS raced`,
      [snapshot, MAX_XIDS_CHECKED],
    )
  ).rows[0];
  return row.raced;
}

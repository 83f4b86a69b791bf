/**
 * Verification of a `postgres-pitr` job (`tenantry-agent verify <job>`, and `verifySchedule`):
 * the newest base backup plus the archived WAL recovered by a real server into a scratch folder,
 * to the point at which the source's row counts were taken, and the counts compared table by
 * table. The result is recorded on the base backup's manifest (`verified`): retention keeps the
 * newest verified one, and /metrics reports it.
 *
 * The point: each database's counts are taken in a REPEATABLE READ transaction whose first
 * statement also reads pg_current_wal_lsn(), all databases at once. A commit is written to WAL
 * before it becomes visible to new snapshots, so near that moment the snapshots and the WAL order
 * disagree; verify-point.ts reads the archived WAL around it and chooses the LSN recovery stops
 * before so that the recovered copy holds exactly the commits the snapshots saw. The choice is
 * checked, not trusted: on the recovered server, every transaction a snapshot did not see (its
 * in-progress list, and the ids from its xmax on) must not have committed. If one did, or no LSN
 * fits (a commit one snapshot saw lies after one another missed), the attempt is discarded and
 * verification tries again at a new point. A non-transactional WAL message written after the
 * snapshots gives the archive a record past the point, even on an idle server.
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
import { CommitRecord, DatabaseSnapshot, otherDatabasesCommits, planStops, scanCommits, Stop } from './verify-point';
import { formatLsn, parseLsn, segmentOf, segmentStart, walFolder } from './wal-archive';

export const VERIFY_METHOD = 'base backup + WAL recovered to the source\'s LSN, row counts compared';
/** Attempts before a source whose snapshots never fit one WAL point makes verification give up. */
const RACE_ATTEMPTS = 3;
/** How far before the receiver's confirmed position the WAL is read for commits the snapshots may have missed. */
const SCAN_MARGIN_BYTES = 1024n * 1024n;
/** How long the receiver may take to archive the verification's point. */
const ARCHIVE_WAIT_MS = 60_000;
/** More transactions than this between a snapshot and the recovered point are not checked one by one. */
const MAX_XIDS_CHECKED = 100_000;

interface SourcePoint {
  /** Per database: its OID, snapshot (pg_current_snapshot) and row counts. */
  readonly databases: Record<string, DatabaseSnapshot & { counts: RowCounts }>;
  /** The largest LSN read with the snapshots: every commit they saw lies before it. */
  readonly lsn: string;
  /** Its timeline, from the segment name the server gives it. */
  readonly timeline: number;
  /** The receiver's confirmed position just before the snapshots: a commit they missed lies after it, or close. */
  readonly confirmed: string;
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
  const folder = walFolder(agent.config.backupDir, job.name, details.systemIdentifier);
  for (let attempt = 1; ; attempt++) {
    const point = await takeSourcePoint(job, password);
    await waitUntilArchived(job, password, point.marker, agent.signal);
    const plan = await planRecoveries(point, details, folder, jobDir, PATH, agent.signal);
    let raced = plan === undefined ? 'no WAL point fits a snapshot' : '';
    const problems: string[] = [];
    for (const stop of plan?.stops ?? []) {
      const scratch = path.join(jobDir, `.tmp-verify-${Date.now()}`);
      try {
        await extractBaseBackup(path.join(jobDir, manifest.id), details, scratch, agent.signal);
        const server = await recover({ pgdata: scratch, walFolder: folder, target: { lsn: formatLsn(stop.lsn), before: true }, PATH, probeRole: job.pitr.user, log: ctx.log, signal: agent.signal });
        try {
          const databases = Object.entries(point.databases).filter(([, d]) => stop.databases.includes(d.oid));
          const outcome = await compareWithSource(databases, plan!.commits, (database) => server.connect(database));
          if (outcome.raced) raced = `a transaction a snapshot missed committed before ${formatLsn(stop.lsn)}`;
          problems.push(...outcome.problems.map((p) => `at ${formatLsn(stop.lsn)}, ${p}`));
        } finally {
          await server.abandon();
        }
      } finally {
        await fs.promises.rm(scratch, { recursive: true, force: true });
      }
      if (raced) break;
    }
    if (raced && attempt < RACE_ATTEMPTS) {
      ctx.log.info('the snapshots and the recovered point disagree about a transaction; verifying again at a new point', { attempt, why: raced, lsn: point.lsn });
      continue;
    }
    if (raced) throw new Error(`in each of ${RACE_ATTEMPTS} attempts the source's snapshots and its WAL disagreed (last: ${raced}); try again`);
    if (problems.length > 0) throw new Error(`recovered from ${manifest.id}, row counts differ: ${problems.join('; ')}`);
    const stops = plan!.stops.map((s) => formatLsn(s.lsn)).join(', ');
    const tables = Object.values(point.databases).reduce((sum, d) => sum + Object.keys(d.counts).length, 0);
    return `recovered ${manifest.id} + WAL to ${stops}; row counts of ${tables} tables in ${Object.keys(point.databases).join(', ')} match the source`;
  }
}

/** The recoveries that match the snapshots (verify-point.ts) and the commits read, or undefined when none does. */
async function planRecoveries(point: SourcePoint, details: BaseBackupDetails, folder: string, jobDir: string, PATH: string, signal: AbortSignal): Promise<{ stops: Stop[]; commits: CommitRecord[] } | undefined> {
  const to = parseLsn(point.lsn);
  const segmentSize = details.walSegmentBytes;
  const confirmed = parseLsn(point.confirmed);
  // From a little before the receiver's confirmed position, within its segment and the backup.
  const from = [parseLsn(details.startLsn), segmentStart(segmentOf(confirmed, segmentSize), segmentSize), confirmed - SCAN_MARGIN_BYTES].reduce((a, b) => (a > b ? a : b));
  const commits = from < to ? await scanCommits({ walFolder: folder, from, to, timeline: point.timeline, segmentSize, PATH, scratchParent: jobDir, signal }) : [];
  const stops = planStops(commits, Object.values(point.databases), to);
  return stops && { stops, commits };
}

const connectSource = async (job: PitrJob, password: string, database: string) => {
  const client = new Client({ host: job.pitr.host, port: job.pitr.port, user: job.pitr.user, password, database, options: `${SAFE_SEARCH_PATH} -c statement_timeout=0`, connectionTimeoutMillis: 10_000 });
  await client.connect();
  return client;
};

/** Every database's snapshot and counts, taken at once, and the LSNs around them. */
async function takeSourcePoint(job: PitrJob, password: string): Promise<SourcePoint> {
  const sessions = await Promise.all(job.pitr.databases.map((database) => connectSource(job, password, database)));
  try {
    const [first] = sessions;
    const confirmed = (await first.query<{ lsn: string | null }>('SELECT restart_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1', [job.pitr.slot])).rows[0]?.lsn;
    const taken = await Promise.all(
      sessions.map(async (db) => {
        await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const row = (
          await db.query<{ snapshot: string; lsn: string; segment: string; oid: number }>(
            'SELECT pg_current_snapshot()::text AS snapshot, pg_current_wal_lsn()::text AS lsn, pg_walfile_name(pg_current_wal_lsn()) AS segment, (SELECT oid FROM pg_database WHERE datname = current_database())::int AS oid',
          )
        ).rows[0];
        const counts = await countRows(db, (await db.query<TableRef>(TABLES_SQL)).rows);
        await db.query('COMMIT');
        return { ...row, counts };
      }),
    );
    const last = taken.reduce((a, b) => (parseLsn(b.lsn) > parseLsn(a.lsn) ? b : a));
    const marker = (await first.query<{ lsn: string }>("SELECT pg_logical_emit_message(false, 'tenantry-verify', '')::text AS lsn")).rows[0].lsn;
    return {
      databases: Object.fromEntries(job.pitr.databases.map((database, i) => [database, { oid: taken[i].oid, snapshot: taken[i].snapshot, counts: taken[i].counts }])),
      lsn: last.lsn,
      timeline: parseInt(last.segment.slice(0, 8), 16),
      confirmed: confirmed ?? last.lsn,
      marker,
    };
  } finally {
    await Promise.all(sessions.map((db) => db.end()));
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

/** Row counts of `databases` on the recovered server, and whether their snapshots raced the point. */
async function compareWithSource(
  databases: [string, SourcePoint['databases'][string]][],
  commits: readonly CommitRecord[],
  connect: (database: string) => Promise<Client>,
): Promise<{ raced: boolean; problems: string[] }> {
  const problems: string[] = [];
  let raced = false;
  for (const [database, source] of databases) {
    const db = await connect(database);
    try {
      raced ||= await committedUnseen(db, source.snapshot, otherDatabasesCommits(commits, source));
      const counts = await countRows(db, (await db.query<TableRef>(TABLES_SQL)).rows);
      problems.push(...compareCounts(source.counts, counts).map((p) => `${database}: ${p}`));
    } finally {
      await db.end();
    }
  }
  return { raced, problems };
}

/**
 * Whether a transaction `snapshot` did not see has committed in the recovered copy, leaving out
 * `elsewhere` (transactions known to have written only to other databases). More than
 * MAX_XIDS_CHECKED transactions begun since the snapshot count as a race without looking.
 */
export async function committedUnseen(db: Client, snapshot: string, elsewhere: readonly string[] = []): Promise<boolean> {
  const row = (
    await db.query<{ raced: boolean }>(
      `WITH s AS (SELECT (pg_snapshot_xmax($1::pg_snapshot)::text)::bigint AS source_xmax, (pg_snapshot_xmax(pg_current_snapshot())::text)::bigint AS recovered_xmax),
            unseen AS (
              SELECT x FROM pg_snapshot_xip($1::pg_snapshot) AS x
              UNION ALL
              SELECT (n::text)::xid8 FROM s, generate_series(s.source_xmax, LEAST(s.recovered_xmax - 1, s.source_xmax + $2)) AS n)
       SELECT (SELECT recovered_xmax - source_xmax > $2 FROM s)
           OR coalesce((SELECT bool_or(pg_xact_status(x) = 'committed') FROM unseen WHERE x::text <> ALL ($3::text[])), false) AS raced`,
      [snapshot, MAX_XIDS_CHECKED, elsewhere],
    )
  ).rows[0];
  return row.raced;
}

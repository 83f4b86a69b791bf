/**
 * What /metrics and /health report, computed from the backups on disk (so a restarted agent
 * reports the same last success) plus counters kept since the agent started.
 */
import type { AgentConfig, JobConfig } from './config';
import { isGood, Manifest } from './manifest';
import { ArchiveStatus } from './pitr/archive-status';
import type { BaseBackupDetails } from './pitr/base-backup';
import { readRestorableWindowStart } from './pitr/window';
import { longestGapSeconds, parseCron } from '../schedule/cron';
import { BackupEntry, BackupStore } from './store';

/** Events since the agent started (Prometheus counters: a restart resets them, as it should). */
export class JobCounters {
  failures = 0;
  offsiteFailures = 0;
  verifyFailures = 0;
  running = false;
  /** The last run's failure, until a later run succeeds: the job is unhealthy meanwhile. */
  lastFailure?: { at: string; error: string };
}

export class AgentState {
  readonly startedAt: Date;
  private readonly counters = new Map<string, JobCounters>();
  /** The WAL archive of each postgres-pitr job (written by its receiver while `serve` runs). */
  private readonly archives = new Map<string, ArchiveStatus>();

  constructor(readonly config: AgentConfig, now: Date = new Date()) {
    this.startedAt = now;
    for (const job of config.jobs) {
      this.counters.set(job.name, new JobCounters());
      if (job.kind === 'postgres-pitr') this.archives.set(job.name, new ArchiveStatus(now));
    }
  }

  /** undefined for jobs of other kinds. */
  archiveOf(job: string): ArchiveStatus | undefined {
    return this.archives.get(job);
  }

  countersOf(job: string): JobCounters {
    const counters = this.counters.get(job);
    if (counters === undefined) throw new Error(`unknown job ${job}`);
    return counters;
  }
}

export interface JobSnapshot {
  readonly job: JobConfig;
  readonly counters: JobCounters;
  readonly lastGood?: Manifest;
  readonly lastVerified?: Manifest;
  /** The backup whose verification passed most recently. */
  readonly lastPassedVerification?: Manifest;
  /** The oldest good backup still waiting for its off-site copy. */
  readonly oldestPendingOffsite?: Manifest;
  /** A postgres-pitr job's WAL archive. */
  readonly archive?: ArchiveStatus;
  /** A postgres-pitr job's restorable window starts here (pitr/window.ts); undefined: nothing restorable yet. */
  readonly windowStart?: Date;
}

export async function snapshotJobs(state: AgentState): Promise<JobSnapshot[]> {
  const snapshots: JobSnapshot[] = [];
  for (const job of state.config.jobs) {
    const entries = await new BackupStore(state.config.backupDir, job.name).list();
    const summary = summarize(job, entries, state.countersOf(job.name));
    const windowStart = job.kind === 'postgres-pitr' ? await readRestorableWindowStart(state.config.backupDir, job.name, goodBaseBackups(entries)) : undefined;
    snapshots.push({ ...summary, archive: state.archiveOf(job.name), windowStart });
  }
  return snapshots;
}

function summarize(job: JobConfig, entries: BackupEntry[], counters: JobCounters): JobSnapshot {
  // Finished backups only: failure records have no verification or off-site state to report.
  const manifests = entries.flatMap((e) => (e.state === 'ok' && e.manifest ? [e.manifest] : []));
  const good = manifests.filter(isGood);
  const verified = manifests.filter((m) => m.verified !== undefined).sort((a, b) => (a.verified?.at ?? '').localeCompare(b.verified?.at ?? ''));
  return {
    job,
    counters,
    lastGood: good[good.length - 1],
    lastVerified: verified[verified.length - 1],
    lastPassedVerification: verified.filter((m) => m.verified?.result === 'passed').pop(),
    oldestPendingOffsite: job.offsite ? good.find((m) => m.offsite?.status !== 'uploaded') : undefined,
  };
}

/** Good base backups' details, oldest first (entries come sorted by start). */
export function goodBaseBackups(entries: readonly BackupEntry[]): BaseBackupDetails[] {
  return entries.flatMap((e) => (e.state === 'ok' && e.manifest && isGood(e.manifest) ? [e.manifest.details as unknown as BaseBackupDetails] : []));
}

const seconds = (iso: string) => Date.parse(iso) / 1000;

/** Prometheus text exposition format 0.0.4. */
export function renderMetrics(snapshots: JobSnapshot[], config: AgentConfig, now: Date): string {
  const families: MetricFamily[] = [
    { name: 'tenantry_backup_last_success_timestamp_seconds', type: 'gauge', help: 'End time of the newest good backup.', value: (s) => s.lastGood && seconds(s.lastGood.endedAt) },
    { name: 'tenantry_backup_duration_seconds', type: 'gauge', help: 'Duration of the newest good backup.', value: (s) => s.lastGood && seconds(s.lastGood.endedAt) - seconds(s.lastGood.startedAt) },
    { name: 'tenantry_backup_size_bytes', type: 'gauge', help: 'Size of the newest good backup.', value: (s) => s.lastGood?.sizeBytes },
    { name: 'tenantry_backup_failures_total', type: 'counter', help: 'Failed backup runs since the agent started.', value: (s) => s.counters.failures },
    { name: 'tenantry_backup_running', type: 'gauge', help: '1 while a run or verification of the job is in progress.', value: (s) => (s.counters.running ? 1 : 0) },
    {
      name: 'tenantry_backup_offsite_lag_seconds',
      type: 'gauge',
      help: 'Age of the oldest good backup without an off-site copy (0 when all are copied).',
      value: (s) => (s.job.offsite ? (s.oldestPendingOffsite ? now.getTime() / 1000 - seconds(s.oldestPendingOffsite.endedAt) : 0) : undefined),
    },
    { name: 'tenantry_backup_offsite_failures_total', type: 'counter', help: 'Failed off-site uploads since the agent started.', value: (s) => s.counters.offsiteFailures },
    { name: 'tenantry_backup_last_verify_success', type: 'gauge', help: '1 if the latest verification passed, 0 if it failed.', value: (s) => s.lastVerified && (s.lastVerified.verified?.result === 'passed' ? 1 : 0) },
    { name: 'tenantry_backup_last_verify_timestamp_seconds', type: 'gauge', help: 'Time of the latest verification.', value: (s) => s.lastVerified?.verified && seconds(s.lastVerified.verified.at) },
    {
      name: 'tenantry_pitr_last_verified_recovery_timestamp_seconds',
      type: 'gauge',
      help: 'Time of the newest passed recovery verification (base backup + WAL recovered, row counts compared).',
      value: (s) => (s.job.kind === 'postgres-pitr' && s.lastPassedVerification?.verified ? seconds(s.lastPassedVerification.verified.at) : undefined),
    },
    { name: 'tenantry_backup_verify_failures_total', type: 'counter', help: 'Failed verifications since the agent started.', value: (s) => s.counters.verifyFailures },
    ...pitrFamilies(now),
  ];
  const lines: string[] = [];
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`);
    for (const snapshot of snapshots) {
      const value = family.value(snapshot);
      if (value === undefined) continue;
      const labels = `tenant="${config.tenant}",environment="${config.environment}",job="${snapshot.job.name}",kind="${snapshot.job.kind}"`;
      lines.push(`${family.name}{${labels}} ${Number.isInteger(value) ? value : value.toFixed(3)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

type MetricFamily = { name: string; type: 'gauge' | 'counter'; help: string; value: (s: JobSnapshot) => number | undefined };

/** The WAL archive's metrics (pitr-design.md), for postgres-pitr jobs only. */
function pitrFamilies(now: Date): MetricFamily[] {
  const lsn = (value: bigint | undefined) => (value === undefined ? undefined : Number(value));
  const passed = (s: JobSnapshot) => (s.archive && s.lastVerified?.verified?.result === 'passed' ? seconds(s.lastVerified.verified.at) : undefined);
  return [
    { name: 'tenantry_pitr_receiver_up', type: 'gauge', help: '1 while pg_receivewal runs for the job.', value: (s) => s.archive && (s.archive.receiverUp ? 1 : 0) },
    { name: 'tenantry_pitr_last_archived_lsn_bytes', type: 'gauge', help: 'WAL position flushed to the backup volume (the slot position the receiver confirmed).', value: (s) => lsn(s.archive?.lastArchivedLsn) },
    { name: 'tenantry_pitr_last_archived_wal_timestamp_seconds', type: 'gauge', help: 'Newest moment whose WAL is all archived.', value: (s) => s.archive?.archivedUntil && s.archive.archivedUntil.getTime() / 1000 },
    { name: 'tenantry_pitr_archive_lag_seconds', type: 'gauge', help: 'How long ago the newest moment whose WAL is all archived was.', value: (s) => s.archive?.lagSeconds(now) },
    { name: 'tenantry_pitr_archive_lag_bytes', type: 'gauge', help: "The server's flushed WAL position minus the archived one.", value: (s) => s.archive?.lagBytes() },
    { name: 'tenantry_pitr_slot_retained_bytes', type: 'gauge', help: "WAL the replication slot keeps on the server's disk.", value: (s) => s.archive?.slotRetainedBytes },
    {
      name: 'tenantry_pitr_window_start_timestamp_seconds',
      type: 'gauge',
      help: 'Start of the restorable window: end of the oldest good base backup with unbroken WAL from there.',
      value: (s) => s.windowStart && s.windowStart.getTime() / 1000,
    },
    { name: 'tenantry_pitr_wal_gaps', type: 'gauge', help: 'Missing stretches in the WAL chain of the current server.', value: (s) => s.archive?.gaps },
    { name: 'tenantry_pitr_last_verified_recovery_timestamp_seconds', type: 'gauge', help: 'Time of the latest recovery verification that passed.', value: passed },
  ];
}

export interface JobHealth {
  job: string;
  healthy: boolean;
  lastSuccess: string | null;
  /** Unhealthy when the last success is older than this: twice the schedule's longest gap. */
  maxAgeSeconds: number;
  reason: string;
}

export interface Health {
  status: 'ok' | 'unhealthy';
  tenant: string;
  environment: string;
  jobs: JobHealth[];
}

/** Longest gap of each job's schedule, computed once: it only depends on the schedule. */
export function scheduleGaps(config: AgentConfig, from: Date): Map<string, number> {
  return new Map(config.jobs.map((job) => [job.name, longestGapSeconds(parseCron(job.schedule), config.timeZone, from)]));
}

/**
 * A job is unhealthy when its last run failed (until a run succeeds), or when its last success is
 * older than twice its longest schedule gap. After
 * a (re)start the agent gets one gap of grace, so a fresh container is not unhealthy before its
 * first scheduled run could even have happened.
 */
export function assessHealth(snapshots: JobSnapshot[], gaps: Map<string, number>, state: AgentState, now: Date): Health {
  const uptime = (now.getTime() - state.startedAt.getTime()) / 1000;
  const jobs = snapshots.map((snapshot) => withArchive(snapshot, backupHealth(snapshot), now));
  return { status: jobs.every((j) => j.healthy) ? 'ok' : 'unhealthy', tenant: state.config.tenant, environment: state.config.environment, jobs };

  function backupHealth(snapshot: JobSnapshot): JobHealth {
    const gap = gaps.get(snapshot.job.name) ?? 0;
    const maxAgeSeconds = 2 * gap;
    const lastSuccess = snapshot.lastGood?.endedAt ?? null;
    const failed = snapshot.counters.lastFailure;
    if (failed !== undefined) return { job: snapshot.job.name, healthy: false, lastSuccess, maxAgeSeconds, reason: `last run failed at ${failed.at}: ${failed.error}` };
    const age = lastSuccess === null ? Infinity : (now.getTime() - Date.parse(lastSuccess)) / 1000;
    if (age <= maxAgeSeconds) return { job: snapshot.job.name, healthy: true, lastSuccess, maxAgeSeconds, reason: 'recent good backup' };
    if (uptime <= gap) return { job: snapshot.job.name, healthy: true, lastSuccess, maxAgeSeconds, reason: `grace period after start (${Math.round(gap - uptime)} s left)` };
    const reason = lastSuccess === null ? 'no good backup yet' : `last good backup is ${Math.round(age)} s old (limit ${maxAgeSeconds} s)`;
    return { job: snapshot.job.name, healthy: false, lastSuccess, maxAgeSeconds, reason };
  }
}

/** A postgres-pitr job is also unhealthy while its WAL archive lags or its receiver is down beyond pitr.maxLagSeconds. */
function withArchive(snapshot: JobSnapshot, health: JobHealth, now: Date): JobHealth {
  if (snapshot.archive === undefined || snapshot.job.kind !== 'postgres-pitr') return health;
  const problem = snapshot.archive.problem(now, snapshot.job.pitr.maxLagSeconds);
  if (problem === undefined) return health;
  return { ...health, healthy: false, reason: health.healthy ? problem : `${health.reason}; ${problem}` };
}

/**
 * `tenantry-agent status --json`: what the operator CLI (`tenantry status`) shows of each job, read
 * from the backup volume by a one-off process (`docker exec`), so it is the same whether or not
 * `serve` is up. The staleness rule is /health's (status.ts): a job is late when its newest good
 * backup is older than twice its schedule's longest gap.
 */
import { z } from 'zod';
import type { AgentConfig, JobConfig } from './config';
import { isGood } from './manifest';
import { isLockHeld } from './lock';
import { readRestorableWindow } from './pitr/window';
import { goodBaseBackups, scheduleGaps } from './status';
import { BackupStore } from './store';

export const STALENESS_RULE = 'late when the newest good backup is older than 2 x the longest gap of the job\'s schedule';

/** One job in `status --json`; the operator CLI reads it with this schema. */
export const jobStatusSchema = z.object({
  job: z.string(),
  kind: z.string(),
  schedule: z.string(),
  /** Twice the schedule's longest gap (STALENESS_RULE). */
  maxAgeSeconds: z.number(),
  lastGood: z.object({ id: z.string(), endedAt: z.string(), sizeBytes: z.number(), verified: z.enum(['passed', 'failed']).nullable() }).nullable(),
  /** Seconds since the newest good backup ended; null without one. */
  ageSeconds: z.number().nullable(),
  late: z.boolean(),
  /** Off-site jobs: age of the oldest good backup not yet copied off-site (0 when all are); null when the job keeps no off-site copy. */
  offsiteLagSeconds: z.number().nullable(),
  /** Failed runs since the newest good backup, and the latest one's error. */
  failuresSinceLastGood: z.number().int(),
  lastFailure: z.object({ id: z.string(), at: z.string(), error: z.string() }).nullable(),
  /** A run or verification holds the job's lock now. */
  running: z.boolean(),
  /** Point-in-time jobs only: every moment between `from` and `to` is restorable. */
  restorableWindow: z.object({ from: z.string(), to: z.string() }).optional(),
  /** Variables a restore of this job reads its elevated credential from, passed for that one command; and where an operator finds it. */
  restoreCredential: z.object({ env: z.array(z.string()), source: z.string().nullable() }).nullable(),
});

export const agentStatusSchema = z.object({ tenant: z.string(), environment: z.string(), rule: z.string(), jobs: z.array(jobStatusSchema) });

export type JobStatus = z.infer<typeof jobStatusSchema>;
export type AgentStatus = z.infer<typeof agentStatusSchema>;

/** The variables `restore` of `job` needs that the container does not hold (docs/agent-config.md, "Restoring"). */
export function restoreCredentialOf(job: JobConfig): JobStatus['restoreCredential'] {
  if (job.kind === 'postgres') {
    const c = job.postgres.restoreCredential;
    return { env: [c.userEnv, c.passwordEnv], source: c.source ?? null };
  }
  if (job.kind === 'minio') return { env: [job.minio.restoreAccessKeyEnv, job.minio.restoreSecretKeyEnv], source: null };
  return null;
}

export async function agentStatus(config: AgentConfig, now: Date): Promise<AgentStatus> {
  const gaps = scheduleGaps(config, now);
  const jobs: JobStatus[] = [];
  for (const job of config.jobs) {
    const store = new BackupStore(config.backupDir, job.name);
    const entries = await store.list();
    const finished = entries.flatMap((e) => (e.manifest ? [e.manifest] : []));
    const good = finished.filter((m) => m.status === 'ok' && isGood(m));
    const last = good[good.length - 1];
    const failures = entries.filter((e) => e.state === 'failed' && (!last || e.startedAt.getTime() > Date.parse(last.startedAt)));
    const latestFailure = failures[failures.length - 1];
    const maxAgeSeconds = 2 * (gaps.get(job.name) ?? 0);
    const ageSeconds = last ? Math.max(0, Math.round((now.getTime() - Date.parse(last.endedAt)) / 1000)) : null;
    const pending = job.offsite ? good.find((m) => m.offsite?.status !== 'uploaded') : undefined;
    const window = job.kind === 'postgres-pitr' ? await readRestorableWindow(config.backupDir, job.name, goodBaseBackups(entries)) : undefined;
    jobs.push({
      job: job.name,
      kind: job.kind,
      schedule: job.schedule,
      maxAgeSeconds,
      lastGood: last ? { id: last.id, endedAt: last.endedAt, sizeBytes: last.sizeBytes, verified: last.verified?.result ?? null } : null,
      ageSeconds,
      late: ageSeconds === null || ageSeconds > maxAgeSeconds,
      offsiteLagSeconds: job.offsite ? (pending ? Math.round((now.getTime() - Date.parse(pending.endedAt)) / 1000) : 0) : null,
      failuresSinceLastGood: failures.length,
      lastFailure: latestFailure ? { id: latestFailure.id, at: latestFailure.manifest?.endedAt ?? latestFailure.startedAt.toISOString(), error: latestFailure.problem ?? 'unknown' } : null,
      running: isLockHeld(store.lockFile),
      ...(window && { restorableWindow: { from: window.from.toISOString(), to: window.to.toISOString() } }),
      restoreCredential: restoreCredentialOf(job),
    });
  }
  return { tenant: config.tenant, environment: config.environment, rule: STALENESS_RULE, jobs };
}

function age(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86400)}d`;
}

/** `status` without --json: one line per job. */
export function renderStatus(status: AgentStatus): string {
  const lines = status.jobs.map((j) => {
    const last = j.lastGood ? `last good ${j.lastGood.id}, ${age(j.ageSeconds ?? 0)} ago (limit ${age(j.maxAgeSeconds)})` : 'no good backup yet';
    const failures = j.failuresSinceLastGood > 0 ? `, ${j.failuresSinceLastGood} failed run(s) since: ${j.lastFailure?.error.split('\n')[0]}` : '';
    const offsite = j.offsiteLagSeconds === null ? '' : `, off-site lag ${age(j.offsiteLagSeconds)}`;
    const window = j.restorableWindow ? `, restorable ${j.restorableWindow.from} .. ${j.restorableWindow.to}` : '';
    return `${j.job}: ${j.late ? 'LATE' : 'ok'}, ${last}${window}${offsite}${failures}${j.running ? ', running now' : ''}`;
  });
  return `${[...lines, `(${status.rule})`].join('\n')}\n`;
}

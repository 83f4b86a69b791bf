import Table from 'cli-table3';
import type Docker from 'dockerode';
import type { createColors } from 'picocolors';
import { z } from 'zod';
import { formatDuration, formatSize } from '../../runtime/agent/listing';
import { AgentStatus, jobStatusSchema, STALENESS_RULE } from '../../runtime/agent/report';
import { containerName, serviceOf } from '../docker/fleet';

type Colors = ReturnType<typeof createColors>;

/** Tables without a rule between rows, as plan prints them: a hundred tenants stay readable. */
export const COMPACT = { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' };

export const serviceStatusSchema = z.strictObject({
  container: z.string(),
  service: z.string(),
  /** Docker's state: running, exited, restarting, paused, created, dead; `completed` for a one-shot container that exited 0. */
  state: z.string(),
  health: z.enum(['healthy', 'unhealthy', 'starting', 'none']),
  restarts: z.number().int(),
  ok: z.boolean(),
  problem: z.string().nullable(),
});

/**
 * A backup job's row: the agent's own job status (runtime/agent/report.ts, one source for the
 * fields both print) with the age moved into `lastGood`, the window always present, and the CLI's
 * verdict. Strict, so that a field either side adds shows up in the JSON contract's tests.
 */
const agentJob = jobStatusSchema.shape;
export const backupJobStatusSchema = z.strictObject({
  ...jobStatusSchema.pick({ job: true, kind: true, schedule: true }).shape,
  lastGood: agentJob.lastGood.unwrap().extend({ ageSeconds: z.number() }).strict().nullable(),
  /** The policy: a backup older than this is late (STALENESS_RULE). */
  maxAgeSeconds: agentJob.maxAgeSeconds,
  late: agentJob.late,
  /** Late, but the backup container started less than one schedule gap ago: not yet a problem (the agent's /health gives the same grace). */
  inGracePeriod: z.boolean(),
  ...jobStatusSchema.pick({ offsiteLagSeconds: true, failuresSinceLastGood: true }).shape,
  lastFailure: agentJob.lastFailure.unwrap().strict().nullable(),
  running: agentJob.running,
  /** Point-in-time jobs: every moment in between is restorable; null where the agent reports none. */
  restorableWindow: agentJob.restorableWindow.unwrap().strict().nullable(),
  ok: z.boolean(),
  problem: z.string().nullable(),
});

export const tenantStatusSchema = z.strictObject({
  environment: z.string(),
  tenant: z.string(),
  dockerHost: z.string(),
  services: z.array(serviceStatusSchema),
  backups: z.array(backupJobStatusSchema),
  /** Why the services or backups could not be read (the host did not answer, the backup container is down). */
  problems: z.array(z.string()),
  ok: z.boolean(),
});

/** `tenantry status -o json`: stable for scripts. Tenants by environment then name; containers and jobs by name. */
export const statusReportSchema = z.strictObject({
  at: z.string(),
  /** When a backup counts as late. */
  rule: z.string(),
  tenants: z.array(tenantStatusSchema),
  summary: z.strictObject({ tenants: z.number().int(), healthy: z.number().int(), problems: z.number().int() }),
  /** Every problem, one line each: the exit code is 1 when there is any. */
  ok: z.boolean(),
});

export type ServiceStatus = z.infer<typeof serviceStatusSchema>;
export type BackupJobStatus = z.infer<typeof backupJobStatusSchema>;
export type TenantStatus = z.infer<typeof tenantStatusSchema>;
export type StatusReport = z.infer<typeof statusReportSchema>;

/** What `docker inspect` says of one container, judged: a one-shot container (restart "no") that exited 0 is done, not down. */
export function serviceStatus(info: Docker.ContainerInfo, inspected: Docker.ContainerInspectInfo): ServiceStatus {
  const state = inspected.State;
  const oneShot = (inspected.HostConfig.RestartPolicy?.Name ?? 'no') === 'no' || inspected.HostConfig.RestartPolicy?.Name === '';
  // Docker keeps a stopped container's last health; it says nothing once the container is down.
  const health = (state.Running ? (state.Health?.Status ?? 'none') : 'none') as ServiceStatus['health'];
  const base = { container: containerName(info), service: serviceOf(info), health, restarts: inspected.RestartCount ?? 0 };
  if (oneShot && state.Status === 'exited' && state.ExitCode === 0) return { ...base, state: 'completed', ok: true, problem: null };
  if (state.Status !== 'running') {
    const exit = state.Status === 'exited' ? ` (exit ${state.ExitCode}${state.FinishedAt ? ` at ${state.FinishedAt}` : ''})` : '';
    return { ...base, state: state.Status, ok: false, problem: `${base.container} is ${state.Status}${exit}` };
  }
  if (health === 'unhealthy') {
    const last = state.Health?.Log?.slice(-1)[0]?.Output?.trim().split('\n').pop() ?? '';
    return { ...base, state: state.Status, ok: false, problem: `${base.container} is unhealthy (${state.Health?.FailingStreak ?? 0} failed checks${last ? `: ${last.slice(0, 120)}` : ''})` };
  }
  return { ...base, state: state.Status, ok: true, problem: null };
}

/** Each job judged; `agentStartedAt` (the backup container's start) opens one schedule gap of grace for a late job. */
export function backupStatuses(agent: AgentStatus, agentStartedAt: Date | undefined, now: Date): BackupJobStatus[] {
  return agent.jobs.map((j) => {
    const inGracePeriod = j.late && agentStartedAt !== undefined && (now.getTime() - agentStartedAt.getTime()) / 1000 <= j.maxAgeSeconds / 2;
    const problem = j.late && inGracePeriod
      ? null
      : j.lastGood === null
      ? 'no good backup yet'
      : j.late
        ? `newest good backup is ${formatDuration(j.ageSeconds ?? 0)} old (policy: ${formatDuration(j.maxAgeSeconds)})`
        : j.lastGood.verified === 'failed'
          ? `newest good backup ${j.lastGood.id} failed its verification`
          : j.failuresSinceLastGood > 0
            ? `${j.failuresSinceLastGood} failed run(s) since the newest good backup: ${j.lastFailure?.error.split('\n')[0]}`
            : null;
    return {
      job: j.job,
      kind: j.kind,
      schedule: j.schedule,
      lastGood: j.lastGood && { id: j.lastGood.id, endedAt: j.lastGood.endedAt, ageSeconds: j.ageSeconds ?? 0, sizeBytes: j.lastGood.sizeBytes, verified: j.lastGood.verified },
      maxAgeSeconds: j.maxAgeSeconds,
      late: j.late,
      inGracePeriod,
      offsiteLagSeconds: j.offsiteLagSeconds,
      failuresSinceLastGood: j.failuresSinceLastGood,
      lastFailure: j.lastFailure,
      running: j.running,
      restorableWindow: j.restorableWindow ?? null,
      ok: problem === null,
      problem,
    };
  });
}

export function tenantStatus(environment: string, tenant: string, dockerHost: string, services: ServiceStatus[], backups: BackupJobStatus[], problems: string[]): TenantStatus {
  return { environment, tenant, dockerHost, services, backups, problems, ok: problems.length === 0 && services.every((s) => s.ok) && backups.every((b) => b.ok) };
}

export function statusReport(tenants: TenantStatus[], at: Date): StatusReport {
  const problems = tenants.reduce((n, t) => n + problemLines(t).length, 0);
  return { at: at.toISOString(), rule: STALENESS_RULE, tenants, summary: { tenants: tenants.length, healthy: tenants.filter((t) => t.ok).length, problems }, ok: problems === 0 };
}

export function problemLines(t: TenantStatus): string[] {
  const where = `${t.environment}/${t.tenant}`;
  return [
    ...t.problems.map((p) => `${where}: ${p}`),
    ...t.services.flatMap((s) => (s.problem ? [`${where}: ${s.problem}`] : [])),
    ...t.backups.flatMap((b) => (b.problem ? [`${where}: backup ${b.job}: ${b.problem}`] : [])),
  ];
}

export const renderStatusJson = (report: StatusReport) => `${JSON.stringify(report, null, 2)}\n`;

const window = (w: BackupJobStatus['restorableWindow']) => (w ? `${w.from.slice(0, 16).replace('T', ' ')} .. ${w.to.slice(0, 16).replace('T', ' ')}` : '-');

/** Tables per tenant (containers, then backup jobs), the problems, and on a terminal a summary line. */
export function renderStatusTable(report: StatusReport, colors: Colors, terminal: boolean): string {
  const out: string[] = [];
  const good = (ok: boolean, text: string) => (ok ? colors.green(text) : colors.red(text));
  for (const t of report.tenants) {
    out.push(`${colors.bold(`${t.environment}/${t.tenant}`)} on ${t.dockerHost}: ${good(t.ok, t.ok ? 'ok' : 'PROBLEMS')}`);
    if (t.services.length > 0) {
      const services = new Table({ head: ['CONTAINER', 'STATE', 'HEALTH', 'RESTARTS'], style: { head: [], border: [] }, chars: COMPACT });
      for (const s of t.services) services.push([s.container, good(s.ok || s.state === 'running', s.state), s.health === 'none' ? '-' : good(s.health !== 'unhealthy', s.health), String(s.restarts)]);
      out.push(services.toString());
    }
    if (t.backups.length > 0) {
      const backups = new Table({ head: ['JOB', 'LAST GOOD BACKUP', 'AGE / POLICY', 'SIZE', 'VERIFIED', 'OFF-SITE LAG', 'FAILURES', 'PITR WINDOW (UTC)'], style: { head: [], border: [] }, chars: COMPACT });
      for (const b of t.backups) {
        backups.push([
          b.running ? `${b.job} (running)` : b.job,
          b.lastGood?.id ?? good(false, 'none'),
          good(!b.late || b.inGracePeriod, `${b.lastGood ? formatDuration(b.lastGood.ageSeconds) : '-'} / ${formatDuration(b.maxAgeSeconds)}${b.inGracePeriod ? ' (grace after start)' : ''}`),
          b.lastGood ? formatSize(b.lastGood.sizeBytes) : '-',
          b.lastGood?.verified ? good(b.lastGood.verified === 'passed', b.lastGood.verified) : 'no',
          b.offsiteLagSeconds === null ? 'not configured' : formatDuration(b.offsiteLagSeconds),
          good(b.failuresSinceLastGood === 0, String(b.failuresSinceLastGood)),
          window(b.restorableWindow),
        ]);
      }
      out.push(backups.toString());
    }
    out.push('');
  }
  const problems = report.tenants.flatMap(problemLines);
  if (problems.length > 0) out.push(colors.red('Problems:'), ...problems.map((p) => `  ${p}`), '');
  out.push(`Backups are late when ${STALENESS_RULE.replace(/^late when /, '')}.`);
  if (terminal) {
    const s = report.summary;
    out.push(good(report.ok, `${s.tenants} tenant(s): ${s.healthy} healthy, ${s.tenants - s.healthy} with problems (${s.problems} problem(s))`));
  }
  return `${out.join('\n')}\n`;
}

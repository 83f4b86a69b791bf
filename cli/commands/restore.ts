import type Docker from 'dockerode';
import { POSTGRES_SERVICE } from '../../config/container-labels';
import { formatSize, ListedBackup } from '../../runtime/agent/listing';
import type { JobStatus } from '../../runtime/agent/report';
import type { CliCommand, CliIO } from '../context';
import { preparedRestore } from '../../runtime/agent/pitr/restore';
import { RESTORES_APPLIED_FOLDER } from '../../runtime/render/postgres-restore-on-start';
import { agentError, containerName, execAgent, execIn, serviceOf, tenantContainers } from '../docker/fleet';
import { agentStatus, chooseJobs, listBackups, openTenantAgent, TenantAgent } from '../docker/tenant-agent';
import { OperationFailed, UsageError } from '../errors';
import { loadOrThrow } from '../synthesis';

/** The kind of job whose restore is to a point in time (pitr-design.md): prepared by the agent, applied by Postgres's start wrapper. */
const POINT_IN_TIME_KIND = 'postgres-pitr';
const HEALTHY_TIMEOUT_MS = 10 * 60_000;

interface RestoreOptions {
  from?: string;
  toTime?: string;
  toLsn?: string;
  toName?: string;
  target?: string;
  only?: string;
  yes?: boolean;
}

export const restore: CliCommand = {
  register(program, context) {
    program
      .command('restore')
      .argument('<environment>')
      .argument('<tenant>')
      .argument('<job>', 'the backup job: postgres, redis, qdrant, minio, or postgres-pitr for a point in time')
      .description('Restore a tenant\'s data from a backup, or Postgres to a point in time: shows what will be replaced and asks first, runs the restore in the tenant\'s backup container (with the elevated credential for that one command), and ends with what was restored and how it was checked.')
      .option('--from <id|latest>', 'the backup (tenantry backups lists them; off-site-only ones are fetched first)', undefined)
      .option('--to-time <time>', 'point in time: a timestamp with zone, e.g. "2026-12-01 17:15:00+00" (postgres-pitr jobs)')
      .option('--to-lsn <lsn>', 'point in time: a WAL position, e.g. 0/3000148 (postgres-pitr jobs)')
      .option('--to-name <name>', 'point in time: a restore point made with pg_create_restore_point (postgres-pitr jobs)')
      .option('--target <name>', 'restore into another database, collection or bucket (or host:port for Redis) instead of replacing')
      .option('--only <name>', 'only this database, collection or bucket of the backup')
      .option('--yes', 'do not ask (scripts); without it, and without a terminal to ask on, the restore is refused')
      .addHelpText(
        'after',
        [
          '',
          'Examples:',
          '  tenantry restore prod acme postgres                               # the newest good backup, asks first',
          '  tenantry restore prod acme postgres --from postgres-20261201T010000.000Z --only app --target app_copy',
          '  tenantry restore prod acme postgres-pitr --to-time "2026-12-01 17:14:59+00"',
          '  tenantry restore prod acme redis --from latest --yes',
          '',
          'Postgres and MinIO restores need the elevated credential the backup container does not hold: export',
          'the variables the agent names (TENANTRY_RESTORE_PGUSER / TENANTRY_RESTORE_PGPASSWORD, or',
          'TENANTRY_RESTORE_MINIO_ACCESS_KEY / _SECRET_KEY) from `terraform output -json admin_<tenant>`; they go to',
          'that one docker exec only. Exit codes: 0 restored and checked, 1 it failed (the current data is kept),',
          '2 a usage or configuration mistake, or no confirmation.',
        ].join('\n'),
      )
      .action(async (environment: string, tenant: string, jobName: string, options: RestoreOptions, command) => {
        const pointInTime = pointInTimeArgs(options);
        const config = loadOrThrow(context.configDir(command));
        const agent = await openTenantAgent(config, environment, tenant, context.io.env);
        try {
          const [job] = chooseJobs(await agentStatus(agent), jobName, agent.who);
          const credential = restoreCredential(job, context.io.env, agent.who);
          if (pointInTime.length > 0 || job.kind === POINT_IN_TIME_KIND) {
            if (job.kind !== POINT_IN_TIME_KIND) throw new UsageError(`${jobName} is a ${job.kind} job: a point in time (--to-time, --to-lsn, --to-name) needs a ${POINT_IN_TIME_KIND} job`);
            if (pointInTime.length === 0) throw new UsageError(`a ${POINT_IN_TIME_KIND} restore needs --to-time, --to-lsn or --to-name`);
            const postgres = await postgresContainer(agent);
            await confirm(context.io, options.yes, pointInTimePlan(agent, job, pointInTime, containerName(postgres)));
            await restoreToPoint(agent, job, pointInTime, credential, postgres, context.io);
            return;
          }
          const chosen = await chooseBackup(agent, job, options.from ?? 'latest');
          await confirm(context.io, options.yes, logicalPlan(agent, job, chosen, options));
          await restoreBackup(agent, job, chosen, options, credential, context.io);
        } finally {
          agent.connection.close();
        }
      });
  },
};

function pointInTimeArgs(options: RestoreOptions): string[] {
  const given = [
    ['--to-time', options.toTime],
    ['--to-lsn', options.toLsn],
    ['--to-name', options.toName],
  ].filter((pair): pair is [string, string] => pair[1] !== undefined);
  if (given.length > 1) throw new UsageError(`give one of --to-time, --to-lsn, --to-name (got ${given.map(([flag]) => flag).join(' and ')})`);
  if (given.length === 1 && options.from !== undefined) throw new UsageError('--from picks a backup; a point in time (--to-…) picks its own base backup: give one or the other');
  return given.flat();
}

/** The job's elevated credential from this shell's environment, for the one exec; refused before anything runs when it is missing. */
function restoreCredential(job: JobStatus, env: NodeJS.ProcessEnv, who: string): Record<string, string> {
  const names = job.restoreCredential?.env ?? [];
  const missing = names.filter((n) => !env[n]);
  if (missing.length > 0) {
    const where = job.restoreCredential?.source ?? `terraform output -json admin_${who.split('/')[1]}`;
    throw new UsageError(`restoring ${job.job} of ${who} needs the credential the backup container does not hold: export ${missing.join(' and ')} (from ${where}) for this command; it is passed to that one docker exec only`);
  }
  return Object.fromEntries(names.map((n) => [n, env[n]!]));
}

async function chooseBackup(agent: TenantAgent, job: JobStatus, from: string): Promise<ListedBackup> {
  const { backups } = await listBackups(agent, job.job);
  const usable = backups.filter((b) => b.status === 'ok' && b.verified?.result !== 'failed');
  if (from === 'latest') {
    const newest = usable[usable.length - 1];
    if (!newest) throw new OperationFailed(`${agent.who} has no good ${job.job} backup to restore (tenantry backups ${agent.who.replace('/', ' ')} ${job.job} lists them)`);
    return newest;
  }
  const found = backups.find((b) => b.id === from);
  if (!found) throw new UsageError(`${agent.who} has no ${job.job} backup "${from}" locally or off-site (newest: ${usable[usable.length - 1]?.id ?? 'none'})`);
  if (found.status !== 'ok') throw new UsageError(`backup ${from} is not restorable (status ${found.status}${found.problem ? `: ${found.problem}` : ''})`);
  return found;
}

/** What a restore of this kind replaces, as the agent does it (README, "Listing, verifying and restoring"). */
function replaced(job: JobStatus, backup: ListedBackup, options: RestoreOptions): string {
  const parts = options.only ? [options.only] : backup.contents;
  const into = options.target ? ` into ${options.target}` : '';
  switch (job.kind) {
    case 'postgres':
      return `database(s) ${parts.join(', ')}${into}: each is restored beside the current one, checked table by table, then swapped in; the current one is kept as <database>__before_restore_<time>`;
    case 'redis':
      return `the keyspace of ${options.target ?? 'the current Redis master'}: emptied and replaced by the backup's, every key checked`;
    case 'qdrant':
      return `collection(s) ${parts.join(', ')}${into}: replaced by the backup's snapshots`;
    case 'minio':
      return `bucket(s) ${parts.join(', ')}${into}: objects replaced by the backup's`;
    default:
      return `what job ${job.job} (${job.kind}) backs up`;
  }
}

function logicalPlan(agent: TenantAgent, job: JobStatus, backup: ListedBackup, options: RestoreOptions): string[] {
  const size = backup.sizeBytes === null ? 'size in its off-site manifest' : formatSize(backup.sizeBytes);
  const where = backup.location === 'offsite' ? 'off-site only: fetched and checked first' : 'on the backup volume';
  return [
    `Restore ${agent.who} ${job.job} from ${backup.id}`,
    `  backup:   started ${backup.startedAt}, ${size}, verified: ${backup.verified?.result ?? 'no'}, ${where}`,
    `  replaces: ${replaced(job, backup, options)}`,
  ];
}

function pointInTimePlan(agent: TenantAgent, job: JobStatus, pointInTime: string[], postgres: string): string[] {
  const window = job.restorableWindow ? `${job.restorableWindow.from} .. ${job.restorableWindow.to}` : 'not reported by the agent';
  return [
    `Restore ${agent.who} Postgres to ${describePoint(pointInTime)} (job ${job.job}; restorable window: ${window})`,
    `  replaces: the data directory of ${postgres}: the agent prepares a recovered copy first, then the`,
    '            container is restarted and its start wrapper swaps the copy in; the current one is kept as pgdata.before-restore-<id>',
  ];
}

const describePoint = ([flag, value]: string[]) => `${flag.replace(/^--to-/, '')} ${value}`;

/** Asks for "yes" on a terminal; without one, only --yes goes on. */
async function confirm(io: CliIO, yes: boolean | undefined, plan: string[]): Promise<void> {
  io.stdout(`${plan.join('\n')}\n`);
  if (yes) return;
  if (!io.ask) throw new UsageError('a restore replaces data: run it in a terminal to confirm, or pass --yes');
  const answer = (await io.ask('Type "yes" to restore: ')).trim().toLowerCase();
  if (answer !== 'yes') throw new UsageError('not confirmed; nothing was restored');
}

/** The agent's log messages as progress lines: what it is doing, as it does it. */
function progressLogger(io: CliIO): (line: string) => void {
  return (line) => {
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if (entry.msg) io.stdout(`  ${entry.level === 'warn' || entry.level === 'error' ? `${entry.level}: ` : ''}${entry.msg}\n`);
    } catch {
      // not a log line (the agent's own error line comes back in its result)
    }
  };
}

const CHECKED: Record<string, string> = {
  postgres: 'every file against its sha256; every table\'s row count in the restored copy against the counts at dump time, before it was swapped in',
  redis: 'every file against its sha256; every key copied as bytes, then looked up on the target',
  qdrant: 'every file against its sha256 before it was uploaded',
  minio: 'every file against its sha256 before it was uploaded',
};

async function restoreBackup(agent: TenantAgent, job: JobStatus, backup: ListedBackup, options: RestoreOptions, credential: Record<string, string>, io: CliIO): Promise<void> {
  const args = [
    'restore',
    job.job,
    '--from',
    backup.id,
    '--force',
    ...(backup.location === 'offsite' ? ['--from-offsite'] : []),
    ...(options.target ? ['--target', options.target] : []),
    ...(options.only ? ['--only', options.only] : []),
  ];
  const result = await execAgent(agent.container, args, { env: credential, onLog: progressLogger(io) });
  if (result.exitCode !== 0) throw new OperationFailed(`${agent.who}: the restore of ${job.job} failed, the current data is kept: ${agentError(result)}`);
  io.stdout(`Restored: ${result.stdout.trim()}\nChecked:  ${CHECKED[job.kind] ?? 'every file against its sha256'}\n`);
}

/**
 * pitr-design.md, "Restore to a point": the agent prepares a recovered data directory and marks
 * it pending; restarting the Postgres container lets its start wrapper swap it in; then the server
 * must come back healthy.
 */
/** The tenant's own Postgres server, which a point-in-time restore restarts (found before anything is prepared). */
async function postgresContainer(agent: TenantAgent): Promise<Docker.ContainerInfo> {
  const found = (await tenantContainers(agent.connection.docker, agent.target)).find((c) => serviceOf(c) === POSTGRES_SERVICE);
  if (!found) throw new OperationFailed(`${agent.who} has no ${POSTGRES_SERVICE} container of its own to restart (a tenant on a shared server is restored by the shared server's agent)`);
  return found;
}

async function restoreToPoint(agent: TenantAgent, job: JobStatus, pointInTime: string[], credential: Record<string, string>, postgres: Docker.ContainerInfo, io: CliIO): Promise<void> {
  io.stdout('Preparing the recovered data directory in the backup container…\n');
  const prepared = await execAgent(agent.container, ['restore', job.job, ...pointInTime], { env: credential, onLog: progressLogger(io) });
  if (prepared.exitCode !== 0) throw new OperationFailed(`${agent.who}: preparing the point-in-time restore failed; the server is untouched: ${agentError(prepared)}`);
  const restore = preparedRestore(prepared.stdout);
  if (!restore) throw new OperationFailed(`${agent.who}: the agent reported no prepared restore, so ${containerName(postgres)} was not restarted: ${prepared.stdout.trim()}`);
  const name = containerName(postgres);
  const container = agent.connection.docker.getContainer(postgres.Id);
  io.stdout(`Prepared restore ${restore.id} (${restore.reached})\nRestarting ${name} so its start wrapper applies it…\n`);
  await container.restart({ t: 60 });
  await waitHealthy(container, name);
  // The wrapper starts the server on its current data directory when it cannot apply the restore: healthy alone proves nothing.
  const applied = await execIn(container, ['sh', '-c', `test -e "$(dirname "$PGDATA")/${RESTORES_APPLIED_FOLDER}/$1"`, 'sh', restore.id], 'postgres');
  if (applied.exitCode !== 0) {
    const log = (await container.logs({ stdout: true, stderr: true, tail: 200 })).toString('utf8').split('\n').filter((l) => l.includes('tenantry-restore-on-start'));
    throw new OperationFailed(`${name} restarted but did not apply restore ${restore.id}: it runs on its previous data directory, untouched. Its start wrapper said:\n${log.join('\n') || '(nothing)'}`);
  }
  io.stdout(
    `Restored: ${agent.who} Postgres to ${restore.reached}; ${name} runs on it (restore ${restore.id})\n` +
      `Checked:  the recovered copy reached its target and was consistent before it was swapped in; ${name} is healthy on it\n` +
      `Kept:     the data directory it replaced, as pgdata.before-restore-${restore.id} on ${name}'s data volume: remove it once you are satisfied\n`,
  );
}

async function waitHealthy(container: Docker.Container, name: string): Promise<void> {
  const deadline = Date.now() + HEALTHY_TIMEOUT_MS;
  for (;;) {
    const { State, Config } = await container.inspect();
    if (State.Running && (!Config.Healthcheck || State.Health?.Status === 'healthy')) return;
    if (!State.Running && State.Status !== 'restarting' || Date.now() > deadline) {
      const log = (await container.logs({ stdout: true, stderr: true, tail: 20 })).toString('utf8').trim();
      throw new OperationFailed(`${name} did not come back healthy after the restart (${State.Status}, health ${State.Health?.Status ?? 'none'}); its log ends:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

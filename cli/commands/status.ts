import { Option } from 'commander';
import { agentStatusSchema } from '../../runtime/agent/report';
import type { CliCommand } from '../context';
import { parseAgentJson } from '../docker/agent-output';
import { asUnreachable, connect, DockerUnreachable } from '../docker/connection';
import { BACKUP_SERVICE } from '../../config/container-labels';
import { agentError, backupContainer, execAgent, selectTargets, serviceOf, TenantTarget, tenantContainers } from '../docker/fleet';
import { EXIT } from '../errors';
import { backupStatuses, BackupJobStatus, renderStatusJson, renderStatusTable, ServiceStatus, serviceStatus, statusReport, tenantStatus, TenantStatus } from '../status/report';
import type Docker from 'dockerode';
import { errorMessage } from '../../runtime/agent/errors';
import { loadOrThrow } from '../synthesis';

export const status: CliCommand = {
  register(program, context) {
    program
      .command('status')
      .description('One screen for the fleet: every tenant\'s containers (state, health, restarts) and backup jobs (last good backup, its age against the schedule, size, verification, off-site lag, failures, point-in-time window), read from each environment\'s Docker host. Exit 1 when anything is unhealthy or late.')
      .option('--env <name>', 'only this environment')
      .option('--tenant <name>', 'only this tenant')
      .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
      .addHelpText(
        'after',
        [
          '',
          'Examples:',
          '  tenantry status                          # every environment and tenant',
          '  tenantry status --env prod --tenant acme',
          '  tenantry status -o json | jq \'.tenants[] | select(.ok | not)\'',
          '',
          'A backup job is late when its newest good backup is older than twice the longest gap of its',
          'schedule (the agent\'s /health uses the same rule). Exit codes: 0 all healthy, 1 a container is',
          'down or unhealthy, a backup is late, failed or unverifiable, or a host did not answer; 2 a usage',
          'or configuration mistake. Runs in cron and CI as it is.',
        ].join('\n'),
      )
      .action(async (options: { env?: string; tenant?: string; output: 'table' | 'json' }, command) => {
        const config = loadOrThrow(context.configDir(command));
        const targets = selectTargets(config, options);
        const byEnvironment = new Map<string, TenantTarget[]>();
        for (const t of targets) byEnvironment.set(t.environment.name, [...(byEnvironment.get(t.environment.name) ?? []), t]);
        const tenants = (await Promise.all([...byEnvironment.values()].map((group) => environmentStatus(group, context.io.env)))).flat();
        const report = statusReport(tenants, new Date());
        context.io.stdout(options.output === 'json' ? renderStatusJson(report) : renderStatusTable(report, context.colors(command), context.io.isTTY));
        if (!report.ok) context.exitWith(EXIT.failed);
      });
  },
};

/** The tenants of one environment, over one connection to its Docker host. */
async function environmentStatus(targets: TenantTarget[], env: NodeJS.ProcessEnv): Promise<TenantStatus[]> {
  let connection;
  try {
    connection = connect(targets[0].environment, env);
  } catch (error) {
    // One environment's host out of reach (a missing TLS certificate, say) must not hide the others.
    return targets.map((t) => tenantStatus(t.environment.name, t.tenant.name, env.DOCKER_HOST || t.environment.docker.host, [], [], [`cannot reach Docker: ${errorMessage(error)}`]));
  }
  try {
    const out: TenantStatus[] = [];
    for (const target of targets) out.push(await oneTenant(connection.docker, connection.host, target));
    return out;
  } finally {
    connection.close();
  }
}

async function oneTenant(docker: Docker, host: string, target: TenantTarget): Promise<TenantStatus> {
  const problems: string[] = [];
  let services: ServiceStatus[] = [];
  let backups: BackupJobStatus[] = [];
  let agentStartedAt: Date | undefined;
  try {
    const containers = await tenantContainers(docker, target);
    if (containers.length === 0) problems.push(`no containers on ${host}: not deployed there?`);
    services = await Promise.all(
      containers.map(async (c) => {
        const inspected = await docker.getContainer(c.Id).inspect();
        if (serviceOf(c) === BACKUP_SERVICE && inspected.State.Running) agentStartedAt = new Date(inspected.State.StartedAt);
        return serviceStatus(c, inspected);
      }),
    );
  } catch (caught) {
    const error = asUnreachable(host, caught);
    problems.push(error instanceof DockerUnreachable ? error.message : `Docker at ${host} did not answer: ${errorMessage(error)}`);
    return tenantStatus(target.environment.name, target.tenant.name, host, services, backups, problems);
  }
  const hasBackups = Object.keys(target.tenant.backup).length > 0;
  if (hasBackups) {
    try {
      const agent = await backupContainer(docker, target);
      const result = await execAgent(agent, ['status', '--json']);
      if (result.exitCode !== 0) throw new Error(`tenantry-agent status failed: ${agentError(result)}`);
      backups = backupStatuses(parseAgentJson(agentStatusSchema, result.stdout, `${target.environment.name}/${target.tenant.name}`), agentStartedAt, new Date());
    } catch (error) {
      problems.push(`backups unknown: ${errorMessage(error)}`);
    }
  }
  return tenantStatus(target.environment.name, target.tenant.name, host, services, backups, problems);
}

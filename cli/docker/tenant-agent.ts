import type Docker from 'dockerode';
import { z } from 'zod';
import { listedBackupSchema } from '../../runtime/agent/listing';
import { agentStatusSchema, AgentStatus } from '../../runtime/agent/report';
import { OperationFailed, UsageError } from '../errors';
import { parseAgentJson } from './agent-output';
import { asUnreachable, connect, DockerConnection } from './connection';
import { agentError, backupContainer, execAgent, selectTargets, TenantTarget } from './fleet';
import { suggest } from '../../config/issues';
import type { TenantryConfig } from '../../config/model';

/** One tenant's backup agent, reached through its environment's Docker host. */
export interface TenantAgent {
  readonly target: TenantTarget;
  readonly connection: DockerConnection;
  readonly container: Docker.Container;
  /** `E/T`, for messages. */
  readonly who: string;
}

/** The agent of tenant `tenant` in environment `environment` (both must exist in the configuration), connected; close() when done. */
export async function openTenantAgent(config: TenantryConfig, environment: string, tenant: string, env: NodeJS.ProcessEnv): Promise<TenantAgent> {
  const [target] = selectTargets(config, { env: environment, tenant });
  const connection = connect(target.environment, env);
  try {
    const container = await backupContainer(connection.docker, target);
    return { target, connection, container, who: `${environment}/${tenant}` };
  } catch (error) {
    connection.close();
    throw asUnreachable(connection.host, error);
  }
}

export async function agentStatus(agent: TenantAgent): Promise<AgentStatus> {
  const result = await execAgent(agent.container, ['status', '--json']);
  if (result.exitCode !== 0) throw new OperationFailed(`${agent.who}: tenantry-agent status failed: ${agentError(result)}`);
  return parseAgentJson(agentStatusSchema, result.stdout, agent.who);
}

/** The job named `job` (an error listing the agent's jobs otherwise), or every job when `job` is undefined. */
export function chooseJobs(status: AgentStatus, job: string | undefined, who: string): AgentStatus['jobs'] {
  if (job === undefined) return status.jobs;
  const found = status.jobs.find((j) => j.job === job);
  if (found) return [found];
  const names = status.jobs.map((j) => j.job);
  const close = suggest(job, names);
  throw new UsageError(`${who} has no backup job "${job}"${close ? `; did you mean "${close}"?` : ''} (jobs: ${names.join(', ')})`);
}

export const listedBackupsSchema = z.array(listedBackupSchema);

/**
 * Every backup of the job (or all jobs), local and off-site. When the off-site bucket cannot be
 * listed, the local ones come back with the reason in `offsiteProblem`.
 */
export async function listBackups(agent: TenantAgent, job: string | undefined): Promise<{ backups: z.infer<typeof listedBackupsSchema>; offsiteProblem: string | null }> {
  const args = ['list', ...(job === undefined ? [] : [job]), '--json'];
  const withOffsite = await execAgent(agent.container, [...args, '--offsite']);
  if (withOffsite.exitCode === 0) return { backups: parseAgentJson(listedBackupsSchema, withOffsite.stdout, agent.who), offsiteProblem: null };
  const local = await execAgent(agent.container, args);
  if (local.exitCode !== 0) throw new OperationFailed(`${agent.who}: tenantry-agent list failed: ${agentError(local)}`);
  return { backups: parseAgentJson(listedBackupsSchema, local.stdout, agent.who), offsiteProblem: agentError(withOffsite) };
}

import { Writable } from 'stream';
import type Docker from 'dockerode';
import { BACKUP_SERVICE, LABELS } from '../../config/container-labels';
import { suggest } from '../../config/issues';
import type { EnvironmentConfig, TenantConfig, TenantryConfig } from '../../config/model';
import { AGENT_EXEC } from '../../runtime/agent/config';
import { OperationFailed, UsageError } from '../errors';

/** One tenant in one environment: what the CLI acts on. */
export interface TenantTarget {
  readonly environment: EnvironmentConfig;
  readonly tenant: TenantConfig;
}

/** The tenants `--env` / `--tenant` (or positional E T) name: every one when neither is given. */
export function selectTargets(config: TenantryConfig, filter: { env?: string; tenant?: string }): TenantTarget[] {
  const environments = config.environments.map((e) => e.name);
  if (filter.env !== undefined && !environments.includes(filter.env)) {
    const close = suggest(filter.env, environments);
    throw new UsageError(`no environment "${filter.env}"${close ? `; did you mean "${close}"?` : ''} (environments: ${environments.join(', ') || 'none'})`);
  }
  const targets = config.environments
    .filter((e) => filter.env === undefined || e.name === filter.env)
    .flatMap((environment) => environment.tenants.map((tenant) => ({ environment, tenant })));
  if (filter.tenant === undefined) return targets;
  const chosen = targets.filter((t) => t.tenant.name === filter.tenant);
  if (chosen.length === 0) {
    const names = [...new Set(targets.map((t) => t.tenant.name))];
    const close = suggest(filter.tenant, names);
    throw new UsageError(`no tenant "${filter.tenant}"${filter.env ? ` in environment ${filter.env}` : ''}${close ? `; did you mean "${close}"?` : ''} (tenants: ${names.join(', ') || 'none'})`);
  }
  return chosen;
}

/** The tenant's containers on the Docker host, running or not, found by their labels, sorted by name. */
export async function tenantContainers(docker: Docker, target: TenantTarget): Promise<Docker.ContainerInfo[]> {
  const found = await docker.listContainers({ all: true, filters: { label: [`${LABELS.environment}=${target.environment.name}`, `${LABELS.tenant}=${target.tenant.name}`] } });
  return found.sort((a, b) => containerName(a).localeCompare(containerName(b)));
}

export const containerName = (info: Docker.ContainerInfo) => (info.Names[0] ?? info.Id).replace(/^\//, '');
export const serviceOf = (info: Docker.ContainerInfo) => info.Labels[LABELS.service] ?? '';

/** The running container of `service` of the tenant, or a failure that says what is wrong. */
export async function runningService(docker: Docker, target: TenantTarget, service: string): Promise<Docker.Container> {
  const all = await tenantContainers(docker, target);
  const found = all.find((c) => serviceOf(c) === service);
  const who = `${target.environment.name}/${target.tenant.name}`;
  if (!found) throw new OperationFailed(`${who} has no ${service} container on ${target.environment.docker.host} (labels ${LABELS.environment}=${target.environment.name}, ${LABELS.tenant}=${target.tenant.name}, ${LABELS.service}=${service}); is it deployed?`);
  if (found.State !== 'running') throw new OperationFailed(`${containerName(found)} is ${found.State} (${found.Status}); start it first (docker start ${containerName(found)})`);
  return docker.getContainer(found.Id);
}

export const backupContainer = (docker: Docker, target: TenantTarget) => runningService(docker, target, BACKUP_SERVICE);

export interface AgentExec {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * `tenantry-agent <args>` in the backup container (docker exec), as the agent's user. `env` is
 * added to that one process only (a restore's elevated credential): never on a command line,
 * never in the container's configuration. `onLine` sees each stdout line as it arrives.
 */
export function execAgent(
  container: Docker.Container,
  args: readonly string[],
  options: { env?: Record<string, string>; onLine?: (line: string) => void; onLog?: (line: string) => void } = {},
): Promise<AgentExec> {
  return execIn(container, [AGENT_EXEC.command, ...args], AGENT_EXEC.user, options);
}

/** `command` in `container` as `user` (docker exec); see execAgent. */
export async function execIn(
  container: Docker.Container,
  command: readonly string[],
  user: string,
  options: { env?: Record<string, string>; onLine?: (line: string) => void; onLog?: (line: string) => void } = {},
): Promise<AgentExec> {
  const exec = await container.exec({
    Cmd: [...command],
    User: user,
    Env: Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`),
    AttachStdout: true,
    AttachStderr: true,
  });
  const stream = await exec.start({ hijack: true, stdin: false });
  let stdout = '';
  let stderr = '';
  const lines = (each: ((line: string) => void) | undefined) => {
    let pending = '';
    return {
      push(text: string) {
        pending += text;
        const complete = pending.split('\n');
        pending = complete.pop() ?? '';
        for (const line of complete) each?.(line);
      },
      end: () => pending && each?.(pending),
    };
  };
  const out = lines(options.onLine);
  const log = lines(options.onLog);
  const sink = (take: (text: string) => void) =>
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        take(chunk.toString('utf8'));
        done();
      },
    });
  container.modem.demuxStream(
    stream,
    sink((text) => {
      stdout += text;
      out.push(text);
    }),
    sink((text) => {
      stderr += text;
      log.push(text);
    }),
  );
  await new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', reject);
  });
  out.end();
  log.end();
  const { ExitCode } = await exec.inspect();
  return { exitCode: ExitCode ?? -1, stdout, stderr };
}

/** The agent's own one-line error (`tenantry-agent: …`), else its last stderr line, for a failure message. */
export function agentError(result: AgentExec): string {
  const lines = result.stderr.split('\n').filter((l) => l.trim() !== '');
  const own = lines.filter((l) => l.startsWith(`${AGENT_EXEC.command}: `)).pop();
  const logged = lines
    .flatMap((l) => {
      try {
        const entry = JSON.parse(l) as { level?: string; msg?: string; fields?: { error?: string } };
        return entry.level === 'error' ? [`${entry.msg}${entry.fields?.error ? `: ${entry.fields.error}` : ''}`] : [];
      } catch {
        return [];
      }
    })
    .pop();
  return own?.slice(AGENT_EXEC.command.length + 2) ?? logged ?? lines.pop() ?? result.stdout.trim().split('\n').pop() ?? `exit ${result.exitCode}`;
}

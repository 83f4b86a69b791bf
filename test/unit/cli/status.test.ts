import type Docker from 'dockerode';
import { createColors } from 'picocolors';
import { connect, sshArguments } from '../../../cli/docker/connection';
import { selectTargets } from '../../../cli/docker/fleet';
import { UsageError } from '../../../cli/errors';
import { backupStatuses, renderStatusTable, serviceStatus, statusReport, statusReportSchema, tenantStatus } from '../../../cli/status/report';
import type { EnvironmentConfig, TenantryConfig } from '../../../config/model';
import type { AgentStatus, JobStatus } from '../../../runtime/agent/report';
import { STALENESS_RULE } from '../../../runtime/agent/report';
import { tenantry } from './support';

/*
 * `tenantry status` judged from what Docker and the agent report (the real daemon's side is in
 * test/docker/cli-tenant.test.ts): which container states and backup ages are problems, the JSON
 * against its schema, and the output for a terminal and for a pipe.
 */

const info = (name: string, service: string): Docker.ContainerInfo => ({ Id: name, Names: [`/${name}`], Labels: { 'tenantry.service': service } }) as unknown as Docker.ContainerInfo;

function inspected(state: Partial<Docker.ContainerInspectInfo['State']>, restart = 'unless-stopped', restarts = 0): Docker.ContainerInspectInfo {
  return { State: { Status: 'running', Running: true, ExitCode: 0, FinishedAt: '0001-01-01T00:00:00Z', ...state }, HostConfig: { RestartPolicy: { Name: restart } }, RestartCount: restarts } as unknown as Docker.ContainerInspectInfo;
}

describe('a container\'s status', () => {
  test('running and healthy is fine; its restarts are shown', () => {
    expect(serviceStatus(info('prod-acme-postgres', 'postgres'), inspected({ Health: { Status: 'healthy', FailingStreak: 0, Log: [] } }, 'unless-stopped', 2))).toEqual({
      container: 'prod-acme-postgres', service: 'postgres', state: 'running', health: 'healthy', restarts: 2, ok: true, problem: null,
    });
  });

  test('a one-shot container that exited 0 is completed, one that failed is a problem', () => {
    expect(serviceStatus(info('prod-acme-postgres-provision', 'postgres-provision'), inspected({ Status: 'exited', Running: false, ExitCode: 0 }, 'no'))).toMatchObject({ state: 'completed', ok: true });
    expect(serviceStatus(info('prod-acme-postgres-provision', 'postgres-provision'), inspected({ Status: 'exited', Running: false, ExitCode: 3, FinishedAt: '2026-12-01T10:00:00Z' }, 'no'))).toMatchObject({
      ok: false, problem: 'prod-acme-postgres-provision is exited (exit 3 at 2026-12-01T10:00:00Z)',
    });
  });

  test('a stopped service and a failing healthcheck are problems, the check\'s last output quoted', () => {
    expect(serviceStatus(info('prod-acme-sentinel-3', 'sentinel-3'), inspected({ Status: 'exited', Running: false, ExitCode: 0, FinishedAt: '2026-12-01T10:00:00Z' }))).toMatchObject({
      state: 'exited', ok: false, problem: 'prod-acme-sentinel-3 is exited (exit 0 at 2026-12-01T10:00:00Z)',
    });
    const unhealthy = inspected({ Health: { Status: 'unhealthy', FailingStreak: 4, Log: [{ Start: '', End: '', ExitCode: 1, Output: 'NOAUTH Authentication required.\n' }] } });
    expect(serviceStatus(info('prod-acme-redis-1', 'redis-1'), unhealthy)).toMatchObject({ state: 'running', health: 'unhealthy', ok: false, problem: 'prod-acme-redis-1 is unhealthy (4 failed checks: NOAUTH Authentication required.)' });
  });
});

const NOW = new Date('2026-12-01T12:00:00Z');

function job(over: Partial<JobStatus>): JobStatus {
  return {
    job: 'postgres', kind: 'postgres', schedule: '0 1 * * *', maxAgeSeconds: 172800,
    lastGood: { id: 'postgres-20261201T010000.000Z', endedAt: '2026-12-01T01:00:10.000Z', sizeBytes: 1_234_567, verified: 'passed' },
    ageSeconds: 39590, late: false, offsiteLagSeconds: 0, failuresSinceLastGood: 0, lastFailure: null, running: false, restoreCredential: null, ...over,
  };
}

const agent = (jobs: JobStatus[]): AgentStatus => ({ tenant: 'acme', environment: 'prod', rule: STALENESS_RULE, jobs });
const LONG_AGO = new Date('2026-11-01T00:00:00Z');

describe('a backup job\'s status (late: older than 2 x the schedule\'s longest gap)', () => {
  test('a recent, verified backup is fine', () => {
    expect(backupStatuses(agent([job({})]), LONG_AGO, NOW)[0]).toMatchObject({ ok: true, problem: null, late: false, inGracePeriod: false });
  });

  test('a late backup is a problem that states the policy', () => {
    const [late] = backupStatuses(agent([job({ ageSeconds: 200000, late: true })]), LONG_AGO, NOW);
    expect(late).toMatchObject({ ok: false, problem: 'newest good backup is 55h 33m old (policy: 48h 0m)' });
  });

  test('no backup yet: a problem, unless the backup container started less than one schedule gap ago', () => {
    const none = job({ lastGood: null, ageSeconds: null, late: true });
    expect(backupStatuses(agent([none]), LONG_AGO, NOW)[0]).toMatchObject({ ok: false, problem: 'no good backup yet', inGracePeriod: false });
    expect(backupStatuses(agent([none]), new Date(NOW.getTime() - 3600_000), NOW)[0]).toMatchObject({ ok: true, problem: null, inGracePeriod: true });
    expect(backupStatuses(agent([none]), new Date(NOW.getTime() - 86401_000), NOW)[0]).toMatchObject({ ok: false, inGracePeriod: false });
  });

  test('a failed verification, or failed runs since the newest good backup, are problems', () => {
    expect(backupStatuses(agent([job({ lastGood: { ...job({}).lastGood!, verified: 'failed' } })]), LONG_AGO, NOW)[0].problem).toBe('newest good backup postgres-20261201T010000.000Z failed its verification');
    const failing = job({ failuresSinceLastGood: 2, lastFailure: { id: 'postgres-x', at: '2026-12-01T11:00:00Z', error: 'pg_dump: connection refused\nmore' } });
    expect(backupStatuses(agent([failing]), LONG_AGO, NOW)[0].problem).toBe('2 failed run(s) since the newest good backup: pg_dump: connection refused');
  });
});

describe('the report', () => {
  const sick = tenantStatus('prod', 'acme', 'ssh://deploy@db1', [serviceStatus(info('prod-acme-sentinel-3', 'sentinel-3'), inspected({ Status: 'exited', Running: false, ExitCode: 0, FinishedAt: 'T' }))], backupStatuses(agent([job({})]), LONG_AGO, NOW), []);
  const well = tenantStatus('prod', 'initech', 'ssh://deploy@db1', [serviceStatus(info('prod-initech-postgres', 'postgres'), inspected({}))], backupStatuses(agent([job({})]), LONG_AGO, NOW), []);
  const unreachable = tenantStatus('dev', 'acme', 'ssh://dev1', [], [], ['Docker at ssh://dev1 did not answer: connection refused']);

  test('JSON matches its schema; the summary counts tenants and problems', () => {
    const report = statusReport([sick, well, unreachable], NOW);
    expect(statusReportSchema.parse(JSON.parse(JSON.stringify(report)))).toEqual(report);
    expect(report).toMatchObject({ at: NOW.toISOString(), rule: STALENESS_RULE, ok: false, summary: { tenants: 3, healthy: 1, problems: 2 } });
    expect(statusReport([well], NOW).ok).toBe(true);
  });

  test('a point-in-time job\'s restorable window: in the JSON as the agent reports it, in the table to the minute (UTC)', () => {
    const restorableWindow = { from: '2026-12-01T01:00:10.123Z', to: '2026-12-01T11:59:58.456Z' };
    const pitr = job({ job: 'postgres-pitr', kind: 'postgres-pitr', restorableWindow });
    const report = statusReport([tenantStatus('prod', 'acme', 'ssh://deploy@db1', [], backupStatuses(agent([job({}), pitr]), LONG_AGO, NOW), [])], NOW);
    expect(statusReportSchema.parse(JSON.parse(JSON.stringify(report))).tenants[0].backups.map((b) => [b.job, b.restorableWindow])).toEqual([
      ['postgres', null],
      ['postgres-pitr', restorableWindow],
    ]);
    const table = renderStatusTable(report, createColors(false), false);
    expect(table).toContain('PITR WINDOW (UTC)');
    expect(table).toMatch(/postgres-pitr .*2026-12-01 01:00 \.\. 2026-12-01 11:59/);
  });

  test('on a terminal: colour and a summary line; piped: plain, the problems listed all the same', () => {
    const report = statusReport([sick, well], NOW);
    const terminal = renderStatusTable(report, createColors(true), true);
    expect(terminal).toContain('\u001b[31m');
    expect(terminal.trimEnd().split('\n').pop()).toContain('2 tenant(s): 1 healthy, 1 with problems (1 problem(s))');
    const piped = renderStatusTable(report, createColors(false), false);
    expect(piped).not.toContain('\u001b[');
    expect(piped).not.toContain('tenant(s):');
    expect(piped).toContain('Problems:\n  prod/acme: prod-acme-sentinel-3 is exited (exit 0 at T)\n');
    expect(piped).toContain(`Backups are late when ${STALENESS_RULE.replace('late when ', '')}.`);
  });
});

describe('reaching the fleet', () => {
  const environment = (name: string, host: string, sshOptions?: string[]) => ({ name, docker: { host, sshOptions, platform: 'linux' }, tenants: [{ name: 'acme' }, { name: 'initech' }] }) as unknown as EnvironmentConfig;
  const config = { environments: [environment('dev', 'unix:///var/run/docker.sock'), environment('prod', 'ssh://deploy@db1.example.com:2222', ['-o', 'StrictHostKeyChecking=yes'])] } as unknown as TenantryConfig;

  test('--env / --tenant pick tenants; a wrong name is a usage error with a suggestion', () => {
    expect(selectTargets(config, {}).map((t) => `${t.environment.name}/${t.tenant.name}`)).toEqual(['dev/acme', 'dev/initech', 'prod/acme', 'prod/initech']);
    expect(selectTargets(config, { tenant: 'acme' }).map((t) => t.environment.name)).toEqual(['dev', 'prod']);
    expect(() => selectTargets(config, { env: 'prd' })).toThrow(new UsageError('no environment "prd"; did you mean "prod"? (environments: dev, prod)'));
    expect(() => selectTargets(config, { env: 'dev', tenant: 'acm' })).toThrow(new UsageError('no tenant "acm" in environment dev; did you mean "acme"? (tenants: acme, initech)'));
  });

  test('ssh:// runs the system ssh with the environment\'s options, as the Docker CLI does', () => {
    expect(sshArguments(new URL('ssh://deploy@db1.example.com:2222'), ['-o', 'StrictHostKeyChecking=yes'])).toEqual(['-o', 'StrictHostKeyChecking=yes', '-p', '2222', '-l', 'deploy', 'db1.example.com', '--', 'docker', 'system', 'dial-stdio']);
    expect(sshArguments(new URL('ssh://db1'), [])).toEqual(['db1', '--', 'docker', 'system', 'dial-stdio']);
  });

  test('DOCKER_HOST overrides the environment\'s host (a test daemon, a tunnel)', () => {
    const prod = config.environments[1];
    expect(connect(prod, {}).host).toBe('ssh://deploy@db1.example.com:2222');
    const local = connect(prod, { DOCKER_HOST: 'unix:///run/test.sock' });
    expect(local.host).toBe('unix:///run/test.sock');
    expect((local.docker.modem as unknown as { socketPath: string }).socketPath).toBe('/run/test.sock');
  });
});

describe('restore: mistakes refused before anything is read', () => {
  test('--from with a point in time, or two points in time', async () => {
    expect(await tenantry(['restore', 'prod', 'acme', 'postgres-pitr', '--from', 'latest', '--to-time', '2026-12-01 10:00:00+00'])).toEqual({
      code: 2, stdout: '', stderr: 'tenantry: --from picks a backup; a point in time (--to-…) picks its own base backup: give one or the other\n',
    });
    expect((await tenantry(['restore', 'prod', 'acme', 'postgres-pitr', '--to-lsn', '0/3000148', '--to-name', 'before'])).stderr).toBe('tenantry: give one of --to-time, --to-lsn, --to-name (got --to-lsn and --to-name)\n');
  });
});

import { backupsReportSchema } from '../../cli/commands/backups';
import { statusReportSchema } from '../../cli/status/report';
import { execIn } from '../helpers/docker-deploy';
import { deployedTenant, runCli } from '../helpers/docker-suite';

/*
 * `tenantry status | backups | backup | restore` against one tenant deployed from its synthesized
 * cdk.tf.json on a real Docker daemon (DOCKER_HOST points the CLI at the tests' daemon, as an
 * operator's tunnel would). The CLI runs in this process with its output captured.
 */

const SECONDS = 1000;

const suite = deployedTenant({ suite: 'cli', setupSeconds: 600 });

const { name } = suite;

const tenantry = (argv: string[], env: NodeJS.ProcessEnv = {}) => runCli(suite.config.configDir, argv, { DOCKER_HOST: suite.daemon.host, ...env });

/** SQL as the tenant's application role, through PgBouncer, from the Postgres container. */
async function appSql(sql: string): Promise<string> {
  const d = suite.deployment;
  const result = await execIn(d.get(name('postgres')).container, ['psql', '-h', name('pgbouncer'), '-p', '6432', '-U', `${suite.config.tenant}_app`, '-d', 'app', '-v', 'ON_ERROR_STOP=1', '-tAc', sql], {
    env: { PGPASSWORD: d.get(name('pgbouncer')).env.PGBOUNCER_PASSWORD },
    user: 'postgres',
  });
  if (result.exitCode !== 0) throw new Error(`psql: ${result.stderr}`);
  return result.stdout.trim();
}

/** The restore credential as an operator exports it from `terraform output -json admin_<tenant>`. */
const superuser = () => {
  const env = suite.deployment.get(name('postgres')).env;
  return { TENANTRY_RESTORE_PGUSER: env.POSTGRES_USER ?? 'postgres', TENANTRY_RESTORE_PGPASSWORD: env.POSTGRES_PASSWORD };
};

describe('tenantry against a deployed tenant', () => {
  let backupId: string;

  test('backup: progress lines when piped, then the agent\'s summary', async () => {
    await appSql('create table orders (id int primary key, item text); insert into orders values (1, \'first\'), (2, \'second\')');
    const run = await tenantry(['backup', suite.config.environment, suite.config.tenant, 'postgres']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^postgres-\S+: writing /);
    expect(lines).toContainEqual(expect.stringMatching(/^postgres-\S+: checking /));
    expect(lines[lines.length - 2]).toMatch(/^postgres-\S+: done \d+(\.\d)? (B|KiB|MiB)/);
    expect(lines[lines.length - 1]).toMatch(/^postgres-\S+: ok, \d+ bytes$/);
    backupId = lines[lines.length - 1].split(':')[0];
  }, 120 * SECONDS);

  test('backups lists it (table and JSON matching its schema)', async () => {
    const json = await tenantry(['backups', suite.config.environment, suite.config.tenant, '-o', 'json']);
    expect(json.code).toBe(0);
    const report = backupsReportSchema.parse(JSON.parse(json.stdout));
    expect(report.backups.find((b) => b.id === backupId)).toMatchObject({ job: 'postgres', location: 'local', status: 'ok', contents: ['app'], offsite: 'not configured' });
    const table = await tenantry(['backups', suite.config.environment, suite.config.tenant, 'postgres']);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain(backupId);
    expect(table.stdout).toMatch(/JOB\s+│\s+BACKUP\s+│\s+WHERE/);
  });

  test('backup of an unknown job: exit 2 naming the jobs', async () => {
    const run = await tenantry(['backup', suite.config.environment, suite.config.tenant, 'postgress']);
    expect(run).toMatchObject({ code: 2, stdout: '' });
    expect(run.stderr).toBe(`tenantry: ${suite.config.environment}/${suite.config.tenant} has no backup job "postgress"; did you mean "postgres"? (jobs: postgres, postgres-pitr, redis)\n`);
  });

  test('restore: refused without a terminal unless --yes, and without the credential, before anything runs', async () => {
    const noYes = await tenantry(['restore', suite.config.environment, suite.config.tenant, 'postgres'], superuser());
    expect(noYes.code).toBe(2);
    expect(noYes.stdout).toContain(`Restore ${suite.config.environment}/${suite.config.tenant} postgres from ${backupId}`);
    expect(noYes.stderr).toBe('tenantry: a restore replaces data: run it in a terminal to confirm, or pass --yes\n');
    const noCredential = await tenantry(['restore', suite.config.environment, suite.config.tenant, 'postgres', '--yes']);
    expect(noCredential.code).toBe(2);
    expect(noCredential.stderr).toMatch(/^tenantry: restoring postgres of \S+ needs the credential the backup container does not hold: export TENANTRY_RESTORE_PGUSER and TENANTRY_RESTORE_PGPASSWORD/);
  });

  test('restore brings back a dropped table, and says how it was checked', async () => {
    await appSql('drop table orders');
    const run = await tenantry(['restore', suite.config.environment, suite.config.tenant, 'postgres', '--from', backupId, '--yes'], superuser());
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('  replaces: database(s) app: each is restored beside the current one');
    expect(run.stdout).toMatch(new RegExp(`\\nRestored: ${backupId}: restored .*app`));
    expect(run.stdout).toMatch(/\nChecked: {2}every file against its sha256; every table's row count/);
    expect(await appSql('select id, item from orders order by id')).toBe('1|first\n2|second');
  }, 180 * SECONDS);

  test('status: every container and job, JSON matching its schema, exit 0 while all is well', async () => {
    const run = await tenantry(['status', '--env', suite.config.environment, '-o', 'json']);
    const report = statusReportSchema.parse(JSON.parse(run.stdout));
    expect(report.tenants.map((t) => [t.environment, t.tenant])).toEqual([[suite.config.environment, suite.config.tenant]]);
    const [t] = report.tenants;
    expect(t.services.map((s) => s.container)).toEqual(suite.deployment.containers.map((c) => c.name));
    expect(t.services.find((s) => s.service === 'postgres-provision')).toMatchObject({ state: 'completed', ok: true });
    expect(t.services.find((s) => s.service === 'postgres')).toMatchObject({ state: 'running', health: 'healthy', restarts: expect.any(Number), ok: true });
    const postgres = t.backups.find((b) => b.job === 'postgres');
    expect(postgres).toMatchObject({ lastGood: { id: backupId }, late: false, ok: true, failuresSinceLastGood: 0, offsiteLagSeconds: null });
    // No Redis backup yet, but the agent started less than one schedule gap ago.
    expect(t.backups.find((b) => b.job === 'redis')).toMatchObject({ lastGood: null, late: true, inGracePeriod: true, ok: true });
    expect(report.ok).toBe(true);
    expect(run.code).toBe(0);
  });

  test('status: a stopped container and a failing healthcheck, exit 1, each named', async () => {
    const d = suite.deployment;
    await d.get(name('sentinel-3')).container.stop({ t: 5 });
    const replica = d.get(name('redis-1'));
    await execIn(replica.container, ['redis-cli', 'CONFIG', 'SET', 'requirepass', 'not-the-configured-one'], { env: { REDISCLI_AUTH: replica.env.REDIS_PASSWORD } });
    const deadline = Date.now() + 150 * SECONDS;
    while ((await replica.container.inspect()).State.Health?.Status !== 'unhealthy' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2 * SECONDS));

    const json = await tenantry(['status', '-o', 'json']);
    expect(json.code).toBe(1);
    const report = statusReportSchema.parse(JSON.parse(json.stdout));
    const [t] = report.tenants;
    expect(t.ok).toBe(false);
    expect(t.services.find((s) => s.container === name('sentinel-3'))).toMatchObject({ state: 'exited', ok: false, problem: expect.stringMatching(new RegExp(`^${name('sentinel-3')} is exited \\(exit 0 at `)) });
    expect(t.services.find((s) => s.container === name('redis-1'))).toMatchObject({ state: 'running', health: 'unhealthy', ok: false });
    expect(report.summary).toEqual({ tenants: 1, healthy: 0, problems: 2 });

    const table = await tenantry(['status', '--tenant', suite.config.tenant]);
    expect(table.code).toBe(1);
    expect(table.stdout).toContain(`${suite.config.environment}/${suite.config.tenant}: ${name('sentinel-3')} is exited`);
    expect(table.stdout).toContain(`${suite.config.environment}/${suite.config.tenant}: ${name('redis-1')} is unhealthy`);
    // Piped: no colour codes and no summary line.
    expect(table.stdout).not.toContain('\u001b[');
    expect(table.stdout).not.toMatch(/tenant\(s\): /);
  }, 200 * SECONDS);
});

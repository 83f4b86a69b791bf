import { backupsReportSchema } from '../../cli/commands/backups';
import { statusReportSchema } from '../../cli/status/report';
import { execIn } from '../helpers/docker-deploy';
import { agentManifest, deployedTenant, psqlIn, receiverCaughtUp, runCli, stdoutOf, writeAroundTime } from '../helpers/docker-suite';

/*
 * The operator's side of point-in-time recovery (README, "Point-in-time recovery"): `tenantry
 * status`, `tenantry backups` and `tenantry restore <env> <tenant> postgres-pitr --to-time T --yes`
 * against a tenant deployed from its synthesized cdk.tf.json on a real Docker daemon, the CLI
 * running in this process with DOCKER_HOST pointed at the tests' daemon. The agent-level flow
 * (tenantry-agent restore, docker restart by hand) is test/docker/pitr.test.ts.
 */

const SECONDS = 1000;

const suite = deployedTenant({ suite: 'cliPitr', setupSeconds: 900, services: ['postgres', 'backup'] });

const { name } = suite;
const postgres = () => suite.deployment.get(name('postgres')).container;
const agent = () => suite.deployment.get(name('backup')).container;

const tenantry = (argv: string[]) => runCli(suite.config.configDir, argv, { DOCKER_HOST: suite.daemon.host });

/** SQL as the image's superuser on the server's socket, inside its container. */
const sql = (query: string, database = 'app') => psqlIn(postgres(), query, database);

/** The receiver streams and has flushed everything the server has written so far. */
const archived = () => receiverCaughtUp(postgres(), 90 * SECONDS);

describe('tenantry over point-in-time recovery of a deployed tenant', () => {
  let baseBackup: string;
  let baseEnd: string;
  let target: string;

  test('a base backup (tenantry backup), then rows before a time T and rows after it', async () => {
    await archived();
    const run = await tenantry(['backup', suite.config.environment, suite.config.tenant, 'postgres-pitr']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const last = run.stdout.trim().split('\n').pop()!;
    expect(last).toMatch(/^postgres-pitr-\S+: ok, \d+ bytes$/);
    baseBackup = last.split(':')[0];
    const manifest = await agentManifest(agent(), 'postgres-pitr', baseBackup);
    baseEnd = new Date(manifest.details.endTime as string).toISOString();
    target = await writeAroundTime(postgres(), 90 * SECONDS);
  }, 240 * SECONDS);

  test('backups lists the base backup', async () => {
    const json = await tenantry(['backups', suite.config.environment, suite.config.tenant, 'postgres-pitr', '-o', 'json']);
    expect(json).toMatchObject({ code: 0, stderr: '' });
    const report = backupsReportSchema.parse(JSON.parse(json.stdout));
    expect(report.backups.map((b) => [b.job, b.id, b.location, b.status])).toEqual([['postgres-pitr', baseBackup, 'local', 'ok']]);
    const table = await tenantry(['backups', suite.config.environment, suite.config.tenant, 'postgres-pitr']);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain(baseBackup);
  });

  test('status shows the restorable window: from the base backup\'s end to the archive\'s end, T inside', async () => {
    const json = await tenantry(['status', '--env', suite.config.environment, '-o', 'json']);
    const report = statusReportSchema.parse(JSON.parse(json.stdout));
    const pitr = report.tenants[0].backups.find((b) => b.job === 'postgres-pitr')!;
    expect(pitr.restorableWindow?.from).toBe(baseEnd);
    expect(Date.parse(pitr.restorableWindow!.to)).toBeGreaterThan(Date.parse(target));
    const table = await tenantry(['status', '--env', suite.config.environment]);
    expect(table.stdout).toContain(`${baseEnd.slice(0, 16).replace('T', ' ')} ..`);
  });

  test('restore --to-time T --yes: prepared in the agent, Postgres restarted and healthy, exactly the rows before T', async () => {
    const run = await tenantry(['restore', suite.config.environment, suite.config.tenant, 'postgres-pitr', '--to-time', target, '--yes']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`Restore ${suite.config.environment}/${suite.config.tenant} Postgres to time ${target} (job postgres-pitr; restorable window: `);
    const restoreId = /\nPrepared restore (\d{8}T\d{6}Z) \(time /.exec(run.stdout)![1];
    expect(run.stdout).toContain(`Restarting ${name('postgres')} so its start wrapper applies it`);
    // The CLI restarted the server itself and confirmed the wrapper applied this restore: no instruction to restart is left over.
    expect(run.stdout).not.toContain('restart the Postgres container');
    expect(run.stdout).toMatch(new RegExp(`\\nRestored: ${suite.config.environment}/${suite.config.tenant} Postgres to time ${target}: LSN .*; ${name('postgres')} runs on it \\(restore ${restoreId}\\)\\n`));
    expect(run.stdout).toContain(`\nKept:     the data directory it replaced, as pgdata.before-restore-${restoreId}`);
    expect((await postgres().inspect()).State.Health?.Status).toBe('healthy');
    const rows = await sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM events");
    expect(rows.split(',')).toEqual(Array.from({ length: 40 }, (_, i) => String(i + 1)));
    const volume = stdoutOf(await execIn(postgres(), ['ls', '/var/lib/postgresql/data'], { user: 'postgres' }), 'ls data volume').split('\n').filter(Boolean).sort();
    expect(volume).toEqual(['pgdata', `pgdata.before-restore-${restoreId}`, 'restores-applied'].sort());
  }, 300 * SECONDS);
});

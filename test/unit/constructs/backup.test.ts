import { Construct } from 'constructs';
import type { BackupJobConfig } from '../../../config/model';
import { Backup, BackupProps } from '../../../constructs/backup';
import { PostgresServer } from '../../../constructs/postgres';
import { RedisSentinel } from '../../../constructs/redis-sentinel';
import { unescapeTerraformTemplate } from '../../../constructs/terraform-text';
import { agentConfigSchema, CONFIG_JSON_ENV } from '../../../runtime/agent/config';
import { CONFIG_DEFAULTS, container, envOf, labels, NETWORK, RANDOM_PASSWORD_REF, STORAGE, synth, volumes, onHost } from './support';

const JOB: BackupJobConfig = { schedule: '0 2 * * *', verifySchedule: '0 4 * * 0', retention: { daily: 7, weekly: 4, monthly: 6 }, offsite: false };

type Extra = Partial<Omit<BackupProps, 'postgres' | 'redis'>>;

/** A backup agent for a tenant with Postgres and Redis, built from the real service constructs. */
function backup(extra: Extra = {}) {
  const out = synth((scope: Construct) => {
    const common = { environment: 'dev', tenant: 'acme', network: NETWORK, storage: STORAGE.volume };
    const postgres = new PostgresServer(scope, 'postgres', { ...common, image: 'postgres:16-alpine', databases: ['app'], memoryMb: 512, ...CONFIG_DEFAULTS.postgres });
    const redis = new RedisSentinel(scope, 'redis', { ...common, ...CONFIG_DEFAULTS.redis, image: 'redis:7.4.2-alpine', replicas: 1 });
    new Backup(scope, 'backup', {
      ...common,
      image: 'tenantry/backup-agent:0.1.0',
      timeZone: 'Europe/Berlin',
      jobs: { postgres: JOB, redis: { ...JOB, schedule: '15 * * * *' } },
      postgres: postgres.endpoint,
      redis,
      ...extra,
    });
  });
  const agent = container(out.doc, 'dev-acme-backup');
  const configText = unescapeTerraformTemplate(envOf(agent)[CONFIG_JSON_ENV]);
  return { ...out, agent, configText, config: JSON.parse(configText) as Record<string, unknown> & { jobs: Record<string, unknown>[] } };
}

describe('Backup', () => {
  test('the agent container: command, config in its environment (no upload: its root is read-only), healthcheck, memory, labels', () => {
    const { agent } = backup();

    expect(agent.command).toEqual(['serve']);
    expect(agent.upload).toEqual([]);
    expect(agent.read_only).toBe(true);
    expect(Object.keys(envOf(agent))).toContain(CONFIG_JSON_ENV);
    expect(agent.healthcheck?.test).toEqual(['CMD-SHELL', 'tenantry-agent health']);
    expect(agent.memory).toBe(256);
    expect(agent.labels).toEqual(labels('dev', 'acme', 'backup'));
    expect(agent.restart).toBe('unless-stopped');
  });

  test('backups live on their own stateful volume at /backups', () => {
    const { agent, doc } = backup();
    expect(volumes(doc).map((v) => v.name)).toContain('dev-acme-backup-backups');
    expect(agent.volumes).toEqual([{ container_path: '/backups', volume_name: expect.stringMatching(/^\$\{docker_volume\./) }]);
  });

  test('the config is valid for the agent, one job per service, secrets named by env var only', () => {
    const { config, configText } = backup();

    expect(agentConfigSchema.safeParse(config).success).toBe(true);
    expect(config).toMatchObject({ tenant: 'acme', environment: 'dev', timeZone: 'Europe/Berlin', backupDir: '/backups', http: { port: 9187 } });
    expect(config.jobs).toEqual([
      expect.objectContaining({
        name: 'postgres',
        kind: 'postgres',
        schedule: '0 2 * * *',
        verifySchedule: '0 4 * * 0',
        retention: { daily: 7, weekly: 4, monthly: 6 },
        offsite: false,
        postgres: {
          host: 'dev-acme-postgres',
          port: 5432,
          user: 'acme_backup',
          passwordEnv: 'PG_PASSWORD',
          databases: ['app'],
          parallelJobs: 2,
          splitTablesLargerThanMb: 256,
          restoreCredential: { userEnv: 'TENANTRY_RESTORE_PGUSER', passwordEnv: 'TENANTRY_RESTORE_PGPASSWORD' },
        },
      }),
      expect.objectContaining({
        name: 'redis',
        kind: 'redis',
        schedule: '15 * * * *',
        redis: {
          sentinels: ['dev-acme-sentinel-1:26379', 'dev-acme-sentinel-2:26379', 'dev-acme-sentinel-3:26379'],
          masterName: 'acme',
          passwordEnv: 'REDIS_PASSWORD',
          sentinelPasswordEnv: 'SENTINEL_PASSWORD',
        },
      }),
    ]);
    expect(configText).not.toContain('${');
    expect(config).not.toHaveProperty('offsite');
  });

  test("the container's config is byte for byte what the agent's schema makes of it (its key order, nothing left to its defaults)", () => {
    const offsite = { bucket: 'example-backups', prefix: 'acme', region: 'eu-central-1', accessKeyId: 'AKIA-REF', secretAccessKey: 'SECRET-REF' };
    for (const { configText } of [backup(), backup({ jobs: { postgres: { ...JOB, offsite: true } }, offsite, postgresRestoreSource: 'ask the operators' })]) {
      expect(configText).toBe(JSON.stringify(agentConfigSchema.parse(JSON.parse(configText))));
    }
  });

  test("the secrets arrive as env references to the services' own passwords", () => {
    const { agent, doc } = backup();
    const { [CONFIG_JSON_ENV]: _config, ...env } = envOf(agent);

    expect(Object.keys(env).sort()).toEqual(['PG_PASSWORD', 'REDIS_PASSWORD', 'SENTINEL_PASSWORD']);
    for (const value of Object.values(env)) expect(value).toMatch(RANDOM_PASSWORD_REF);
    // The backup role's password, never the superuser's: no container but Postgres holds that.
    const server = envOf(container(doc, 'dev-acme-postgres'));
    expect(env.PG_PASSWORD).toBe(server.TENANTRY_BACKUP_PASSWORD);
    expect(Object.values(env)).not.toContain(server.POSTGRES_PASSWORD);
    expect(env.REDIS_PASSWORD).toBe(envOf(container(doc, 'dev-acme-redis-0')).REDIS_PASSWORD);
    expect(env.SENTINEL_PASSWORD).toBe(envOf(container(doc, 'dev-acme-sentinel-1')).SENTINEL_PASSWORD);
  });

  test('off-site: the target in the config, the key pair only in env', () => {
    const { agent, config } = backup({
      jobs: { postgres: { ...JOB, offsite: true } },
      offsite: { bucket: 'example-backups', prefix: 'acme', region: 'eu-central-1', accessKeyId: 'AKIA-REF', secretAccessKey: '${aws_iam_access_key.k.secret}' },
    });

    expect(config.offsite).toEqual({
      bucket: 'example-backups',
      prefix: 'acme',
      region: 'eu-central-1',
      forcePathStyle: false,
      accessKeyIdEnv: 'OFFSITE_ACCESS_KEY_ID',
      secretAccessKeyEnv: 'OFFSITE_SECRET_ACCESS_KEY',
      retry: { attempts: 5, baseDelayMs: 1000 },
    });
    expect(envOf(agent)).toMatchObject({ OFFSITE_ACCESS_KEY_ID: 'AKIA-REF', OFFSITE_SECRET_ACCESS_KEY: '${aws_iam_access_key.k.secret}' });
  });

  test('publishes the metrics port only when given', () => {
    expect(backup().agent.ports).toBeUndefined();
    expect(backup({ publishedPort: onHost(20006) }).agent.ports).toEqual([{ internal: 9187, external: 20006, ip: '127.0.0.1' }]);
  });

  test('a config the agent would reject fails at synth, naming the tenant and the problem', () => {
    expect(() => backup({ jobs: { postgres: { ...JOB, offsite: true } } })).toThrow(
      'backup for tenant "acme": the agent would reject its config: jobs.0.offsite: is true but the file has no top-level "offsite" section',
    );
    expect(() => backup({ timeZone: 'Mars/Olympus' })).toThrow(/backup for tenant "acme": the agent would reject its config: timeZone: is not an IANA time zone/);
  });
});

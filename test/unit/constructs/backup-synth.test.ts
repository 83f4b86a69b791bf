import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Testing } from 'cdktf';
import { loadConfig } from '../../../config/load';
import { AgentConfig, agentConfigSchema, MINIO_RESTORE_CREDENTIAL_ENV, RESTORE_CREDENTIAL_ENV } from '../../../runtime/agent/config';
import { EnvironmentStack } from '../../../stacks/environment-stack';
import { agentConfigOf, ContainerJson } from './support';
import { BACKUP_IMAGE_BUILD } from '../synth/support';

type Resource = Record<string, unknown>;
type StackJson = { provider?: Record<string, unknown>; resource: Record<string, Record<string, Resource>> };

const ENV = (offsite: string) => `
name: prod
production: true
docker: { host: "ssh://deploy@host" }
network: { name: tenantry-prod, subnet: 172.31.0.0/16 }
storage: { kind: nfs, server: nfs.example.com, export: /exports/prod }
backend: { kind: s3, bucket: state-bucket, region: eu-central-1 }
aws: { region: eu-central-1 }
backup:
  offsite: ${offsite}
`;
const TENANT = (name: string) => `
name: ${name}
environments: [prod]
services:
  postgres: { databases: [app, reports] }
  redis: {}
  qdrant: {}
  minio: { buckets: [{ name: images, versioned: true }] }
`;

/** Loads a config written to a temp dir (the real loader) and synthesizes its one environment. */
function synthesize(offsite: string, tenants: string[]): StackJson {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tenantry-backup-'));
  fs.mkdirSync(path.join(root, 'environments'));
  fs.mkdirSync(path.join(root, 'tenants'));
  fs.writeFileSync(path.join(root, 'environments', 'prod.yaml'), ENV(offsite));
  for (const t of tenants) fs.writeFileSync(path.join(root, 'tenants', `${t}.yaml`), TENANT(t));
  const result = loadConfig(root);
  if (!result.ok) throw new Error(result.problems.map((p) => p.message).join('\n'));
  const app = Testing.app() as App;
  const stack = new EnvironmentStack(app, 'prod', {
    environment: result.config.environments[0],
    backupImageBuild: BACKUP_IMAGE_BUILD,
  });
  return JSON.parse(Testing.synth(stack, true)) as StackJson;
}

const byType = (json: StackJson, type: string) => Object.entries(json.resource[type] ?? {});
const container = (json: StackJson, name: string) => byType(json, 'docker_container').find(([, c]) => c.name === name)![1];
const agentConfig = (c: Resource) => agentConfigOf<AgentConfig>(c as unknown as ContainerJson)!;

describe('Backup construct in an environment stack', () => {
  const perTenant = synthesize('{ mode: per-tenant, bucket: acme-corp-backups }', ['acme', 'beta']);

  it('runs one agent container per tenant with its config in its environment and the healthcheck calling the agent', () => {
    const agent = container(perTenant, 'prod-acme-backup');
    expect(agent.command).toEqual(['serve']);
    expect((agent.healthcheck as Resource).test).toEqual(['CMD-SHELL', 'tenantry-agent health']);
    expect(agent.labels).toEqual(
      expect.arrayContaining([
        { label: 'tenantry.env', value: 'prod' },
        { label: 'tenantry.tenant', value: 'acme' },
        { label: 'tenantry.service', value: 'backup' },
      ]),
    );
    expect(byType(perTenant, 'docker_container').filter(([, c]) => String(c.name).endsWith('-backup'))).toHaveLength(2);
  });

  it('hands over a config the agent itself accepts, with a job per stateful service and no secret in it', () => {
    const config = agentConfig(container(perTenant, 'prod-acme-backup'));
    expect(agentConfigSchema.safeParse(config).success).toBe(true);
    expect(config.jobs.map((j: { kind: string }) => j.kind)).toEqual(['postgres', 'postgres-pitr', 'redis', 'qdrant', 'minio']);
    const [postgres, pitr, redis] = config.jobs;
    expect(postgres.kind === 'postgres' && postgres.postgres).toMatchObject({ host: 'prod-acme-postgres', databases: ['app', 'reports'], passwordEnv: 'PG_PASSWORD' });
    expect(pitr.kind === 'postgres-pitr' && pitr.pitr).toMatchObject({ host: 'prod-acme-postgres', user: 'acme_replication', passwordEnv: 'PG_REPLICATION_PASSWORD', slot: 'tenantry_acme', databases: ['app', 'reports'] });
    expect(redis.kind === 'redis' && redis.redis.sentinels).toEqual(['prod-acme-sentinel-1:26379', 'prod-acme-sentinel-2:26379', 'prod-acme-sentinel-3:26379']);
    expect(config.offsite).toMatchObject({ bucket: 'acme-corp-backups-prod-acme', prefix: 'prod/acme', region: 'eu-central-1' });
    expect(JSON.stringify(config)).not.toMatch(/random_password|aws_iam_access_key/);
  });

  it('passes every secret the config names as an env var holding a Terraform reference', () => {
    const agent = container(perTenant, 'prod-acme-backup');
    const config = agentConfig(agent);
    const env = Object.fromEntries((agent.env as string[]).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
    const all = JSON.stringify(config).match(/"[a-zA-Z]+Env":"[A-Z_]+"/g)!.map((m) => m.split(':')[1].replace(/"/g, ''));
    // The MinIO restore's credential (root) is passed by the operator for one restore, never held by the container.
    const restoreOnly: string[] = Object.values(MINIO_RESTORE_CREDENTIAL_ENV);
    for (const variable of restoreOnly) expect(env).not.toHaveProperty(variable);
    const named = all.filter((v) => !restoreOnly.includes(v));
    expect(named.length).toBeGreaterThanOrEqual(7);
    // MinIO's access key is the agent's own (read-only) user name, not a secret; every other named variable is one.
    expect(env.MINIO_ACCESS_KEY).toBe('acme-backup');
    // The Postgres restore credential is named too, but an operator passes it for one command: the container never has it.
    const restore = Object.values(RESTORE_CREDENTIAL_ENV) as string[];
    for (const variable of restore) expect(env).not.toHaveProperty(variable);
    for (const variable of named.filter((v) => v !== 'MINIO_ACCESS_KEY' && !restore.includes(v))) {
      expect(env[variable]).toMatch(/^\$\{(random_password|aws_iam_access_key)\.[^}]+\}$/);
    }
  });

  it('keeps backups on the environment storage (NFS) under the tenant', () => {
    const [, volume] = byType(perTenant, 'docker_volume').find(([, v]) => v.name === 'prod-acme-backup-backups')!;
    expect(volume.driver_opts).toEqual({ type: 'nfs', o: 'addr=nfs.example.com,nfsvers=4.1,hard,timeo=600,retrans=2', device: ':/exports/prod/acme/backup/backups' });
  });

  it('gives each tenant its own bucket and a credential scoped to it', () => {
    const buckets = byType(perTenant, 'aws_s3_bucket').map(([, b]) => b.bucket).sort();
    expect(buckets).toEqual(['acme-corp-backups-prod-acme', 'acme-corp-backups-prod-beta']);
    const policies = byType(perTenant, 'aws_iam_user_policy').map(([, p]) => String(p.policy));
    expect(policies.find((p) => p.includes('acme_offsite_bucket'))).toContain('/acme/*');
  });

  it('builds the agent image from the context synth writes when the environment names none', () => {
    expect(byType(perTenant, 'docker_image').find(([, i]) => String(i.name).startsWith(`tenantry/backup-agent:${BACKUP_IMAGE_BUILD.version}-`))![1].build).toMatchObject({
      context: '../../backup-agent-context',
      dockerfile: 'runtime/agent/Dockerfile',
    });
  });

  it('in shared mode, creates one bucket for the environment and a prefix-scoped credential per tenant', () => {
    const shared = synthesize('{ mode: shared, bucket: all-tenants-backups }', ['acme', 'beta']);
    expect(byType(shared, 'aws_s3_bucket').map(([, b]) => b.bucket)).toEqual(['all-tenants-backups']);
    expect(byType(shared, 'aws_iam_user')).toHaveLength(2);
    const statements = byType(shared, 'aws_iam_user_policy').map(([, p]) => JSON.parse(String(p.policy)).Statement[1].Resource);
    const [[bucketId]] = byType(shared, 'aws_s3_bucket');
    expect(statements.sort()).toEqual([`\${aws_s3_bucket.${bucketId}.arn}/prod/acme/*`, `\${aws_s3_bucket.${bucketId}.arn}/prod/beta/*`]);
    expect(agentConfig(container(shared, 'prod-beta-backup')).offsite).toMatchObject({ bucket: 'all-tenants-backups', prefix: 'prod/beta' });
  });

  it('adding a tenant changes no resource of an existing tenant', () => {
    const before = synthesize('{ mode: per-tenant, bucket: acme-corp-backups }', ['acme']);
    const after = synthesize('{ mode: per-tenant, bucket: acme-corp-backups }', ['acme', 'zeta']);
    for (const [type, items] of Object.entries(before.resource)) {
      for (const [id, body] of Object.entries(items)) expect(after.resource[type][id]).toEqual(body);
    }
  });
});

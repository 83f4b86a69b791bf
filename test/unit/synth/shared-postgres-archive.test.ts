import { AgentConfig } from '../../../runtime/agent/config';
import { PITR_HBA_FILE } from '../../../runtime/render/postgres';
import { BACKUP_MOUNT, RESTORE_ON_START_SCRIPT } from '../../../runtime/render/postgres-restore-on-start';
import { agentConfigOf, container, envOf, RANDOM_PASSWORD_REF, resourcesOf, SynthDoc, upload, VolumeJson } from '../constructs/support';
import { containers, errorAnnotations, invariantViolations, loadOrThrow, ownedResources, synthEnvironment, writeConfig } from './support';

const LOCAL = 'unix:///var/run/docker.sock';

function dev(extra: Record<string, unknown> = {}) {
  return { name: 'dev', docker: { host: LOCAL }, network: { name: 'tenantry-dev', subnet: '172.30.0.0/16' }, storage: { kind: 'volume' }, sharedPostgres: {}, ...extra };
}

const sharedTenant = (name: string) => ({ name, environments: ['dev'], services: { postgres: { mode: 'shared', databases: [`${name}_app`] }, pgbouncer: { enabled: false } } });

/** The docker_volume a mount's `${docker_volume.<id>.name}` reference names. */
function volumeNamed(doc: SynthDoc, reference: string | undefined): string | undefined {
  const id = /^\$\{docker_volume\.([^.]+)\.name\}$/.exec(reference ?? '')?.[1];
  return id === undefined ? undefined : resourcesOf<VolumeJson>(doc, 'docker_volume')[id]?.name;
}

function synthDev(files: Record<string, unknown>) {
  const [s] = loadOrThrow(writeConfig(files)).environments.map(synthEnvironment);
  return s;
}

describe("the shared Postgres server's archive: the environment's own agent, never a tenant's", () => {
  test('GIVEN a shared server with PITR on by default THEN dev-shared-backup streams its WAL with the server\'s own replication role', () => {
    const s = synthDev({ 'environments/dev.yaml': dev(), 'tenants/acme.yaml': sharedTenant('acme') });

    expect(invariantViolations([s])).toEqual([]);
    expect(errorAnnotations(s.stack)).toEqual([]);
    const archive = container(s.doc, 'dev-shared-backup');
    const config = agentConfigOf<AgentConfig>(archive)!;
    expect(config.tenant).toBe('shared');
    expect(config.jobs).toEqual([
      expect.objectContaining({
        name: 'postgres-pitr',
        kind: 'postgres-pitr',
        offsite: true,
        pitr: expect.objectContaining({ host: 'dev-shared-postgres', port: 5432, user: 'shared_replication', slot: 'tenantry_shared', databases: ['postgres'], maxSlotWalKeepMb: 10240 }),
      }),
    ]);
    expect(envOf(archive).PG_REPLICATION_PASSWORD).toMatch(RANDOM_PASSWORD_REF);
    expect(archive.volumes?.map((v) => [volumeNamed(s.doc, v.volume_name), v.container_path])).toEqual([['dev-shared-backup-backups', '/backups']]);

    // The tenant's own agent dumps its databases logically and streams nothing.
    const tenantJobs = agentConfigOf<AgentConfig>(container(s.doc, 'dev-acme-backup'))!.jobs.map((j) => j.kind);
    expect(tenantJobs).toEqual(['postgres']);
    expect(Object.values(envOf(container(s.doc, 'dev-acme-backup')))).not.toContain(envOf(archive).PG_REPLICATION_PASSWORD);
  });

  test('THEN the server has the dedicated server\'s streaming parameters, pg_hba.conf and restore on start, the archive mounted read-only', () => {
    const s = synthDev({ 'environments/dev.yaml': dev({ sharedPostgres: { parameters: { max_connections: 300 } } }), 'tenants/acme.yaml': sharedTenant('acme') });
    const server = container(s.doc, 'dev-shared-postgres');

    expect(server.command).toEqual([
      'postgres', '-c', `hba_file=${PITR_HBA_FILE}`, '-c', 'max_connections=300', '-c', 'max_replication_slots=10', '-c', 'max_slot_wal_keep_size=10240MB',
      '-c', 'max_wal_senders=10', '-c', 'wal_keep_size=0', '-c', 'wal_level=replica',
    ]);
    expect(server.entrypoint).toEqual(['/bin/sh', RESTORE_ON_START_SCRIPT, 'docker-entrypoint.sh']);
    expect(upload(server, PITR_HBA_FILE).content).toContain('host    replication  shared_replication  all  scram-sha-256');
    const mounted = server.volumes?.find((v) => v.container_path === BACKUP_MOUNT);
    expect([volumeNamed(s.doc, mounted?.volume_name), mounted?.read_only]).toEqual(['dev-shared-backup-backups', true]);
    // Only the server and its one-shot provisioning hold the replication password besides the archive.
    const provision = container(s.doc, 'dev-shared-postgres-provision');
    expect([provision.restart, provision.must_run]).toEqual(['no', false]);
    expect(envOf(provision).TENANTRY_REPLICATION_PASSWORD).toBe(envOf(container(s.doc, 'dev-shared-backup')).PG_REPLICATION_PASSWORD);
    expect(upload(provision, '/tenantry/replication-role.sh').content).toContain("\\set replication_role 'shared_replication'");
  });

  test('adding a tenant to the shared server changes neither the server, its provisioning nor its archive', () => {
    const one = synthDev({ 'environments/dev.yaml': dev(), 'tenants/acme.yaml': sharedTenant('acme') });
    const two = synthDev({ 'environments/dev.yaml': dev(), 'tenants/acme.yaml': sharedTenant('acme'), 'tenants/beta.yaml': sharedTenant('beta') });

    for (const name of ['dev-shared-backup', 'dev-shared-postgres', 'dev-shared-postgres-provision']) {
      expect(container(two.doc, name)).toEqual(container(one.doc, name));
    }
  });

  test('backup.defaults.postgres.pitr.enabled: false in the environment: no archive, the server as before PITR', () => {
    const s = synthDev({ 'environments/dev.yaml': dev({ backup: { defaults: { postgres: { pitr: { enabled: false } } } } }), 'tenants/acme.yaml': sharedTenant('acme') });

    expect(containers(s.doc).map((c) => c.name)).not.toContain('dev-shared-backup');
    expect(containers(s.doc).map((c) => c.name)).not.toContain('dev-shared-postgres-provision');
    expect(container(s.doc, 'dev-shared-postgres').command).toEqual(['postgres']);
  });
});

interface Policy {
  Statement: { Sid: string; Resource: string; Condition?: { StringLike: Record<string, string[]> } }[];
}

/** The aws_iam_user named `name`, its policy and its access key, by logical ID. */
function credential(doc: SynthDoc, name: string) {
  const [userId, user] = Object.entries(resourcesOf<{ name: string; tags: Record<string, string> }>(doc, 'aws_iam_user')).find(([, u]) => u.name === name)!;
  const policy = Object.values(resourcesOf<{ user: string; policy: string }>(doc, 'aws_iam_user_policy')).find((p) => p.user === `\${aws_iam_user.${userId}.name}`)!;
  const keyId = Object.entries(resourcesOf<{ user: string }>(doc, 'aws_iam_access_key')).find(([, k]) => k.user === `\${aws_iam_user.${userId}.name}`)![0];
  return { user, policy: JSON.parse(policy.policy) as Policy, keyId };
}

describe("the shared server's archive off-site: a place of its own, as a tenant named shared would get", () => {
  test('per-tenant buckets (the default): its own bucket <bucket>-<env>-shared, tagged, a credential reaching dev/shared/ only, handed to the agent', () => {
    const s = synthDev({ 'environments/dev.yaml': dev({ backup: { offsite: { bucket: 'acme-corp' } } }), 'tenants/acme.yaml': sharedTenant('acme') });

    expect(invariantViolations([s])).toEqual([]);
    expect(errorAnnotations(s.stack)).toEqual([]);
    const buckets = Object.values(resourcesOf<{ bucket: string; tags: Record<string, string> }>(s.doc, 'aws_s3_bucket'));
    expect(buckets.find((b) => b.bucket === 'acme-corp-dev-shared')?.tags).toEqual({ 'tenantry:environment': 'dev', 'tenantry:tenant': 'shared', 'managed-by': 'tenantry' });

    const { user, policy, keyId } = credential(s.doc, 'dev-shared-backup');
    expect(user.tags).toEqual({ 'tenantry:environment': 'dev', 'tenantry:tenant': 'shared', 'managed-by': 'tenantry' });
    const [list, objects] = policy.Statement;
    expect(list.Condition!.StringLike['s3:prefix']).toEqual(['dev/shared/', 'dev/shared/*']);
    expect(objects.Resource).toMatch(/^\$\{aws_s3_bucket\.shared_offsite_[^.]+\.arn\}\/dev\/shared\/\*$/);

    const archive = container(s.doc, 'dev-shared-backup');
    expect(agentConfigOf<AgentConfig>(archive)!.offsite).toMatchObject({ bucket: 'acme-corp-dev-shared', prefix: 'dev/shared', accessKeyIdEnv: 'OFFSITE_ACCESS_KEY_ID', secretAccessKeyEnv: 'OFFSITE_SECRET_ACCESS_KEY' });
    expect(envOf(archive).OFFSITE_ACCESS_KEY_ID).toBe(`\${aws_iam_access_key.${keyId}.id}`);
    expect(envOf(archive).OFFSITE_SECRET_ACCESS_KEY).toBe(`\${aws_iam_access_key.${keyId}.secret}`);
    // The tenant's own agent holds its own key, not the archive's.
    expect(envOf(container(s.doc, 'dev-acme-backup')).OFFSITE_ACCESS_KEY_ID).not.toBe(envOf(archive).OFFSITE_ACCESS_KEY_ID);
  });

  test("shared mode: the environment's bucket, declared even when no tenant's job copies off-site, because the archive does", () => {
    const tenant = { ...sharedTenant('acme'), backup: { postgres: { offsite: false } } };
    const s = synthDev({ 'environments/dev.yaml': dev({ backup: { offsite: { mode: 'shared', bucket: 'acme-corp-backups' } } }), 'tenants/acme.yaml': tenant });

    expect(Object.values(resourcesOf<{ bucket: string }>(s.doc, 'aws_s3_bucket')).map((b) => b.bucket)).toEqual(['acme-corp-backups']);
    expect(Object.values(resourcesOf<{ name: string }>(s.doc, 'aws_iam_user')).map((u) => u.name)).toEqual(['dev-shared-backup']);
    const [, objects] = credential(s.doc, 'dev-shared-backup').policy.Statement;
    expect(objects.Resource).toMatch(/^\$\{aws_s3_bucket\.offsite_[^.]+\.arn\}\/dev\/shared\/\*$/);
    expect(agentConfigOf<AgentConfig>(container(s.doc, 'dev-shared-backup'))!.offsite).toMatchObject({ bucket: 'acme-corp-backups', prefix: 'dev/shared' });
  });

  test("the AWS provider comes with the archive's copies even when no tenant copies off-site", () => {
    const tenant = { ...sharedTenant('acme'), backup: { postgres: { offsite: false } } };
    const s = synthDev({ 'environments/dev.yaml': dev({ aws: { region: 'eu-west-1' } }), 'tenants/acme.yaml': tenant });

    expect(loadOrThrow(writeConfig({ 'environments/dev.yaml': dev(), 'tenants/acme.yaml': tenant })).environments[0].tenants[0].offsite).toBeUndefined();
    expect((JSON.parse(s.json) as { provider: Record<string, { region: string }[]> }).provider.aws).toEqual([{ region: 'eu-west-1' }]);
  });

  test('adding a tenant changes none of its bucket, credential, policy or key', () => {
    const one = synthDev({ 'environments/dev.yaml': dev(), 'tenants/acme.yaml': sharedTenant('acme') });
    const two = synthDev({ 'environments/dev.yaml': dev(), 'tenants/acme.yaml': sharedTenant('acme'), 'tenants/beta.yaml': sharedTenant('beta') });

    const archiveOf = (s: typeof one) => ownedResources(s.stack.node.findChild('shared'), s);
    expect([...archiveOf(one).keys()].map((k) => k.split('.')[0]).sort()).toEqual([
      'aws_iam_access_key', 'aws_iam_user', 'aws_iam_user_policy', 'aws_s3_bucket', 'aws_s3_bucket_lifecycle_configuration', 'aws_s3_bucket_policy',
      'aws_s3_bucket_public_access_block', 'aws_s3_bucket_server_side_encryption_configuration', 'aws_s3_bucket_versioning',
    ]);
    expect(archiveOf(two)).toEqual(archiveOf(one));
    expect(container(two.doc, 'dev-shared-backup')).toEqual(container(one.doc, 'dev-shared-backup'));
  });

  test('backup.defaults.postgres.offsite: false: no bucket, no credential, no AWS provider, the job stays local', () => {
    const s = synthDev({ 'environments/dev.yaml': dev({ backup: { defaults: { postgres: { offsite: false } } } }), 'tenants/acme.yaml': sharedTenant('acme') });

    const config = agentConfigOf<AgentConfig>(container(s.doc, 'dev-shared-backup'))!;
    expect(config.offsite).toBeUndefined();
    expect(config.jobs.map((j) => [j.name, j.offsite])).toEqual([['postgres-pitr', false]]);
    expect(envOf(container(s.doc, 'dev-shared-backup')).OFFSITE_ACCESS_KEY_ID).toBeUndefined();
    expect(Object.keys((JSON.parse(s.json) as { provider: Record<string, unknown> }).provider)).toEqual(['docker', 'random']);
    expect(Object.keys(s.doc.resource ?? {}).filter((type) => type.startsWith('aws_'))).toEqual([]);
    expect(s.stack.node.tryFindChild('shared')).toBeUndefined();
  });
});

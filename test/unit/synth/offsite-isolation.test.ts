import { loadConfig } from '../../../config/load';
import { resourcesOf } from '../constructs/support';
import { agentConfigOf, container } from '../constructs/support';
import { loadOrThrow, synthEnvironment, writeConfig } from './support';

/*
 * Off-site isolation from YAML to JSON: environments sharing a bucket each reach only
 * `<env>/<tenant>/`, and exactly one stack declares the bucket.
 */

const LOCAL = 'unix:///var/run/docker.sock';
const postgresOnly = { postgres: { databases: ['app'] }, pgbouncer: { enabled: false } };

function environment(name: string, subnet: string, offsite: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { name, docker: { host: LOCAL }, network: { name: `tenantry-${name}`, subnet }, storage: { kind: 'volume' }, aws: { region: 'eu-central-1' }, backup: { offsite }, ...extra };
}

const shared = { mode: 'shared', bucket: 'acme-corp-backups' };
const tenants = {
  'tenants/acme.yaml': { name: 'acme', environments: ['prod', 'staging'], services: postgresOnly },
  'tenants/beta.yaml': { name: 'beta', environments: ['staging'], services: postgresOnly },
};

interface Policy {
  Statement: { Sid: string; Resource: string; Condition?: { StringLike: Record<string, string[]> } }[];
}

function synthesize(files: Record<string, unknown>) {
  return new Map(loadOrThrow(writeConfig(files)).environments.map((env) => [env.name, synthEnvironment(env)]));
}

describe('a shared bucket used by two environments', () => {
  test('without managedBy: an error at the second bucket line, naming the first', () => {
    const result = loadConfig(writeConfig({
      'environments/prod.yaml': environment('prod', '172.31.0.0/16', shared),
      'environments/staging.yaml': environment('staging', '172.30.0.0/16', shared),
      ...tenants,
    }));
    expect(result.ok).toBe(false);
    const lines = result.ok ? [] : result.problems.map((p) => `${p.file.replace(/^.*\//, '')}:${p.line}:${p.col}: ${p.message}`);
    expect(lines).toEqual([
      expect.stringMatching(/^staging\.yaml:\d+:\d+: backup\.offsite\.bucket: "acme-corp-backups" is also declared by environment "prod" \(.*environments\/prod\.yaml:\d+:\d+\), and a bucket must belong to one stack: add "managedBy: prod"/),
    ]);
  });

  test('with managedBy: one aws_s3_bucket across both stacks, each credential and agent under <env>/<tenant>', () => {
    const stacks = synthesize({
      'environments/prod.yaml': environment('prod', '172.31.0.0/16', shared),
      'environments/staging.yaml': environment('staging', '172.30.0.0/16', { ...shared, managedBy: 'prod' }),
      ...tenants,
    });
    const prod = stacks.get('prod')!.doc;
    const staging = stacks.get('staging')!.doc;

    expect(Object.values(resourcesOf<{ bucket: string }>(prod, 'aws_s3_bucket')).map((b) => b.bucket)).toEqual(['acme-corp-backups']);
    expect(resourcesOf(staging, 'aws_s3_bucket')).toEqual({});

    const scopes = [...stacks.values()].flatMap((s) =>
      Object.values(resourcesOf<{ policy: string }>(s.doc, 'aws_iam_user_policy')).map((p) => {
        const [list, objects] = (JSON.parse(p.policy) as Policy).Statement;
        return { list: list.Condition!.StringLike['s3:prefix'], objects: objects.Resource.replace(/^.*(acme-corp-backups|\.arn\})/, '<bucket>') };
      }),
    );
    expect(scopes.sort((a, b) => a.objects.localeCompare(b.objects))).toEqual([
      { list: ['prod/acme/', 'prod/acme/*'], objects: '<bucket>/prod/acme/*' },
      { list: ['staging/acme/', 'staging/acme/*'], objects: '<bucket>/staging/acme/*' },
      { list: ['staging/beta/', 'staging/beta/*'], objects: '<bucket>/staging/beta/*' },
    ]);
    // staging's credential points at the bucket by ARN (no resource of its own to change or destroy it).
    const stagingPolicy = Object.values(resourcesOf<{ policy: string }>(staging, 'aws_iam_user_policy'))[0].policy;
    expect(stagingPolicy).toContain('arn:${data.aws_partition.');
    expect(stagingPolicy).toContain(':s3:::acme-corp-backups/staging/');

    const agentPrefix = (doc: typeof prod, name: string) => {
      return agentConfigOf<{ offsite: { bucket: string; prefix: string } }>(container(doc, name))!.offsite;
    };
    expect(agentPrefix(prod, 'prod-acme-backup')).toMatchObject({ bucket: 'acme-corp-backups', prefix: 'prod/acme', region: 'eu-central-1' });
    expect(agentPrefix(staging, 'staging-acme-backup')).toMatchObject({ bucket: 'acme-corp-backups', prefix: 'staging/acme', region: 'eu-central-1' });
  });

  test('the declaring environment keeps its bucket even when none of its own tenants copies off-site', () => {
    const stacks = synthesize({
      'environments/prod.yaml': environment('prod', '172.31.0.0/16', shared, { backup: { offsite: shared, defaults: { postgres: { offsite: false } } } }),
      'environments/staging.yaml': environment('staging', '172.30.0.0/16', { ...shared, managedBy: 'prod' }),
      ...tenants,
    });
    expect(Object.keys(resourcesOf(stacks.get('prod')!.doc, 'aws_s3_bucket'))).toHaveLength(1);
    expect(Object.keys(resourcesOf(stacks.get('prod')!.doc, 'aws_iam_user'))).toHaveLength(0);
  });
});

test('per-tenant buckets: the prefix names the environment too (one rule for both modes)', () => {
  const stacks = synthesize({ 'environments/prod.yaml': environment('prod', '172.31.0.0/16', { mode: 'per-tenant', bucket: 'acme-corp' }), 'tenants/acme.yaml': { name: 'acme', environments: ['prod'], services: postgresOnly } });
  const doc = stacks.get('prod')!.doc;
  const [policy] = Object.values(resourcesOf<{ policy: string }>(doc, 'aws_iam_user_policy'));
  expect((JSON.parse(policy.policy) as Policy).Statement[1].Resource).toMatch(/\}\/prod\/acme\/\*$/);
  expect(Object.values(resourcesOf<{ bucket: string }>(doc, 'aws_s3_bucket')).map((b) => b.bucket)).toEqual(['acme-corp-prod-acme']);
});

describe("the shared Postgres server's archive and the tenants, in one shared bucket", () => {
  /** S3's StringLike and an ARN's `*`: any characters, `/` included. */
  const glob = (pattern: string) => new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);

  /** What one credential may list and touch, as key patterns in the bucket, from its synthesized policy. */
  function reach(policy: Policy) {
    const [list, objects] = policy.Statement;
    return {
      lists: (prefix: string) => list.Condition!.StringLike['s3:prefix'].some((p) => glob(p).test(prefix)),
      touches: (key: string) => glob(objects.Resource.replace(/^.*?(acme-corp-backups|\.arn\})\//, '')).test(key),
    };
  }

  test("no tenant's credential reaches <env>/shared/, and the archive's credential reaches no tenant's prefix", () => {
    const stacks = synthesize({
      'environments/prod.yaml': environment('prod', '172.31.0.0/16', shared, { sharedPostgres: {} }),
      'environments/staging.yaml': environment('staging', '172.30.0.0/16', { ...shared, managedBy: 'prod' }, { sharedPostgres: {} }),
      'tenants/acme.yaml': { name: 'acme', environments: ['prod', 'staging'], services: { postgres: { mode: 'shared', databases: ['acme_app'] }, pgbouncer: { enabled: false } } },
      'tenants/beta.yaml': { name: 'beta', environments: ['staging'], services: postgresOnly },
      'tenants/shared-data.yaml': { name: 'shared-data', environments: ['prod'], services: postgresOnly },
    });
    const credentials = new Map(
      [...stacks.values()].flatMap((s) => {
        const users = resourcesOf<{ name: string }>(s.doc, 'aws_iam_user');
        return Object.values(resourcesOf<{ user: string; policy: string }>(s.doc, 'aws_iam_user_policy')).map((p) => {
          const user = users[/^\$\{aws_iam_user\.([^.]+)\.name\}$/.exec(p.user)![1]].name;
          return [user, reach(JSON.parse(p.policy) as Policy)] as const;
        });
      }),
    );
    const owners: Record<string, string> = {
      'prod-shared-backup': 'prod/shared',
      'staging-shared-backup': 'staging/shared',
      'prod-acme-backup': 'prod/acme',
      'prod-shared-data-backup': 'prod/shared-data',
      'staging-acme-backup': 'staging/acme',
      'staging-beta-backup': 'staging/beta',
    };
    expect([...credentials.keys()].sort()).toEqual(Object.keys(owners).sort());

    for (const [user, can] of credentials) {
      for (const [other, prefix] of Object.entries(owners)) {
        const own = other === user;
        const key = `${prefix}/postgres-pitr/20261201T030000Z/base.tar.zst`;
        expect({ user, prefix, lists: can.lists(`${prefix}/`), touches: can.touches(key) }).toEqual({ user, prefix, lists: own, touches: own });
      }
    }
  });
});

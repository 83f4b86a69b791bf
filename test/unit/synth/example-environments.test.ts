import type { EnvironmentConfig } from '../../../config/model';
import { container, envOf, resourcesOf, VolumeJson } from '../constructs/support';
import { containerAddress, containers, errorAnnotations, invariantViolations, loadOrThrow, REPO_ROOT, synthEnvironment, SynthesizedEnvironment } from './support';

/*
 * The repository's own example config (environments/dev.yaml, prod.yaml, tenants/*.yaml), through
 * loadConfig and EnvironmentStack exactly as main.ts uses them: one snapshot per environment for
 * the big picture, and the contracts from DESIGN.md checked as invariants on both.
 */

const config = loadOrThrow(REPO_ROOT);
const stacks = new Map<string, SynthesizedEnvironment>(config.environments.map((env) => [env.name, synthEnvironment(env)]));
const stack = (name: string) => stacks.get(name)!;

/** The synthesized JSON with this checkout's absolute path replaced, so the snapshot is the same on every machine. */
function machineIndependent(json: string): string {
  return json.split(REPO_ROOT).join('<root>');
}

test('the example config has the environments dev and prod', () => {
  expect([...stacks.keys()]).toEqual(['dev', 'prod']);
});

describe.each(['dev', 'prod'])('example environment %s', (name) => {
  test('matches its snapshot', () => {
    expect(machineIndependent(stack(name).json)).toMatchSnapshot();
  });

  test('has no policy errors', () => {
    expect(errorAnnotations(stack(name).stack)).toEqual([]);
  });

  test('one container per service of every tenant, named <env>-<tenant>-<service>[-<n>]', () => {
    const names = containers(stack(name).doc).map((c) => c.name).sort();
    const expected = (tenant: string, redisNodes: number, extra: string[]) =>
      [
        ...extra,
        ...Array.from({ length: redisNodes }, (_, i) => `redis-${i}`),
        ...[1, 2, 3].map((i) => `sentinel-${i}`),
        'backup',
        'pgbouncer',
        'postgres',
        'postgres-provision',
      ].map((service) => `${name}-${tenant}-${service}`);
    expect(names).toEqual([...expected('acme', 3, ['minio', 'minio-setup', 'qdrant']), ...expected('globex', 2, [])].sort());
  });
});

describe('invariants over every example stack', () => {
  test('names and host ports unique per Docker host; network, labels, volumes, secrets, outputs as the contracts say', () => {
    expect(invariantViolations([...stacks.values()])).toEqual([]);
  });

  test('the invariant check itself catches a plain-text secret and a duplicate name', () => {
    // GIVEN a copy of the dev stack with one secret replaced by its value and one container renamed
    const dev = stack('dev');
    const doc = JSON.parse(dev.json) as SynthesizedEnvironment['doc'];
    const all = resourcesOf<{ name: string; env?: string[] }>(doc, 'docker_container');
    const [first, second] = Object.values(all);
    first.env = (first.env ?? []).map((e) => (e.startsWith('POSTGRES_PASSWORD=') ? 'POSTGRES_PASSWORD=q8ZtW3nV0pLx7RkA2mYc' : e));
    first.env.push('POSTGRES_PASSWORD=q8ZtW3nV0pLx7RkA2mYc');
    second.name = first.name;
    const tampered = { ...dev, doc, json: JSON.stringify(doc) };

    // THEN the violations name both
    const violations = invariantViolations([tampered]).join('\n');
    expect(violations).toContain(`container name ${first.name} is used twice`);
    expect(violations).toContain('env POSTGRES_PASSWORD is not a secret reference: q8ZtW3nV0pLx7RkA2mYc');
    expect(violations).toContain('random-looking string in the JSON (a secret in plain text?): q8ZtW3nV0pLx7RkA2mYc');
  });

  test('every tenant output is sensitive and references its secrets', () => {
    for (const s of stacks.values()) {
      for (const tenant of s.env.tenants) {
        const output = s.doc.output?.[`tenant_${tenant.name}`];
        expect(output?.sensitive).toBe(true);
        expect(JSON.stringify(output?.value)).toMatch(/\$\{random_password\./);
      }
    }
  });

  test('dev binds every volume under its data root inside the repository (./data/dev)', () => {
    const dev = stack('dev');
    const dataRoot = (dev.env.storage as Extract<EnvironmentConfig['storage'], { kind: 'bind' }>).dataRoot;
    expect(dataRoot).toBe(`${REPO_ROOT}/data/dev`);
    expect(Object.keys(resourcesOf(dev.doc, 'docker_volume'))).toEqual([]);
    const mounts = containers(dev.doc).flatMap((c) => c.volumes ?? []);
    expect(mounts.length).toBeGreaterThan(0);
    for (const m of mounts) expect(m.host_path).toMatch(new RegExp(`^${dataRoot}/(acme|globex)/[a-z0-9-]+/[a-z]+$`));
  });

  test('prod keeps every volume on NFS under its export, at <tenant>/<service>/<purpose>', () => {
    const volumes = Object.values(resourcesOf<VolumeJson>(stack('prod').doc, 'docker_volume'));
    expect(volumes.length).toBeGreaterThan(0);
    for (const v of volumes) {
      const tenant = v.labels.find((l) => l.label === 'tenantry.tenant')!.value;
      const service = v.labels.find((l) => l.label === 'tenantry.service')!.value;
      const purpose = v.name.slice(`prod-${tenant}-${service}-`.length);
      expect(v.driver_opts).toEqual({
        type: 'nfs',
        o: 'addr=nfs-1.internal.example.com,nfsvers=4.1,hard,timeo=600,retrans=2,noresvport',
        device: `:/exports/tenantry/prod/${tenant}/${service}/${purpose}`,
      });
    }
  });

  test('prod publishes no ports; dev publishes from each tenant slot', () => {
    expect(containers(stack('prod').doc).flatMap((c) => c.ports ?? [])).toEqual([]);
    const dev = stack('dev').doc;
    expect(container(dev, 'dev-acme-postgres').ports).toEqual([{ internal: 5432, external: 20000, ip: '127.0.0.1' }]);
    expect(container(dev, 'dev-globex-postgres').ports).toEqual([{ internal: 5432, external: 20020, ip: '127.0.0.1' }]);
  });

  test('prod pulls postgres and redis through the registry mirror, with the overridden image on the containers', () => {
    const images = resourcesOf<{ name: string }>(stack('prod').doc, 'docker_image');
    const idOf = (reference: string) => Object.entries(images).find(([, i]) => i.name === reference)?.[0];
    expect(container(stack('prod').doc, 'prod-acme-postgres').image).toBe(`\${docker_image.${idOf('registry.example.com/mirror/postgres:16.4-alpine')}.image_id}`);
    expect(container(stack('prod').doc, 'prod-globex-redis-0').image).toBe(`\${docker_image.${idOf('registry.example.com/mirror/redis:7.4.2-alpine')}.image_id}`);
  });

  test('prod applies the tenant override (acme postgres 4096 MiB, 2 CPUs, shared_buffers=1GB); dev does not', () => {
    const prod = container(stack('prod').doc, 'prod-acme-postgres');
    const dev = container(stack('dev').doc, 'dev-acme-postgres');
    expect([prod.memory, prod.cpus, prod.command]).toEqual([
      4096,
      '2',
      [
        'postgres',
        ...['-c', 'effective_cache_size=3GB', '-c', 'hba_file=/etc/tenantry/pg_hba.conf', '-c', 'log_min_duration_statement=500', '-c', 'max_connections=200'],
        ...['-c', 'max_replication_slots=10', '-c', 'max_slot_wal_keep_size=10240MB', '-c', 'max_wal_senders=10', '-c', 'shared_buffers=1GB'],
        ...['-c', 'wal_keep_size=0', '-c', 'wal_level=replica'],
      ],
    ]);
    expect([dev.memory, dev.cpus]).toEqual([768, undefined]);
  });

  test('the MinIO setup container of acme runs once, after the MinIO server', () => {
    for (const s of stacks.values()) {
      const setup = container(s.doc, `${s.env.name}-acme-minio-setup`);
      expect([setup.must_run, setup.restart]).toEqual([false, 'no']);
      expect(setup.depends_on).toEqual([containerAddress(s.doc, `${s.env.name}-acme-minio`)]);
    }
  });

  test('prod backup agents copy off-site with an IAM key of their own; dev has no AWS at all', () => {
    const prod = stack('prod');
    const env = envOf(container(prod.doc, 'prod-acme-backup'));
    expect(env.OFFSITE_SECRET_ACCESS_KEY).toMatch(/^\$\{aws_iam_access_key\.[^.]+\.secret\}$/);
    expect(env.OFFSITE_ACCESS_KEY_ID).toMatch(/^\$\{aws_iam_access_key\.[^.]+\.id\}$/);
    expect(Object.keys(resourcesOf(prod.doc, 'aws_s3_bucket'))).toHaveLength(2);
    expect(stack('dev').json).not.toMatch(/"aws_|"aws"/);
  });
});

// BUG (constructs/tenant.ts vs config/ports.ts): Tenant builds a PgBouncer for every tenant with
// Postgres unless `pgbouncer.enabled: false` (`s.pgbouncer ?? { enabled: true }`), but portLayout
// gives the pgbouncer slot offset a port only when the tenant file has a pgbouncer section
// (`services.pgbouncer?.enabled`). globex has no pgbouncer section, so dev-globex-pgbouncer runs
// but is not reachable from the host, although dev publishes every other service and globex's
// connection output points applications at PgBouncer. Fix: one default in both places, e.g. in
// portLayout `if (services.postgres?.enabled && services.pgbouncer?.enabled !== false)`.
test('in an environment that publishes ports, every long-running container of a tenant with a portSlot publishes one', () => {
  const dev = stack('dev');
  const unpublished = containers(dev.doc)
    .filter((c) => c.restart !== 'no' && (c.ports ?? []).length === 0)
    .map((c) => c.name);
  expect(unpublished).toEqual([]);
});

import { Container } from '@cdktf/provider-docker/lib/container';
import { Password } from '@cdktf/provider-random/lib/password';
import { Construct } from 'constructs';
import { tenantRoles } from '../../../config/postgres-names';
import { PostgresProps, PostgresServer } from '../../../constructs/postgres';
import { unescapeTerraformTemplate } from '../../../constructs/terraform-text';
import { renderPostgresInitScript } from '../../../runtime/render/postgres';
import { CONFIG_DEFAULTS, container, envOf, labels, NETWORK, passwordId, RANDOM_PASSWORD_REF, resourcesOf, STORAGE, synth, upload, onHost } from './support';

const BASE: PostgresProps = {
  environment: 'dev',
  tenant: 'acme',
  image: 'postgres:16-alpine',
  network: NETWORK,
  storage: STORAGE.volume,
  databases: ['app', 'analytics'],
  memoryMb: 768,
  ...CONFIG_DEFAULTS.postgres,
};

function postgres(props: Partial<PostgresProps> = {}) {
  let server: PostgresServer | undefined;
  const out = synth((scope: Construct) => {
    server = new PostgresServer(scope, 'postgres', { ...BASE, ...props });
  });
  return { ...out, server: server!, c: container(out.doc, `dev-${props.tenant ?? 'acme'}-postgres`) };
}

describe('PostgresServer', () => {
  test('runs the given image as dev-acme-postgres on the network, with labels, memory and a restart policy', () => {
    const { json } = postgres({ cpus: 2 });

    expect(json).toHaveResourceWithProperties(Container, {
      name: 'dev-acme-postgres',
      hostname: 'dev-acme-postgres',
      image: 'postgres:16-alpine',
      memory: 768,
      cpus: '2',
      labels: labels('dev', 'acme', 'postgres'),
      networks_advanced: [{ name: NETWORK, aliases: ['dev-acme-postgres'] }],
      restart: 'unless-stopped',
      must_run: true,
    });
  });

  test('passes parameters as -c key=value sorted by key, booleans as on/off', () => {
    const { c } = postgres({ parameters: { work_mem: '8MB', max_connections: 200, autovacuum: false, jit: true, shared_buffers: '128MB' } });

    expect(c.command).toEqual([
      'postgres',
      '-c', 'autovacuum=off',
      '-c', 'jit=on',
      '-c', 'max_connections=200',
      '-c', 'shared_buffers=128MB',
      '-c', 'work_mem=8MB',
    ]);
    expect(c.entrypoint).toBeUndefined(); // the image's entrypoint runs the init scripts
  });

  test('without parameters the command is just "postgres"', () => {
    expect(postgres().c.command).toEqual(['postgres']);
  });

  test('uploads the rendered init script, executable, to /docker-entrypoint-initdb.d', () => {
    const { c } = postgres();
    const script = upload(c, '/docker-entrypoint-initdb.d/10-tenantry-init.sh');

    expect(c.upload).toHaveLength(1);
    expect(script.executable).toBe(true);
    expect(unescapeTerraformTemplate(script.content)).toBe(
      renderPostgresInitScript({ databases: ['app', 'analytics'], appRole: 'acme_app', readonlyRole: 'acme_readonly', backupRole: 'acme_backup', replicationRole: 'acme_replication', parameters: {} }),
    );
  });

  test('passwords reach the container as references to four distinct random_passwords, never as values', () => {
    const { c, doc } = postgres();
    const env = envOf(c);

    const names = ['POSTGRES_PASSWORD', 'TENANTRY_APP_PASSWORD', 'TENANTRY_READONLY_PASSWORD', 'TENANTRY_BACKUP_PASSWORD'];
    for (const name of names) expect(env[name]).toMatch(RANDOM_PASSWORD_REF);
    const ids = names.map((name) => passwordId(env[name]));
    expect(new Set(ids).size).toBe(4);
    const passwords = resourcesOf<{ length: number; special: boolean }>(doc, 'random_password');
    expect(Object.keys(passwords).sort()).toEqual([...ids].sort());
    for (const id of ids) expect(passwords[id]).toEqual({ length: 32, special: false });
    expect(env.PGDATA).toBe('/var/lib/postgresql/data/pgdata');
  });

  test('env entries are sorted by name, so the plan never reorders them', () => {
    const { c } = postgres();
    const names = (c.env ?? []).map((e) => e.split('=')[0]);
    expect(names).toEqual([...names].sort());
  });

  test('health is pg_isready against the server itself', () => {
    const { c } = postgres();
    expect(c.healthcheck?.test).toEqual(['CMD-SHELL', 'pg_isready -U postgres -h 127.0.0.1 -p 5432']);
  });

  test('keeps its data on a stateful volume at the image data directory', () => {
    const { c } = postgres({ storage: STORAGE.bind });
    expect(c.volumes).toEqual([{ container_path: '/var/lib/postgresql/data', host_path: '/srv/tenantry/dev/acme/postgres/data' }]);
  });

  test('publishes 5432 only when a host port is given', () => {
    expect(postgres().c.ports).toBeUndefined();
    expect(postgres({ publishedPort: onHost(20000) }).c.ports).toEqual([{ internal: 5432, external: 20000, ip: '127.0.0.1' }]);
  });

  test('exposes its endpoint: host, port, databases and roles derived from the tenant name', () => {
    const { endpoint } = postgres({ tenant: 'big-co' }).server;

    expect(endpoint.host).toBe('dev-big-co-postgres');
    expect(endpoint.port).toBe(5432);
    expect(endpoint.databases).toEqual(['app', 'analytics']);
    expect(endpoint.appRole).toBe('big_co_app');
    expect(endpoint.readonlyRole).toBe('big_co_readonly');
    expect(tenantRoles('big-co')).toEqual({ appRole: 'big_co_app', readonlyRole: 'big_co_readonly', backupRole: 'big_co_backup', replicationRole: 'big_co_replication' });
  });

  test('refuses an empty database list, naming the tenant', () => {
    expect(() => postgres({ databases: [] })).toThrow('postgres for tenant "acme": databases must not be empty');
  });

  test('refuses a parameter name that is not a Postgres setting', () => {
    expect(() => postgres({ parameters: { 'Bad Name': 1 } })).toThrow(/parameter names are lower-case Postgres settings \(value: "Bad Name"\)/);
  });

  test('creates the server and its one-shot provisioning container, and four passwords', () => {
    const { json, doc } = postgres();
    expect(containersOf(doc).map((c) => c.name).sort()).toEqual(['dev-acme-postgres', 'dev-acme-postgres-provision']);
    expect(Object.keys(resourcesOf(doc, 'random_password'))).toHaveLength(4);
    expect(json).toHaveResourceWithProperties(Password, { length: 32, special: false });
  });

  // The image runs its init scripts only into an empty data directory: a server deployed before
  // the backup role existed, or before a password changed, gets them from this container.
  test('re-asserts roles and passwords on a running server: a one-shot container runs the same init script as the superuser, after the server', () => {
    const { doc, c } = postgres();
    const provision = container(doc, 'dev-acme-postgres-provision');
    const env = envOf(provision);
    const server = envOf(c);

    expect(provision).toMatchObject({ image: 'postgres:16-alpine', restart: 'no', must_run: false });
    expect(unescapeTerraformTemplate(upload(provision, '/docker-entrypoint-initdb.d/10-tenantry-init.sh').content)).toBe(
      unescapeTerraformTemplate(upload(c, '/docker-entrypoint-initdb.d/10-tenantry-init.sh').content),
    );
    expect(provision.entrypoint).toEqual(['/bin/sh', '-c', 'until pg_isready -q; do sleep 2; done; exec /bin/sh /docker-entrypoint-initdb.d/10-tenantry-init.sh']);
    expect(env).toMatchObject({ PGHOST: 'dev-acme-postgres', PGPORT: '5432', PGUSER: 'postgres', PGPASSWORD: server.POSTGRES_PASSWORD });
    for (const secret of ['TENANTRY_APP_PASSWORD', 'TENANTRY_READONLY_PASSWORD', 'TENANTRY_BACKUP_PASSWORD']) expect(env[secret]).toBe(server[secret]);
    expect(provision.depends_on).toEqual([expect.stringMatching(/^docker_container\.postgres_server_container_/)]);
  });
});

function containersOf(doc: ReturnType<typeof postgres>['doc']) {
  return Object.values(resourcesOf<{ name: string }>(doc, 'docker_container'));
}

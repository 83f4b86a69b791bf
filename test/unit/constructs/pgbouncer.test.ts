import { Container } from '@cdktf/provider-docker/lib/container';
import { Construct } from 'constructs';
import { PgBouncer, PgBouncerProps } from '../../../constructs/pgbouncer';
import { PostgresServer } from '../../../constructs/postgres';
import { unescapeTerraformTemplate } from '../../../constructs/terraform-text';
import { renderPgBouncer } from '../../../runtime/render/pgbouncer';
import { CONFIG_DEFAULTS, container, envOf, labels, NETWORK, RANDOM_PASSWORD_REF, STORAGE, synth, upload, onHost } from './support';

type PoolProps = Partial<Omit<PgBouncerProps, 'environment' | 'tenant' | 'image' | 'network' | 'postgres'>>;

/** PgBouncer in front of a real PostgresServer of the same tenant, as Tenant builds it. */
function pgbouncer(props: PoolProps = {}) {
  let pool: PgBouncer | undefined;
  const out = synth((scope: Construct) => {
    const postgres = new PostgresServer(scope, 'postgres', {
      environment: 'dev',
      tenant: 'acme',
      image: 'postgres:16-alpine',
      network: NETWORK,
      storage: STORAGE.volume,
      databases: ['app', 'analytics'],
      memoryMb: 512,
      ...CONFIG_DEFAULTS.postgres,
    });
    pool = new PgBouncer(scope, 'pgbouncer', { environment: 'dev', tenant: 'acme', image: 'edoburu/pgbouncer:v1.23.1-p2', network: NETWORK, postgres: postgres.endpoint, ...CONFIG_DEFAULTS.pgbouncer, ...props });
  });
  const c = container(out.doc, 'dev-acme-pgbouncer');
  const ini = unescapeTerraformTemplate(upload(c, '/etc/pgbouncer/pgbouncer.ini').content);
  return { ...out, pool: pool!, c, ini, postgres: container(out.doc, 'dev-acme-postgres') };
}

function iniValue(ini: string, key: string): string | undefined {
  return ini.split('\n').find((line) => line.startsWith(`${key} =`))?.slice(key.length + 2).trim();
}

describe('PgBouncer', () => {
  test('defaults: transaction pooling, pool 25, max clients 1000, 64 MiB', () => {
    const { ini, json } = pgbouncer();

    expect(iniValue(ini, 'pool_mode')).toBe('transaction');
    expect(iniValue(ini, 'default_pool_size')).toBe('25');
    expect(iniValue(ini, 'max_client_conn')).toBe('1000');
    expect(json).toHaveResourceWithProperties(Container, {
      name: 'dev-acme-pgbouncer',
      image: 'edoburu/pgbouncer:v1.23.1-p2',
      memory: 64,
      labels: labels('dev', 'acme', 'pgbouncer'),
      networks_advanced: [{ name: NETWORK, aliases: ['dev-acme-pgbouncer'] }],
    });
  });

  test('routes every database of the tenant to its Postgres server by container name', () => {
    const { ini } = pgbouncer();

    expect(ini).toContain('app = host=dev-acme-postgres port=5432 dbname=app\n');
    expect(ini).toContain('analytics = host=dev-acme-postgres port=5432 dbname=analytics\n');
    expect(iniValue(ini, 'listen_port')).toBe('6432');
  });

  test('uploads exactly what the renderer produces: the ini, and the start script as entrypoint', () => {
    const { c } = pgbouncer({ poolMode: 'session', poolSize: 10, maxClients: 200 });
    const rendered = renderPgBouncer({
      listenPort: 6432,
      serverHost: 'dev-acme-postgres',
      serverPort: 5432,
      databases: ['app', 'analytics'],
      user: 'acme_app',
      poolMode: 'session',
      poolSize: 10,
      maxClients: 200,
    });

    expect((c.upload ?? []).map((u) => ({ ...u, content: unescapeTerraformTemplate(u.content) }))).toEqual(
      [...rendered.files].sort((a, b) => a.path.localeCompare(b.path)).map((f) => ({ file: f.path, content: f.content, executable: f.executable ?? false })),
    );
    expect(c.entrypoint).toEqual(rendered.entrypoint);
    expect(upload(c, '/etc/pgbouncer/tenantry-start.sh').executable).toBe(true);
  });

  test('pool settings from props reach the ini', () => {
    const { ini } = pgbouncer({ poolMode: 'statement', poolSize: 5, maxClients: 50 });

    expect(iniValue(ini, 'pool_mode')).toBe('statement');
    expect(iniValue(ini, 'default_pool_size')).toBe('5');
    expect(iniValue(ini, 'max_client_conn')).toBe('50');
  });

  test('authenticates as the app role with the app password from env: a reference, and no password in the ini', () => {
    const { c, ini, postgres } = pgbouncer();
    const password = envOf(c).PGBOUNCER_PASSWORD;

    expect(password).toMatch(RANDOM_PASSWORD_REF);
    expect(password).toBe(envOf(postgres).TENANTRY_APP_PASSWORD);
    expect(iniValue(ini, 'auth_type')).toBe('scram-sha-256');
    expect(iniValue(ini, 'auth_file')).toBe('/tmp/pgbouncer/userlist.txt');
    expect(ini).not.toMatch(/password\s*=/i);
    expect(unescapeTerraformTemplate(upload(c, '/etc/pgbouncer/tenantry-start.sh').content)).toContain("'acme_app'");
  });

  test('host and port for clients', () => {
    const { pool } = pgbouncer();
    expect(pool.host).toBe('dev-acme-pgbouncer');
    expect(pool.port).toBe(6432);
  });

  test('publishes 6432 only when a host port is given', () => {
    expect(pgbouncer().c.ports).toBeUndefined();
    expect(pgbouncer({ publishedPort: onHost(20001) }).c.ports).toEqual([{ internal: 6432, external: 20001, ip: '127.0.0.1' }]);
  });

  test('refuses poolSize > maxClients, naming both props and values', () => {
    expect(() => pgbouncer({ poolSize: 30, maxClients: 20 })).toThrow('pgbouncer for tenant "acme": poolSize (30) must not exceed maxClients (20)');
  });

  test('poolSize equal to maxClients is allowed', () => {
    expect(() => pgbouncer({ poolSize: 20, maxClients: 20 })).not.toThrow();
  });

  test('refuses poolSize above the config\'s default maxClients when only poolSize is set', () => {
    expect(() => pgbouncer({ poolSize: 1001 })).toThrow(/poolSize \(1001\) must not exceed maxClients \(1000\)/);
  });
});

import { containers, loadOrThrow, synthEnvironment, writeConfig } from './support';

/*
 * Published ports from YAML to JSON: every published port of every container (tenant services,
 * backup agent, the shared Postgres server) binds the environment's ports.address, loopback when
 * the environment says nothing.
 */

const everything = {
  postgres: { databases: ['app'] },
  redis: { replicas: 1, sentinels: 3 },
  qdrant: {},
  minio: { buckets: [{ name: 'images' }] },
};

function publishedAddresses(ports: Record<string, unknown>): string[] {
  const root = writeConfig({
    'environments/dev.yaml': {
      name: 'dev',
      docker: { host: 'unix:///var/run/docker.sock' },
      network: { name: 'tenantry-dev', subnet: '172.31.0.0/16' },
      storage: { kind: 'volume' },
      ports: { publish: true, ...ports },
      sharedPostgres: { hostPort: 21999 },
      backup: { defaults: { postgres: { offsite: false }, redis: { offsite: false }, qdrant: { offsite: false }, minio: { offsite: false } } },
    },
    'tenants/acme.yaml': { name: 'acme', environments: ['dev'], portSlot: 0, services: everything },
    'tenants/beta.yaml': { name: 'beta', environments: ['dev'], portSlot: 1, services: { postgres: { mode: 'shared', databases: ['beta'] } } },
  });
  const [env] = loadOrThrow(root).environments;
  const { doc } = synthEnvironment(env);
  return containers(doc).flatMap((c) => (c.ports ?? []).map((p) => `${c.name}:${p.external}@${p.ip}`));
}

describe('published ports bind ports.address', () => {
  test('loopback (127.0.0.1) by default, for every container that publishes, the shared Postgres server too', () => {
    const bound = publishedAddresses({});
    expect(bound.length).toBeGreaterThanOrEqual(14);
    expect(bound).toContain('dev-shared-postgres:21999@127.0.0.1');
    expect(bound).toContain('dev-acme-backup:20006@127.0.0.1');
    expect(bound.filter((b) => !b.endsWith('@127.0.0.1'))).toEqual([]);
  });

  test.each(['0.0.0.0', '192.168.10.5', '::1'])('the address an environment names: %s', (address) => {
    const bound = publishedAddresses({ address });
    expect(bound.length).toBeGreaterThanOrEqual(14);
    expect(bound.filter((b) => !b.endsWith(`@${address}`))).toEqual([]);
  });
});

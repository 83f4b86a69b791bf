import { Construct } from 'constructs';
import { SharedPostgresDatabases, SharedPostgresServer } from '../../../constructs/shared-postgres';
import { unescapeTerraformTemplate } from '../../../constructs/terraform-text';
import { renderPostgresInitScript } from '../../../runtime/render/postgres';
import { container, envOf, labels, NETWORK, passwordId, RANDOM_PASSWORD_REF, resourcesOf, STORAGE, synth } from './support';

function sharedServer(scope: Construct) {
  return new SharedPostgresServer(scope, 'shared-postgres', {
    environment: 'dev',
    image: 'postgres:16-alpine',
    network: NETWORK,
    storage: STORAGE.volume,
    parameters: { max_connections: 300 },
    memoryMb: 1024,
  });
}

describe('SharedPostgresServer and SharedPostgresDatabases', () => {
  // BUG (constructs/shared-postgres.ts): the server's command comes from renderPostgres({ appRole:
  // 'unused', readonlyRole: 'unused', ... }), which throws "appRole and readonlyRole must differ",
  // so no shared server can be built (and no environment with sharedPostgres can synthesize).
  // Fix: export the `-c` argument builder from runtime/render/postgres.ts and call it directly.
  test('the server: dev-shared-postgres with sorted -c parameters, its superuser password by reference', () => {
    const { doc } = synth((scope) => sharedServer(scope));
    const server = container(doc, 'dev-shared-postgres');

    expect(server.command).toEqual(['postgres', '-c', 'max_connections=300']);
    expect(server.labels).toEqual(labels('dev', 'shared', 'postgres'));
    expect(envOf(server).POSTGRES_PASSWORD).toMatch(RANDOM_PASSWORD_REF);
    expect(server.upload ?? []).toEqual([]);
  });

  // Same bug: a tenant's databases need the server first.
  test("a tenant's databases: a one-shot container runs the tenant's init script against the server", () => {
    const { doc } = synth((scope) => {
      const server = sharedServer(scope);
      new SharedPostgresDatabases(scope, 'postgres', { environment: 'dev', tenant: 'acme', server, network: NETWORK, databases: ['app'] });
    });
    const provision = container(doc, 'dev-acme-postgres-provision');

    expect([provision.restart, provision.must_run]).toEqual(['no', false]);
    expect(provision.upload?.map((u) => unescapeTerraformTemplate(u.content))).toEqual([
      renderPostgresInitScript({ databases: ['app'], appRole: 'acme_app', readonlyRole: 'acme_readonly', backupRole: 'acme_backup', replicationRole: 'acme_replication', parameters: {} }),
    ]);
    const env = envOf(provision);
    expect(env.PGHOST).toBe('dev-shared-postgres');
    expect(env.PGPASSWORD).toBe(envOf(container(doc, 'dev-shared-postgres')).POSTGRES_PASSWORD);
    for (const secret of ['PGPASSWORD', 'TENANTRY_APP_PASSWORD', 'TENANTRY_READONLY_PASSWORD']) expect(env[secret]).toMatch(RANDOM_PASSWORD_REF);
  });

  test("a tenant's endpoint: the shared server's address and superuser, the tenant's own roles with passwords of their own", () => {
    let databases: SharedPostgresDatabases | undefined;
    const { doc } = synth((scope) => {
      const server = sharedServer(scope);
      databases = new SharedPostgresDatabases(scope, 'postgres', { environment: 'dev', tenant: 'big-co', server, network: NETWORK, databases: ['app'] });
    });
    const { host, port, appRole, readonlyRole, backupRole, superuser } = databases!.endpoint;
    expect({ host, port, appRole, readonlyRole, backupRole, superuser: superuser.user }).toEqual({
      host: 'dev-shared-postgres',
      port: 5432,
      appRole: 'big_co_app',
      readonlyRole: 'big_co_readonly',
      backupRole: 'big_co_backup',
      superuser: 'postgres',
    });

    const env = envOf(container(doc, 'dev-big-co-postgres-provision'));
    const tenantIds = ['TENANTRY_APP_PASSWORD', 'TENANTRY_READONLY_PASSWORD', 'TENANTRY_BACKUP_PASSWORD'].map((name) => passwordId(env[name]));
    const serverId = passwordId(env.PGPASSWORD);
    expect(new Set([...tenantIds, serverId]).size).toBe(4);
    expect(Object.keys(resourcesOf(doc, 'random_password')).sort()).toEqual([...tenantIds, serverId].sort());
  });
});

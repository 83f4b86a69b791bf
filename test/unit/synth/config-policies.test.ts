import * as path from 'path';
import { loadConfig } from '../../../config/load';
import { containerName } from '../../../constructs/naming';
import { SHARED_TENANT } from '../../../config/storage-layout';
import { container } from '../constructs/support';
import { containers, errorAnnotations, invariantViolations, loadOrThrow, synthEnvironment, writeConfig } from './support';

/*
 * Policies and naming rules for configs written as YAML files and read by loadConfig, so each
 * case goes the way a user's config goes: YAML -> validated config -> EnvironmentStack -> JSON.
 */

const LOCAL = 'unix:///var/run/docker.sock';

function environment(name: string, subnet: string, extra: Record<string, unknown> = {}) {
  return { name, docker: { host: LOCAL }, network: { name: `tenantry-${name}`, subnet }, storage: { kind: 'volume' }, ...extra };
}

const postgresOnly = { postgres: { databases: ['app'] }, pgbouncer: { enabled: false } };

describe('policy aspects on a stack built from config', () => {
  test('a production environment publishing a Postgres port is an error on that container', () => {
    const root = writeConfig({
      'environments/prod.yaml': environment('prod', '172.31.0.0/16', { production: true, ports: { publish: true } }),
      'tenants/acme.yaml': { name: 'acme', environments: ['prod'], portSlot: 0, services: postgresOnly },
    });
    const [env] = loadOrThrow(root).environments;

    const errors = errorAnnotations(synthEnvironment(env).stack);

    expect(errors).toEqual([
      {
        path: 'prod/acme/postgres/server/container',
        message:
          'container "prod-acme-postgres" publishes a postgres port in production environment "prod": set ports.publish: false, or ports.allowDataPortsInProduction: true if you really mean it',
      },
    ]);
  });

  test('…and allowed with ports.allowDataPortsInProduction: true', () => {
    const root = writeConfig({
      'environments/prod.yaml': environment('prod', '172.31.0.0/16', { production: true, ports: { publish: true, allowDataPortsInProduction: true } }),
      'tenants/acme.yaml': { name: 'acme', environments: ['prod'], portSlot: 0, services: postgresOnly },
    });
    const [env] = loadOrThrow(root).environments;

    expect(errorAnnotations(synthEnvironment(env).stack)).toEqual([]);
  });

  test('an environment image tagged latest is an error on that image', () => {
    const root = writeConfig({
      'environments/dev.yaml': environment('dev', '172.30.0.0/16', { images: { postgres: 'postgres:latest' } }),
      'tenants/acme.yaml': { name: 'acme', environments: ['dev'], services: postgresOnly },
    });
    const [env] = loadOrThrow(root).environments;

    expect(errorAnnotations(synthEnvironment(env).stack).map((e) => e.message)).toEqual([
      'image "postgres:latest" is not pinned to a version: use a tag other than "latest" (e.g. postgres:16-alpine) or a digest',
    ]);
  });
});

describe('names on a shared Docker host', () => {
  // Container and volume names are `<env>-<tenant>-<service>`, and both names may contain "-":
  // environment "dev" with tenant "a-b" and environment "dev-a" with tenant "b" would both own
  // "dev-a-b-postgres". Docker would refuse the second container at apply time, so the loader does now.
  test('two environments on one host that would produce the same container names are refused at the tenant', () => {
    const root = writeConfig({
      'environments/dev.yaml': environment('dev', '172.30.0.0/16'),
      'environments/dev-a.yaml': environment('dev-a', '172.29.0.0/16'),
      'tenants/a-b.yaml': { name: 'a-b', environments: ['dev'], services: postgresOnly },
      'tenants/b.yaml': { name: 'b', environments: ['dev-a'], services: postgresOnly },
    });
    const result = loadConfig(root);
    expect(result.ok).toBe(false);
    const messages = result.ok ? [] : result.problems.map((p) => `${path.basename(p.file)}:${p.line}:${p.col}: ${p.message}`);
    // Off-site bucket and IAM user names are `<bucket>-<env>-<tenant>` and `<env>-<tenant>-backup`: they clash too.
    expect(messages).toEqual([
      expect.stringMatching(/^b\.yaml:1:7: name: bucket "tenantry-backups-dev-a-b", the off-site bucket of tenant "b" in environment "dev-a", is also the off-site bucket of tenant "a-b" in environment "dev"/),
      expect.stringMatching(/^b\.yaml:1:7: name: containers of tenant "b" in environment "dev-a" would be named "dev-a-b-…", like those of tenant "a-b" in environment "dev"/),
      expect.stringMatching(/^b\.yaml:1:7: name: the off-site credential of tenant "b" in environment "dev-a" would be IAM user "dev-a-b-backup", like that of tenant "a-b" in environment "dev"/),
    ]);
  });

  test('the same tenant names in environments on different Docker hosts are fine (without off-site copies, whose AWS names are global)', () => {
    const local = { postgres: { offsite: false } };
    const root = writeConfig({
      'environments/dev.yaml': environment('dev', '172.30.0.0/16'),
      'environments/dev-a.yaml': { ...environment('dev-a', '172.29.0.0/16'), docker: { host: 'ssh://deploy@other-host' } },
      'tenants/a-b.yaml': { name: 'a-b', environments: ['dev'], services: postgresOnly, backup: local },
      'tenants/b.yaml': { name: 'b', environments: ['dev-a'], services: postgresOnly, backup: local },
    });
    const stacks = loadOrThrow(root).environments.map(synthEnvironment);
    expect(invariantViolations(stacks)).toEqual([]);
  });

  // BUG (config/schema.ts or config/cross-checks.ts): the shared Postgres server is named as if it
  // belonged to a tenant called "shared" (SHARED_TENANT in config/storage-layout.ts), and
  // nothing reserves that name: a tenant "shared" with its own Postgres would also be
  // "dev-shared-postgres" (and volume "dev-shared-postgres-data"). Fix: refuse the tenant name
  // "shared" where the environment has sharedPostgres (or everywhere, simpler), with a message at
  // the tenant's `name:` line.
  test('loadConfig refuses a tenant called "shared" next to a shared Postgres server (same container name)', () => {
    const root = writeConfig({
      'environments/dev.yaml': environment('dev', '172.30.0.0/16', { sharedPostgres: {} }),
      'tenants/shared.yaml': { name: 'shared', environments: ['dev'], services: postgresOnly },
    });
    expect(containerName('dev', SHARED_TENANT, 'postgres')).toBe(containerName('dev', 'shared', 'postgres'));

    expect(loadConfig(root).ok).toBe(false);
  });
});

describe('shared Postgres', () => {
  // BUG (constructs/shared-postgres.ts): SharedPostgresServer takes its command from
  // renderPostgres({ appRole: 'unused', readonlyRole: 'unused', ... }), and renderPostgres refuses
  // equal roles ("appRole and readonlyRole must differ"), so every environment with a
  // sharedPostgres section fails at synth. Fix: export the `-c` argument builder from
  // runtime/render/postgres.ts (e.g. `postgresCommand(parameters)`) and use it here, instead of
  // rendering an init script that is thrown away.
  test('tenants with mode: shared get their databases on the server from a one-shot provisioning container', () => {
    const root = writeConfig({
      'environments/dev.yaml': environment('dev', '172.30.0.0/16', { sharedPostgres: { parameters: { max_connections: 300 } } }),
      'tenants/acme.yaml': { name: 'acme', environments: ['dev'], services: { postgres: { mode: 'shared', databases: ['app'] } } },
    });
    const [s] = loadOrThrow(root).environments.map(synthEnvironment);

    expect(invariantViolations([s])).toEqual([]);
    expect(errorAnnotations(s.stack)).toEqual([]);
    expect(containers(s.doc).map((c) => c.name).sort()).toEqual(['dev-acme-backup', 'dev-acme-pgbouncer', 'dev-acme-postgres-provision', 'dev-shared-postgres']);
    expect(container(s.doc, 'dev-shared-postgres').command).toEqual(['postgres', '-c', 'max_connections=300']);
    const provision = container(s.doc, 'dev-acme-postgres-provision');
    expect([provision.restart, provision.must_run]).toEqual(['no', false]);
  });
});

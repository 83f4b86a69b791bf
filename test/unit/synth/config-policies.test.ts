import * as fs from 'fs';
import * as path from 'path';
import { loadConfig } from '../../../config/load';
import { containerName } from '../../../constructs/naming';
import { SHARED_TENANT } from '../../../config/storage-layout';
import { container } from '../constructs/support';
import { synthesizeEnvironments } from '../../../stacks/synth';
import { containers, errorAnnotations, invariantViolations, loadOrThrow, REPO_ROOT, synthEnvironment, writeConfig } from './support';

/*
 * Policies and naming rules for configs written as YAML files and read by loadConfig, so each
 * case goes the way a user's config goes: YAML -> validated config -> EnvironmentStack -> JSON.
 */

const LOCAL = 'unix:///var/run/docker.sock';

function environment(name: string, subnet: string, extra: Record<string, unknown> = {}) {
  return { name, docker: { host: LOCAL }, network: { name: `tenantry-${name}`, subnet }, storage: { kind: 'volume' }, ...extra };
}

const postgresOnly = { postgres: { databases: ['app'] }, pgbouncer: { enabled: false } };

describe('policies: the loader refuses them at the key, the aspects still guard the constructs', () => {
  const problems = (root: string) => {
    const result = loadConfig(root);
    return result.ok ? [] : result.problems.map((p) => `${path.basename(p.file)}:${p.line}:${p.col}: ${p.message}`);
  };

  test('a production environment publishing a Postgres port: refused at ports.publish, and an error on the container when built without the loader', () => {
    const files = {
      'environments/prod.yaml': environment('prod', '172.31.0.0/16', { production: true, ports: { publish: true } }),
      'tenants/acme.yaml': { name: 'acme', environments: ['prod'], portSlot: 0, services: postgresOnly },
    };
    expect(problems(writeConfig(files))).toEqual([
      'prod.yaml:11:12: ports.publish: environment "prod" is production, and publishing ports would expose Postgres, PgBouncer and Redis outside the Docker network (tenant acme publishes them): set ports.publish: false, or ports.allowDataPortsInProduction: true if you really mean it',
    ]);

    const [dev] = loadOrThrow(writeConfig({ ...files, 'environments/prod.yaml': environment('prod', '172.31.0.0/16', { ports: { publish: true } }) })).environments;
    const errors = errorAnnotations(synthEnvironment({ ...dev, production: true }).stack);

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

  test('an environment image tagged latest: refused at images.postgres, and an error on the image when built without the loader', () => {
    const files = {
      'environments/dev.yaml': environment('dev', '172.30.0.0/16', { images: { postgres: 'postgres:latest' } }),
      'tenants/acme.yaml': { name: 'acme', environments: ['dev'], services: postgresOnly },
    };
    expect(problems(writeConfig(files))).toEqual([
      'dev.yaml:10:13: images.postgres: "postgres:latest" is not pinned to a version, so each deploy may pull a different image: name one, e.g. "postgres:<version>" (not "latest"), or a digest "postgres@sha256:…"',
    ]);

    const [env] = loadOrThrow(writeConfig({ ...files, 'environments/dev.yaml': environment('dev', '172.30.0.0/16') })).environments;
    const unpinned = { ...env, images: { ...env.images, postgres: 'postgres:latest' } };
    expect(errorAnnotations(synthEnvironment(unpinned).stack).map((e) => e.message)).toEqual([
      'image "postgres:latest" is not pinned to a version: use a tag other than "latest" (e.g. postgres:16-alpine) or a digest',
    ]);
  });

  // cdktf-cli runs the app with CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS=true, under which cdktf's
  // synthesizer writes a stack despite error annotations (it leaves them for the CLI to print).
  test('an aspect error stops synthesizeEnvironments even under CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS', async () => {
    const root = writeConfig({
      'environments/dev.yaml': environment('dev', '172.30.0.0/16'),
      'tenants/acme.yaml': { name: 'acme', environments: ['dev'], services: postgresOnly },
    });
    const [env] = loadOrThrow(root).environments;
    const outdir = path.join(root, 'cdktf.out');
    const scratch = `${outdir}.partial`;
    const saved = process.env.CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS;
    process.env.CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS = 'true';
    try {
      const result = await synthesizeEnvironments([{ ...env, images: { ...env.images, postgres: 'postgres:latest' } }], { root, outdir, scratch, repo: REPO_ROOT, workers: 1 });
      expect(result).toEqual({
        ok: false,
        errors: [`${env.source}:1:1: image "postgres:latest" is not pinned to a version: use a tag other than "latest" (e.g. postgres:16-alpine) or a digest (at dev/images/postgres-latest)`],
      });
      expect(fs.existsSync(path.join(scratch, 'manifest.json'))).toBe(false);
    } finally {
      if (saved === undefined) delete process.env.CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS;
      else process.env.CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS = saved;
    }
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
      // PITR off: the environment's archive of the server has its own test (shared-postgres-archive.test.ts).
      'environments/dev.yaml': environment('dev', '172.30.0.0/16', {
        sharedPostgres: { parameters: { max_connections: 300 } },
        backup: { defaults: { postgres: { pitr: { enabled: false } } } },
      }),
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

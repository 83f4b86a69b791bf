import { DEFAULT_BACKUP_JOBS, DEFAULT_PITR } from '../../../config/model';
import { loadConfig } from '../../../config/load';
import { loadOrThrow, writeConfig } from '../synth/support';

/*
 * backup.postgres.pitr resolved once in the config layer: built-in defaults, then the
 * environment's backup.defaults.postgres.pitr, then the tenant's (its override for that
 * environment last). What a wrong setting prints is in the corpus (cases 900-905).
 */

const LOCAL = 'unix:///var/run/docker.sock';

function environment(name: string, subnet: string, extra: Record<string, unknown> = {}) {
  return { name, docker: { host: LOCAL }, network: { name: `tenantry-${name}`, subnet }, storage: { kind: 'volume' }, ...extra };
}

const postgresOnly = { postgres: { databases: ['app'] }, pgbouncer: { enabled: false } };

function tenantIn(root: string, env: string, tenant = 'acme') {
  return loadOrThrow(root).environments.find((e) => e.name === env)!.tenants.find((t) => t.name === tenant)!;
}

describe('point-in-time recovery settings', () => {
  test('on by default for a dedicated server, with base backups at another time than the logical dump', () => {
    const root = writeConfig({
      'environments/dev.yaml': environment('dev', '172.31.0.0/16'),
      'tenants/acme.yaml': { name: 'acme', environments: ['dev'], services: postgresOnly },
    });
    const { enabled, ...resolved } = DEFAULT_PITR;
    expect(enabled).toBe(true);
    expect(tenantIn(root, 'dev').backup.postgres?.pitr).toEqual(resolved);
    expect(DEFAULT_PITR.baseBackupSchedule).not.toBe(DEFAULT_BACKUP_JOBS.postgres.schedule);
  });

  test('environment defaults fill what the tenant leaves out; the tenant and its override win', () => {
    const root = writeConfig({
      'environments/dev.yaml': environment('dev', '172.31.0.0/16', { backup: { defaults: { postgres: { pitr: { windowDays: 30, maxSlotWalKeepMb: 2048 } } } } }),
      'environments/stage.yaml': environment('stage', '172.32.0.0/16', { backup: { defaults: { postgres: { pitr: { windowDays: 30 } } } } }),
      'tenants/acme.yaml': {
        name: 'acme',
        environments: ['dev', 'stage'],
        services: postgresOnly,
        backup: { postgres: { pitr: { baseBackupSchedule: '30 1 * * *' } } },
        overrides: { stage: { backup: { postgres: { pitr: { windowDays: 2 } } } } },
      },
    });
    expect(tenantIn(root, 'dev').backup.postgres?.pitr).toEqual({ ...without(DEFAULT_PITR), windowDays: 30, maxSlotWalKeepMb: 2048, baseBackupSchedule: '30 1 * * *' });
    expect(tenantIn(root, 'stage').backup.postgres?.pitr).toEqual({ ...without(DEFAULT_PITR), windowDays: 2, baseBackupSchedule: '30 1 * * *' });
  });

  test('turned off by the environment or the tenant: no pitr on the job, the logical backup stays', () => {
    const root = writeConfig({
      'environments/dev.yaml': environment('dev', '172.31.0.0/16', { backup: { defaults: { postgres: { pitr: { enabled: false } } } } }),
      'tenants/acme.yaml': { name: 'acme', environments: ['dev'], services: postgresOnly },
      'tenants/bolt.yaml': { name: 'bolt', environments: ['dev'], services: postgresOnly, backup: { postgres: { pitr: { enabled: true } } } },
    });
    expect(tenantIn(root, 'dev').backup.postgres).toBeDefined();
    expect(tenantIn(root, 'dev').backup.postgres?.pitr).toBeUndefined();
    expect(tenantIn(root, 'dev', 'bolt').backup.postgres?.pitr).toBeDefined();
  });

  test('a production tenant may turn it off when its file says why', () => {
    const root = writeConfig({
      'environments/prod.yaml': environment('prod', '172.31.0.0/16', { production: true, backup: { offsite: { bucket: 'acme-backups' } } }),
      'tenants/acme.yaml': {
        name: 'acme',
        environments: ['prod'],
        services: postgresOnly,
        backup: { postgres: { pitr: { enabled: false, reason: 'rebuilt nightly from the warehouse' } } },
      },
    });
    const result = loadConfig(root);
    expect(result.ok ? [] : result.problems.map((p) => p.message)).toEqual([]);
    expect(tenantIn(root, 'prod').backup.postgres?.pitr).toBeUndefined();
  });

  test('a tenant on the shared server gets none (its WAL is every tenant\'s), and production does not ask it for a reason', () => {
    const root = writeConfig({
      'environments/prod.yaml': environment('prod', '172.31.0.0/16', { production: true, sharedPostgres: { version: 16 }, backup: { offsite: { bucket: 'acme-backups' } } }),
      'tenants/acme.yaml': { name: 'acme', environments: ['prod'], services: { postgres: { mode: 'shared', databases: ['app'] }, pgbouncer: { enabled: false } } },
    });
    const tenant = tenantIn(root, 'prod');
    expect(tenant.backup.postgres).toBeDefined();
    expect(tenant.backup.postgres?.pitr).toBeUndefined();
  });
});

function without({ enabled: _, ...rest }: typeof DEFAULT_PITR) {
  return rest;
}

import fc from 'fast-check';
import { loadConfig } from '../../../config/load';
import { reservedDatabase } from '../../../config/postgres-names';
import { synthEnvironment, writeConfig } from './support';

/*
 * The class behind `databases: [x, x]` (a stack trace from the renderer's guard at synth): every
 * list that becomes resources, in any mix of duplicates, reserved names and tenants sharing one
 * Postgres server, is either refused by the loader with problems or synthesizes. Never a crash.
 */

const goodDatabase = fc.constantFrom('app', 'reports', 'billing', 'events', 'audit', 'search');
const anyDatabase = fc.constantFrom('app', 'reports', 'app', 'reports', 'postgres', 'template1', 'pg_x');
const bucketName = fc.constantFrom('images', 'thumbs', 'docs');

/** Half the lists are valid on their own, so both outcomes are exercised. */
const tenant = fc.record({
  mode: fc.constantFrom('dedicated', 'dedicated', 'shared'),
  databases: fc.oneof(fc.uniqueArray(goodDatabase, { minLength: 1, maxLength: 2 }), fc.array(anyDatabase, { minLength: 1, maxLength: 4 })).map((l): string[] => [...l]),
  buckets: fc.oneof(fc.uniqueArray(bucketName, { maxLength: 2 }), fc.array(bucketName, { maxLength: 3 })).map((l): string[] => [...l]),
});

const environment = {
  name: 'pt',
  docker: { host: 'unix:///var/run/docker.sock' },
  network: { name: 'tenantry-pt', subnet: '172.28.0.0/16' },
  storage: { kind: 'volume' },
  sharedPostgres: { version: 16 },
  backup: { defaults: { postgres: { offsite: false }, minio: { offsite: false } } },
};

describe('lists that become resources', () => {
  test('duplicates, reserved names and databases shared on one server are problems at load, never a crash at synth', () => {
    fc.assert(
      fc.property(fc.array(tenant, { minLength: 1, maxLength: 3 }), (tenants) => {
        const files: Record<string, unknown> = { 'environments/pt.yaml': environment };
        tenants.forEach((t, i) => {
          files[`tenants/t${i}.yaml`] = {
            name: `t${i}`,
            environments: ['pt'],
            services: { postgres: { mode: t.mode, databases: t.databases }, ...(t.buckets.length ? { minio: { buckets: t.buckets.map((name) => ({ name })) } } : {}) },
          };
        });
        const result = loadConfig(writeConfig(files));

        const unique = (list: string[]) => new Set(list).size === list.length;
        const shared = tenants.filter((t) => t.mode === 'shared').flatMap((t) => [...new Set(t.databases)]);
        const acceptable = tenants.every((t) => unique(t.databases) && unique(t.buckets) && t.databases.every((d) => reservedDatabase(d) === undefined)) && unique(shared);
        expect(result.ok).toBe(acceptable);
        if (result.ok) expect(() => result.config.environments.forEach(synthEnvironment)).not.toThrow();
        else for (const p of result.problems) expect(p.message).toMatch(/listed twice|cannot be a tenant database|is already tenant/);
      }),
      { numRuns: 60, seed: 9 },
    );
  });
});

import * as fc from 'fast-check';
import { loadConfig } from '../../../config/load';
import { DEFAULT_IMAGES } from '../../../config/images';
import { isPinned } from '../../../config/images';
import { errorAnnotations, synthEnvironment, writeConfig } from './support';

/*
 * The config layer is the first line for every policy the aspects enforce (constructs/policy.ts):
 * over generated configurations, whatever the loader accepts synthesizes without an error
 * annotation. So no policy problem ever reaches the user as `file:1:1` after synthesis.
 */

const IMAGE_KEYS = ['postgres', 'pgbouncer', 'redis', 'qdrant', 'minio', 'minioClient', 'backup'] as const;
const imageReference = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('registry.example.com/img:1.2', 'img@sha256:' + 'a'.repeat(64), 'mirror:5000/team/img:16-alpine') },
  { weight: 1, arbitrary: fc.constantFrom('img:latest', 'img', 'mirror:5000/team/img') },
);

const environmentArb = fc.record({
  production: fc.boolean(),
  publish: fc.boolean(),
  allowDataPortsInProduction: fc.boolean(),
  hostPort: fc.option(fc.constant(29990), { nil: undefined }),
  images: fc.dictionary(fc.constantFrom(...IMAGE_KEYS), imageReference, { maxKeys: 2 }),
});

const servicesArb = fc.record(
  {
    postgres: fc.record({ mode: fc.constantFrom('dedicated', 'shared') }),
    pgbouncer: fc.record({ enabled: fc.boolean() }),
    redis: fc.record({ replicas: fc.integer({ min: 0, max: 2 }) }),
    qdrant: fc.constant({}),
    minio: fc.record({ buckets: fc.constantFrom([], [{ name: 'media' }]) }),
  },
  { requiredKeys: [] },
);

test('whatever the loader accepts synthesizes without a policy error (generated configs)', () => {
  let accepted = 0;
  fc.assert(
    fc.property(environmentArb, fc.array(servicesArb, { minLength: 1, maxLength: 2 }), (e, tenants) => {
      const files: Record<string, unknown> = {
        'environments/qa.yaml': {
          name: 'qa',
          production: e.production,
          docker: { host: 'unix:///var/run/docker.sock' },
          network: { name: 'tenantry-qa', subnet: '172.30.0.0/16' },
          storage: { kind: 'volume' },
          images: e.images,
          ports: { publish: e.publish, from: 29000, to: 29999, allowDataPortsInProduction: e.allowDataPortsInProduction },
          sharedPostgres: { hostPort: e.hostPort },
        },
      };
      tenants.forEach((services, i) => {
        const pgbouncer = services.postgres ? services.pgbouncer : undefined;
        files[`tenants/t${i}.yaml`] = { name: `t${i}`, environments: ['qa'], portSlot: i, services: { ...services, pgbouncer } };
      });
      const result = loadConfig(writeConfig(files));
      if (!result.ok) return;
      accepted++;
      const [env] = result.config.environments;
      expect(errorAnnotations(synthEnvironment(env).stack)).toEqual([]);
    }),
    { numRuns: 50, seed: 9008 },
  );
  // Not vacuous: a good share of the generated configs got through to synthesis.
  expect(accepted).toBeGreaterThan(5);
}, 300_000);

test('every default image is pinned, for every Postgres major and any Qdrant release', () => {
  for (let major = 13; major <= 17; major++) expect(isPinned(DEFAULT_IMAGES.postgres(major))).toBe(true);
  fc.assert(fc.property(fc.tuple(fc.nat(99), fc.nat(99), fc.nat(99)), ([a, b, c]) => isPinned(DEFAULT_IMAGES.qdrant(`v${a}.${b}.${c}`))));
  for (const image of [DEFAULT_IMAGES.pgbouncer, DEFAULT_IMAGES.redis, DEFAULT_IMAGES.minio, DEFAULT_IMAGES.minioClient]) expect({ image, pinned: isPinned(image) }).toEqual({ image, pinned: true });
});

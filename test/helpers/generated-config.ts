import fc from 'fast-check';

/*
 * Random Tenantry configurations, as the YAML files a user would write, built to make deployments
 * collide: environments on shared or distinct Docker hosts (one of them written two ways), storage on named volumes, bind data
 * roots (shared or distinct) or NFS exports (shared or distinct server and export), tenants in
 * random environments with per-service storage overrides on shared or distinct paths, in
 * `services` or in `overrides.<env>`. Everything else is kept valid (networks, names, ports,
 * production's backup policy), so a refusal can only come from the rules under test.
 *
 * With `{ offsite: true }` environments also choose how their off-site copies are kept, built to
 * make environments and tenants collide there: per-tenant buckets under shared or distinct name
 * prefixes, one shared bucket named by several environments with or without `managedBy` (which may
 * name the wrong environment, or itself), a shared bucket named like another environment's
 * per-tenant bucket or its Terraform state bucket, and non-production environments that keep no
 * off-site copies. With `{ storage: false }` every environment keeps its data on named volumes,
 * so a test of other rules sees no storage refusals.
 */

export interface GeneratedEnvironment {
  readonly name: string;
  readonly production: boolean;
  readonly dockerHost: string;
  readonly storage: { kind: 'volume' } | { kind: 'bind'; dataRoot: string } | { kind: 'nfs'; server: string; export: string };
  readonly sharedPostgres: boolean;
  /** How the environment keeps off-site copies (`{ offsite: true }` only). */
  readonly offsite?: GeneratedOffsite;
  /** The S3 bucket of the Terraform state (`{ offsite: true }` only). */
  readonly stateBucket?: string;
}

export type GeneratedOffsite =
  | { readonly mode: 'none' }
  | { readonly mode: 'per-tenant'; readonly bucket?: string }
  | { readonly mode: 'shared'; readonly bucket: string; readonly managedBy?: string };

export interface GeneratorOptions {
  /** Random storage (bind, NFS, overrides) as well as named volumes. @default true */
  readonly storage?: boolean;
  /** Random off-site settings and state buckets. @default false: every environment's defaults */
  readonly offsite?: boolean;
}

export type GeneratedOverride = undefined | { kind: 'volume' } | { kind: 'bind'; path: string };

export interface GeneratedTenant {
  readonly name: string;
  readonly environments: string[];
  readonly services: {
    readonly postgres?: { storage: GeneratedOverride };
    readonly redis?: { replicas: number; storage: GeneratedOverride };
    readonly minio?: { storage: GeneratedOverride };
  };
  /** Overrides written under `overrides.<env>` instead of `services`, by environment then service. */
  readonly perEnvironment: Record<string, Partial<Record<'postgres' | 'redis' | 'minio', GeneratedOverride>>>;
}

export interface GeneratedConfig {
  readonly environments: GeneratedEnvironment[];
  readonly tenants: GeneratedTenant[];
}

const ENVIRONMENT_NAMES = ['dev', 'qa', 'live'];
const TENANT_NAMES = ['acme', 'globex', 'initech', 'umbrella'];
/** The last is the second's machine written another way (another user, the name's case, the default port). */
const DOCKER_HOSTS = ['unix:///var/run/docker.sock', 'ssh://deploy@docker-2.example.com', 'ssh://root@Docker-2.example.com:22'];

/** Names picked so that generated environments meet: a shared bucket equal to another's per-tenant bucket or state bucket. */
const SHARED_BUCKETS = ['corp-backups', 'corp-backups-2', 'tbk-dev-acme', 'corp-state'];
const STATE_BUCKETS = ['corp-state', 'corp-backups'];

function offsiteArbitrary(): fc.Arbitrary<GeneratedOffsite> {
  return fc.oneof(
    fc.constant({ mode: 'none' as const }),
    fc.constantFrom(undefined, 'tbk', 'tbk-dev').map((bucket) => ({ mode: 'per-tenant' as const, ...(bucket ? { bucket } : {}) })),
    fc
      .record({ bucket: fc.constantFrom(...SHARED_BUCKETS), managedBy: fc.option(fc.constantFrom(...ENVIRONMENT_NAMES), { nil: undefined }) })
      .map(({ bucket, managedBy }) => ({ mode: 'shared' as const, bucket, ...(managedBy ? { managedBy } : {}) })),
  );
}

function environmentArbitrary(name: string, options: GeneratorOptions): fc.Arbitrary<GeneratedEnvironment> {
  const anyStorage = fc.oneof(
    fc.constant({ kind: 'volume' as const }),
    fc.constantFrom('/srv/tenantry', `/srv/tenantry/${name}`, '/srv/tenantry/acme').map((dataRoot) => ({ kind: 'bind' as const, dataRoot })),
    fc
      .record({ server: fc.constantFrom('nfs-1.example.com', 'NFS-1.example.com', 'nfs-2.example.com'), export: fc.constantFrom('/exports/tenantry', `/exports/tenantry/${name}`, '/exports/tenantry/acme', '/exports/') })
      .map((nfs) => ({ kind: 'nfs' as const, ...nfs })),
  );
  const storage: fc.Arbitrary<GeneratedEnvironment['storage']> = options.storage === false ? fc.constant({ kind: 'volume' as const }) : anyStorage;
  const base = fc.record({ name: fc.constant(name), production: fc.boolean(), dockerHost: fc.constantFrom(...DOCKER_HOSTS), storage, sharedPostgres: fc.boolean() });
  if (!options.offsite) return base;
  return fc
    .tuple(base, offsiteArbitrary(), fc.option(fc.constantFrom(...STATE_BUCKETS), { nil: undefined }))
    // Production keeps off-site copies (another rule's error otherwise).
    .map(([env, offsite, stateBucket]) => ({ ...env, offsite: env.production && offsite.mode === 'none' ? { mode: 'per-tenant' as const } : offsite, ...(stateBucket ? { stateBucket } : {}) }));
}

function overrideArbitrary(tenant: string, options: GeneratorOptions): fc.Arbitrary<GeneratedOverride> {
  if (options.storage === false) return fc.constant(undefined);
  return fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constant({ kind: 'volume' as const }) },
    { weight: 3, arbitrary: fc.constantFrom('/srv/fast', `/srv/fast/${tenant}`, '/srv/tenantry/globex', '/srv/tenantry/dev/acme/postgres').map((path) => ({ kind: 'bind' as const, path })) },
  );
}

function tenantArbitrary(name: string, environments: string[], options: GeneratorOptions): fc.Arbitrary<GeneratedTenant> {
  const override = overrideArbitrary(name, options);
  return fc.record({
    name: fc.constant(name),
    environments: fc.subarray(environments, { minLength: 1 }),
    services: fc.record(
      {
        postgres: fc.record({ storage: override }),
        redis: fc.record({ replicas: fc.integer({ min: 0, max: 1 }), storage: override }),
        minio: fc.record({ storage: override }),
      },
      { requiredKeys: [] },
    ),
    perEnvironment: fc.dictionary(fc.constantFrom(...environments), fc.record({ postgres: override, redis: override, minio: override }, { requiredKeys: [] }), { maxKeys: 2 }),
  });
}

export function generatedConfig(options: GeneratorOptions = {}): fc.Arbitrary<GeneratedConfig> {
  return fc
    .subarray(ENVIRONMENT_NAMES, { minLength: 1 })
    .chain((names) => fc.tuple(fc.tuple(...names.map((n) => environmentArbitrary(n, options))), fc.subarray(TENANT_NAMES, { minLength: 1 })))
    .chain(([environments, tenantNames]) =>
      fc.tuple(fc.constant(environments), fc.tuple(...tenantNames.map((t) => tenantArbitrary(t, environments.map((e) => e.name), options)))),
    )
    .map(([environments, tenants]) => ({
      environments,
      // An override for an environment the tenant is not in is another rule's error.
      tenants: tenants.map((t) => ({ ...t, perEnvironment: Object.fromEntries(Object.entries(t.perEnvironment).filter(([env]) => t.environments.includes(env))) })),
    }));
}

/** The config's files, by root-relative path, as objects to write as YAML. */
export function configFiles(config: GeneratedConfig): Record<string, unknown> {
  const files: Record<string, unknown> = {};
  config.environments.forEach((e, i) => {
    files[`environments/${e.name}.yaml`] = {
      name: e.name,
      production: e.production,
      docker: { host: e.dockerHost },
      network: { name: `generated-${e.name}`, subnet: `172.${50 + i}.0.0/16` },
      storage: e.storage,
      ...(e.sharedPostgres ? { sharedPostgres: {} } : {}),
      ...(e.stateBucket ? { backend: { kind: 's3', bucket: e.stateBucket, region: 'eu-central-1' } } : {}),
      ...(e.offsite ? { backup: offsiteSettings(e.offsite) } : {}),
    };
  });
  for (const t of config.tenants) {
    const services: Record<string, unknown> = {};
    const withStorage = (settings: Record<string, unknown>, storage: GeneratedOverride) => (storage ? { ...settings, storage } : settings);
    if (t.services.postgres) {
      services.postgres = withStorage({}, t.services.postgres.storage);
      services.pgbouncer = { enabled: false };
    }
    if (t.services.redis) services.redis = withStorage({ replicas: t.services.redis.replicas, sentinels: 1, quorum: 1, minReplicasToWrite: 0 }, t.services.redis.storage);
    if (t.services.minio) services.minio = withStorage({ buckets: [{ name: 'images' }] }, t.services.minio.storage);
    const overrides: Record<string, unknown> = {};
    for (const [env, byService] of Object.entries(t.perEnvironment)) {
      // Maps merge key by key, so { kind: volume } over a base bind path keeps the path (a schema error, not this generator's subject).
      const mergeable = (service: string, storage: GeneratedOverride) => storage && service in services && !(storage.kind === 'volume' && t.services[service as keyof GeneratedTenant['services']]?.storage?.kind === 'bind');
      const own = Object.fromEntries(Object.entries(byService).filter(([service, storage]) => mergeable(service, storage)).map(([service, storage]) => [service, { storage }]));
      if (Object.keys(own).length > 0) overrides[env] = { services: own };
    }
    files[`tenants/${t.name}.yaml`] = { name: t.name, environments: t.environments, services, ...(Object.keys(overrides).length > 0 ? { overrides } : {}) };
  }
  return files;
}

/** An environment's `backup` section for its generated off-site choice. */
function offsiteSettings(offsite: GeneratedOffsite): Record<string, unknown> {
  if (offsite.mode === 'none') {
    const off = { offsite: false };
    return { defaults: { postgres: off, redis: off, qdrant: off, minio: off } };
  }
  return { offsite: offsite };
}

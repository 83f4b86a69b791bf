import type { EnvironmentConfig, StorageConfig } from './model';
import { BACKUP_SERVICE } from './container-labels';
import { containerName, volumeName } from './naming';
import type { TenantServices } from './schema';

/*
 * Where every stateful volume lives: the one place that says it. Constructs mount what
 * `volumeLocation` returns, and the cross-file checks (config/checks/storage.ts) compare the same
 * locations, so the layout that is checked is the layout that is deployed.
 *
 * | storage              | location                                          |
 * |----------------------|---------------------------------------------------|
 * | volume               | named volume `<env>-<tenant>-<service>-<purpose>`  |
 * | bind (environment)   | `<dataRoot>/<tenant>/<service>/<purpose>`          |
 * | bind (service path)  | `<path>/<service>/<purpose>`                       |
 * | nfs                  | `<server>:<export>/<tenant>/<service>/<purpose>`   |
 *
 * A service path holds neither tenant nor environment (existing data lives there, so it stays),
 * which is why the checks refuse two deployments that would share one.
 */

/** A service's own storage, overriding the environment's (`services.<s>.storage`). */
export type ServiceStorage = { readonly kind: 'volume' } | { readonly kind: 'bind'; readonly path: string };

/** Whose volume it is and what it holds. */
export interface VolumeIdentity {
  readonly environment: string;
  readonly tenant: string;
  /** The container the volume belongs to, e.g. "postgres" or "redis-1". */
  readonly service: string;
  /** What the volume holds, e.g. "data" or "snapshots". */
  readonly purpose: string;
}

export type VolumeLocation =
  | { readonly kind: 'volume'; readonly name: string }
  | { readonly kind: 'bind'; readonly hostPath: string }
  | { readonly kind: 'nfs'; readonly name: string; readonly server: string; readonly path: string; readonly options: string };

/** The tenant name the environment's shared Postgres server is deployed under. */
export const SHARED_TENANT = 'shared';

export function volumeLocation(storage: StorageConfig, override: ServiceStorage | undefined, id: VolumeIdentity): VolumeLocation {
  const name = volumeName(containerName(id.environment, id.tenant, id.service), id.purpose);
  if (override?.kind === 'bind') return { kind: 'bind', hostPath: under(override.path, id.service, id.purpose) };
  const directory = override?.kind === 'volume' ? undefined : tenantDirectory(storage, id.tenant);
  if (!directory) return { kind: 'volume', name };
  if (directory.kind === 'bind') return { kind: 'bind', hostPath: under(directory.hostPath, id.service, id.purpose) };
  return { kind: 'nfs', name, server: directory.server, path: under(directory.path, id.service, id.purpose), options: directory.options };
}

/** The directory that holds all of a tenant's volumes on the environment's bind or NFS storage (none for named volumes). */
export function tenantDirectory(
  storage: StorageConfig,
  tenant: string,
): { readonly kind: 'bind'; readonly hostPath: string } | { readonly kind: 'nfs'; readonly server: string; readonly path: string; readonly options: string } | undefined {
  if (storage.kind === 'bind') return { kind: 'bind', hostPath: under(storage.dataRoot, tenant) };
  if (storage.kind === 'nfs') return { kind: 'nfs', server: storage.server, path: under(storage.export, tenant), options: storage.options };
  return undefined;
}

/** `root/a/b`, for a root written with or without one trailing "/" (and "/" itself). */
function under(root: string, ...segments: string[]): string {
  return [root.replace(/\/$/, ''), ...segments].join('/');
}

/** A stateful volume of a tenant, and the `services.<s>` section whose storage it follows. */
export interface TenantVolume {
  readonly service: string;
  readonly purpose: string;
  /** The section of `services` whose `storage` applies; absent for the backup volume, always on the environment's storage. */
  readonly section?: 'postgres' | 'redis' | 'qdrant' | 'minio';
}

/**
 * Every stateful volume a tenant's constructs create (constructs/postgres.ts, redis-sentinel.ts,
 * qdrant.ts, object-store.ts, backup.ts). test/unit/config/storage-layout.test.ts compares this list
 * with what a synthesized tenant mounts, so a new volume in a construct cannot escape the checks.
 */
export function tenantVolumes(services: TenantServices, hasBackup: boolean): TenantVolume[] {
  const volumes: TenantVolume[] = [];
  const pg = services.postgres;
  if (pg?.enabled && pg.mode === 'dedicated') volumes.push({ service: 'postgres', purpose: 'data', section: 'postgres' });
  const redis = services.redis;
  if (redis?.enabled) {
    for (let i = 0; i <= redis.replicas; i++) volumes.push({ service: `redis-${i}`, purpose: 'data', section: 'redis' });
    for (let i = 1; i <= redis.sentinels; i++) volumes.push({ service: `sentinel-${i}`, purpose: 'state', section: 'redis' });
  }
  if (services.qdrant?.enabled) {
    volumes.push({ service: 'qdrant', purpose: 'storage', section: 'qdrant' }, { service: 'qdrant', purpose: 'snapshots', section: 'qdrant' });
  }
  if (services.minio?.enabled) volumes.push({ service: 'minio', purpose: 'data', section: 'minio' });
  if (hasBackup) volumes.push({ service: 'backup', purpose: 'backups' });
  return volumes;
}

/** The environment's shared Postgres server's one volume. */
export const SHARED_POSTGRES_VOLUME = { tenant: SHARED_TENANT, service: 'postgres', purpose: 'data' } as const;

/** The environment's archive of the shared server (its own backup agent's volume, like a tenant's backup volume). */
export const SHARED_POSTGRES_ARCHIVE_VOLUME = { tenant: SHARED_TENANT, service: BACKUP_SERVICE, purpose: 'backups' } as const;

/** One stateful volume of an environment, where it lives, and which service's image writes it. */
export interface EnvironmentVolume {
  readonly id: VolumeIdentity;
  /** The image family whose user owns the volume ("backup" is the backup agent's). */
  readonly image: 'postgres' | 'redis' | 'qdrant' | 'minio' | 'backup';
  readonly location: VolumeLocation;
}

/** Every stateful volume of a loaded environment: the shared Postgres server's and its archive's, then each tenant's (tenants sorted by name). */
export function environmentVolumes(env: EnvironmentConfig): EnvironmentVolume[] {
  const volumes: EnvironmentVolume[] = [];
  if (env.sharedPostgres) {
    const id = { environment: env.name, ...SHARED_POSTGRES_VOLUME };
    volumes.push({ id, image: 'postgres', location: volumeLocation(env.storage, undefined, id) });
  }
  if (env.sharedPostgresArchive) {
    const id = { environment: env.name, ...SHARED_POSTGRES_ARCHIVE_VOLUME };
    volumes.push({ id, image: 'backup', location: volumeLocation(env.storage, undefined, id) });
  }
  for (const tenant of env.tenants) {
    for (const v of tenantVolumes(tenant.services, Object.keys(tenant.backup).length > 0)) {
      const id = { environment: env.name, tenant: tenant.name, service: v.service, purpose: v.purpose };
      const override = v.section ? tenant.services[v.section]?.storage : undefined;
      volumes.push({ id, image: v.section ?? 'backup', location: volumeLocation(env.storage, override, id) });
    }
  }
  return volumes;
}

import type { PublishedPort, TenantPorts } from './ports';
import type { BackupService, EnvironmentFile, Retention, TenantServices } from './schema';

/**
 * The validated configuration, resolved so that constructs need no defaults, no file system and no
 * knowledge of YAML: relative paths are absolute, overrides are merged, ports are assigned.
 */
export interface TenantryConfig {
  /** Sorted by name. */
  readonly environments: EnvironmentConfig[];
}

export type StorageConfig =
  | { readonly kind: 'volume' }
  | { readonly kind: 'bind'; readonly dataRoot: string }
  | { readonly kind: 'nfs'; readonly server: string; readonly export: string; readonly options: string };

export interface EnvironmentConfig extends Omit<EnvironmentFile, 'storage' | 'backup'> {
  readonly storage: StorageConfig;
  readonly offsite: EnvironmentFile['backup']['offsite'];
  /**
   * The one bucket of "shared" mode, when this environment uses it or another environment names it
   * in `managedBy`: `declared` is false when another environment's stack declares it.
   */
  readonly sharedOffsiteBucket?: { readonly name: string; readonly declared: boolean };
  /**
   * Point-in-time recovery of the environment's shared server, by the environment's own backup
   * agent: its tenants' PITR. Absent without a shared server, or with PITR off in
   * `backup.defaults.postgres.pitr`.
   */
  readonly sharedPostgresArchive?: SharedPostgresArchiveConfig;
  /** Whether backup agents notify the `backup_webhook_url` Terraform variable's URL on failure. */
  readonly backupWebhook: boolean;
  /** The environment's file, as shown in messages. */
  readonly source: string;
  /** This environment's tenants, sorted by name. */
  readonly tenants: TenantConfig[];
}

export interface BackupJobConfig {
  readonly schedule: string;
  readonly verifySchedule?: string;
  readonly retention: Retention;
  readonly offsite: boolean;
  /**
   * Postgres only: point-in-time recovery (WAL streaming and base backups, with this job's
   * retention and off-site setting). Absent: off, or the tenant is on the shared server.
   */
  readonly pitr?: PitrConfig;
}

/**
 * The shared server's archive: one `postgres-pitr` job with the environment's Postgres retention
 * and off-site setting (`backup.defaults.postgres`).
 */
export interface SharedPostgresArchiveConfig extends BackupJobConfig {
  readonly pitr: PitrConfig;
  /**
   * Where its base backups and WAL go off-site, placed like a tenant named SHARED_TENANT's copies:
   * its own bucket `<bucket>-<env>-shared` (per-tenant mode) or the shared bucket, prefix
   * `<env>/shared`, credential `<env>-shared-backup`. Absent when `offsite` is false.
   */
  readonly offsiteTarget?: OffsiteTargetConfig;
}

export interface PitrConfig {
  readonly windowDays: number;
  /** Cron: when physical base backups are taken. */
  readonly baseBackupSchedule: string;
  /** Cron: when a recovery of the latest base backup plus WAL is verified. */
  readonly verifySchedule: string;
  readonly maxLagSeconds: number;
  /** The server's max_slot_wal_keep_size, in MiB. */
  readonly maxSlotWalKeepMb: number;
}

/** One tenant as deployed in one environment (its overrides for that environment applied). */
export interface TenantConfig {
  readonly name: string;
  readonly environment: string;
  /** The tenant's file, as shown in messages. */
  readonly source: string;
  readonly services: TenantServices;
  /** Backup job per stateful service that has one (absent: the service is off or its backup is). */
  readonly backup: Partial<Record<BackupService, BackupJobConfig>>;
  /** Host ports, when the environment publishes them. */
  readonly publishedPorts: TenantPorts<PublishedPort>;
  /** The tenant file's `portSlot`: it stays the tenant's in every environment, publishing or not. */
  readonly portSlot?: number;
  /** Where off-site copies go, when any backup job has `offsite: true`. */
  readonly offsite?: OffsiteTargetConfig;
}

/** One tenant's place in an off-site bucket, and the bucket's settings, resolved. */
export interface OffsiteTargetConfig {
  readonly bucket: string;
  /** `<env>/<tenant>`: the only keys this tenant's credential reaches. */
  readonly prefix: string;
  /** The IAM user of the tenant's off-site credential. */
  readonly credentialName: string;
  /** The bucket's region: that of the environment declaring it. */
  readonly region: string;
  /** @default AWS S3 */
  readonly endpoint?: string;
  /** @default SSE-S3 */
  readonly kmsKeyArn?: string;
}

/** Backup defaults when neither the environment nor the tenant says otherwise. */
export const DEFAULT_BACKUP_JOBS: Record<BackupService, BackupJobConfig> = {
  postgres: { schedule: '0 2 * * *', verifySchedule: '0 4 * * 0', retention: { daily: 7, weekly: 4, monthly: 6 }, offsite: true },
  redis: { schedule: '15 * * * *', retention: { daily: 7, weekly: 4, monthly: 3 }, offsite: true },
  qdrant: { schedule: '30 2 * * *', retention: { daily: 7, weekly: 4, monthly: 3 }, offsite: true },
  minio: { schedule: '45 2 * * *', retention: { daily: 7, weekly: 4, monthly: 3 }, offsite: true },
};

/**
 * Point-in-time recovery when neither the environment (`backup.defaults.postgres.pitr`) nor the
 * tenant (`backup.postgres.pitr`) says otherwise. On by default. Base backups at 03:00, apart from
 * the logical dump (02:00) and its verification (Sunday 04:00); their verification Sunday 05:00.
 * A week of window, like the seven daily dumps. 10 GiB of WAL kept for a receiver that is down:
 * beyond it the server drops the slot (the archive gets a gap, healed by the next base backup)
 * rather than fill its disk; the agent alerts at 50 % and 80 %.
 */
export const DEFAULT_PITR: PitrConfig & { readonly enabled: boolean } = {
  enabled: true,
  windowDays: 7,
  baseBackupSchedule: '0 3 * * *',
  verifySchedule: '0 5 * * 0',
  maxLagSeconds: 60,
  maxSlotWalKeepMb: 10240,
};

/** Whether an enabled service holds anything the backup agent would copy: a MinIO without buckets does not. */
export function holdsBackupData(services: TenantServices, service: BackupService): boolean {
  return service !== 'minio' || (services.minio?.buckets.length ?? 0) > 0;
}

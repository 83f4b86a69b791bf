import { DEFAULT_BACKUP_JOBS, DEFAULT_PITR, PitrConfig, SharedPostgresArchiveConfig } from './model';
import type { ParsedDeployment } from './parsed';
import type { EnvironmentFile, PitrSettings } from './schema';

/** Point-in-time recovery with the environment's defaults, then `own`, applied; undefined when it is off. */
export function resolvePitrSettings(env: EnvironmentFile, own: PitrSettings | undefined): PitrConfig | undefined {
  const resolved = { ...DEFAULT_PITR, ...stripUndefined(env.backup.defaults.postgres?.pitr), ...stripUndefined(own) };
  if (!resolved.enabled) return undefined;
  const { windowDays, baseBackupSchedule, verifySchedule, maxLagSeconds, maxSlotWalKeepMb } = resolved;
  return { windowDays, baseBackupSchedule, verifySchedule, maxLagSeconds, maxSlotWalKeepMb };
}

/**
 * The environment's shared server's own archive: its PITR follows `backup.defaults.postgres.pitr`
 * (on by default, like every tenant's), its base backups the environment's Postgres retention and
 * off-site setting. Where it goes off-site is the loader's (it knows the environment declaring a
 * shared bucket). Undefined without a shared server or with PITR off.
 */
export function sharedServerArchive(env: EnvironmentFile): Omit<SharedPostgresArchiveConfig, 'offsiteTarget'> | undefined {
  if (!env.sharedPostgres) return undefined;
  const pitr = resolvePitrSettings(env, undefined);
  if (!pitr) return undefined;
  const base = DEFAULT_BACKUP_JOBS.postgres;
  const defaults = env.backup.defaults.postgres;
  return {
    schedule: pitr.baseBackupSchedule,
    retention: { ...base.retention, ...stripUndefined(defaults?.retention) },
    offsite: defaults?.offsite ?? base.offsite,
    pitr,
  };
}

/** Whether the environment's archive of its shared server copies off-site (then it has a bucket, or a prefix, and a credential). */
export function sharedArchiveUsesOffsite(env: EnvironmentFile): boolean {
  return sharedServerArchive(env)?.offsite === true;
}

export function onSharedServer(d: Pick<ParsedDeployment, 'services'>): boolean {
  return d.services.postgres?.enabled === true && d.services.postgres.mode === 'shared';
}

/** Whether the tenant's Postgres can be restored to a point: its own server's job, or the environment's archive of the shared server. */
export function pitrCovers(d: ParsedDeployment): boolean {
  if (!d.jobs.postgres) return false;
  return onSharedServer(d) ? sharedServerArchive(d.environment.env) !== undefined : d.jobs.postgres.pitr !== undefined;
}

export function stripUndefined<T extends object>(o: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}

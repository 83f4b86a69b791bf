import type { JobConfig } from '../config';
import type { BackupOutcome, DriverContext, JobDriver, RestoreRequest } from './driver';
import { PitrDriver } from '../pitr/base-backup';
import { PostgresDriver } from './postgres/driver';
import { QdrantDriver } from './qdrant';
import { RedisDriver } from './redis';

export function driverFor(job: JobConfig): JobDriver {
  switch (job.kind) {
    case 'postgres':
      return new PostgresDriver(job);
    case 'postgres-pitr':
      return new PitrDriver(job);
    case 'redis':
      return new RedisDriver(job);
    case 'qdrant':
      return new QdrantDriver(job);
    case 'minio':
      return new LoadedOnUse(async () => new (await import('./minio')).MinioDriver(job));
  }
}

/**
 * A driver whose module loads when it is first used: MinIO's pulls in the AWS SDK, about 50 ms of
 * every agent start, which only its own runs need. (MinIO's driver has no beforeRestore and no
 * verify; this forwards exactly what it has.)
 */
class LoadedOnUse implements JobDriver {
  private loaded?: Promise<JobDriver>;

  constructor(private readonly load: () => Promise<JobDriver>) {}

  private driver(): Promise<JobDriver> {
    return (this.loaded ??= this.load());
  }

  async backup(dir: string, ctx: DriverContext): Promise<BackupOutcome> {
    return (await this.driver()).backup(dir, ctx);
  }

  async check(dir: string, details: Record<string, unknown>, ctx: DriverContext): Promise<string> {
    return (await this.driver()).check(dir, details, ctx);
  }

  async restore(request: RestoreRequest, ctx: DriverContext): Promise<string> {
    return (await this.driver()).restore(request, ctx);
  }
}

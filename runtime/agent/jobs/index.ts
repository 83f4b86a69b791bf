import type { JobConfig } from '../config';
import { UserError } from '../errors';
import type { JobDriver } from './driver';
import { MinioDriver } from './minio';
import { PostgresDriver } from './postgres/driver';
import { QdrantDriver } from './qdrant';
import { RedisDriver } from './redis';

export function driverFor(job: JobConfig): JobDriver {
  switch (job.kind) {
    case 'postgres':
      return new PostgresDriver(job);
    case 'redis':
      return new RedisDriver(job);
    case 'qdrant':
      return new QdrantDriver(job);
    case 'minio':
      return new MinioDriver(job);
    case 'postgres-pitr':
      // The base backup driver is runtime/agent/pitr/base-backup.ts (issue 12, helper pitrrestore); this branch streams WAL only.
      throw new UserError(`job ${job.name}: base backups of postgres-pitr jobs are not in this build`);
  }
}

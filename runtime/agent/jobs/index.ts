import type { JobConfig } from '../config';
import type { JobDriver } from './driver';
import { MinioDriver } from './minio';
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
      return new MinioDriver(job);
  }
}

import type { JobConfig } from '../config';
import { UserError } from '../errors';
import type { JobDriver } from './driver';
import { MinioDriver } from './minio';
import { PostgresDriver } from './postgres';
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
      throw new UserError(`job ${job.name}: this agent build has no point-in-time recovery driver yet (issue 12, WAL archiving)`);
  }
}

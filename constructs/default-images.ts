import type { EnvironmentConfig } from '../config/model';

/** Images every environment uses unless its `images` section replaces them (e.g. a registry mirror). */
export const DEFAULT_IMAGES = {
  postgres: (major: number) => `postgres:${major}-alpine`,
  pgbouncer: 'edoburu/pgbouncer:v1.23.1-p2',
  redis: 'redis:7.4.2-alpine',
  qdrant: (version: string) => `qdrant/qdrant:${version}`,
  // MinIO's community edition stopped publishing images in 2025; this is its last release.
  minio: 'minio/minio:RELEASE.2025-04-22T22-12-26Z',
  minioClient: 'minio/mc:RELEASE.2025-04-16T18-13-26Z',
} as const;

type Images = EnvironmentConfig['images'];

/**
 * The image an environment runs for a stateful service: its `images.<service>`, else the default
 * (for the service's version where the default depends on it). The constructs and the NFS
 * preparation script (stacks/nfs-prepare.ts, whose owners depend on the image) both ask here.
 */
export const environmentImage = {
  postgres: (images: Images, major: number): string => images.postgres ?? DEFAULT_IMAGES.postgres(major),
  redis: (images: Images): string => images.redis ?? DEFAULT_IMAGES.redis,
  qdrant: (images: Images, version: string): string => images.qdrant ?? DEFAULT_IMAGES.qdrant(version),
  minio: (images: Images): string => images.minio ?? DEFAULT_IMAGES.minio,
};

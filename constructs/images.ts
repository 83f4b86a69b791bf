import { Image } from '@cdktf/provider-docker/lib/image';
import { Construct } from 'constructs';

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

/**
 * One `docker_image` per distinct image reference in an environment, created the first time a
 * tenant asks for it. Containers use the image ID, so a re-tagged image upstream shows in the plan.
 */
export class EnvironmentImages extends Construct {
  private readonly images = new Map<string, Image>();

  /** The image ID for `reference`, pulling it into the environment's Docker host. */
  use(reference: string): string {
    let image = this.images.get(reference);
    if (!image) {
      image = new Image(this, reference.replace(/[^A-Za-z0-9]+/g, '-'), { name: reference, keepLocally: true });
      this.images.set(reference, image);
    }
    return image.imageId;
  }
}

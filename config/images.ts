/** The tag of an image reference ("16-alpine" in "registry:5000/postgres:16-alpine@sha256:…"), if it has one. */
export function imageTag(reference: string): string | undefined {
  const name = reference.split('@')[0];
  const colon = name.lastIndexOf(':');
  return colon > name.lastIndexOf('/') ? name.slice(colon + 1) : undefined;
}

/**
 * Whether an image reference names one version: a tag other than `latest`, or a digest. The
 * config layer refuses unpinned images at their key; the PinnedImagesPolicy aspect applies the
 * same rule to constructs used as a library.
 */
export function isPinned(reference: string): boolean {
  return /@sha256:[a-f0-9]{64}$/.test(reference) || (imageTag(reference) ?? 'latest') !== 'latest';
}

/**
 * Whether an image reference names an Alpine (musl) build: its tag says so ("7.4.2-alpine",
 * "alpine3.21"). The backup image copies the Redis tools out of the tenants' Redis image into an
 * Alpine image, where a Debian build's glibc binaries cannot run.
 */
export function isAlpineImage(reference: string): boolean {
  return /(^|[._-])alpine/.test(imageTag(reference) ?? '');
}

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

/** An environment's `images` section (config/schema.ts), spelled out here: the schema imports this module. */
type Images = Readonly<Partial<Record<'postgres' | 'pgbouncer' | 'redis' | 'qdrant' | 'minio' | 'minioClient' | 'backup', string>>>;

/**
 * The image an environment runs for a service: its `images.<service>`, else the default (for the
 * service's version where the default depends on it). The constructs and the NFS preparation
 * script (stacks/nfs-prepare.ts, whose owners depend on the image) both ask here.
 */
export const environmentImage = {
  postgres: (images: Images, major: number): string => images.postgres ?? DEFAULT_IMAGES.postgres(major),
  pgbouncer: (images: Images): string => images.pgbouncer ?? DEFAULT_IMAGES.pgbouncer,
  redis: (images: Images): string => images.redis ?? DEFAULT_IMAGES.redis,
  qdrant: (images: Images, version: string): string => images.qdrant ?? DEFAULT_IMAGES.qdrant(version),
  minio: (images: Images): string => images.minio ?? DEFAULT_IMAGES.minio,
  minioClient: (images: Images): string => images.minioClient ?? DEFAULT_IMAGES.minioClient,
};

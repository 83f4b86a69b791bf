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

/**
 * Whether an image reference names one version: a tag other than `latest`, or a digest. The
 * config layer refuses unpinned images at their key; the PinnedImagesPolicy aspect applies the
 * same rule to constructs used as a library.
 */
export function isPinned(reference: string): boolean {
  if (/@sha256:[a-f0-9]{64}$/.test(reference)) return true;
  const lastSegment = reference.slice(reference.lastIndexOf('/') + 1);
  const colon = lastSegment.indexOf(':');
  return colon > 0 && lastSegment.slice(colon + 1) !== 'latest';
}

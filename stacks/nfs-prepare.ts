import { imageTag } from '../config/images';
import type { EnvironmentConfig } from '../config/model';
import { environmentVolumes, EnvironmentVolume } from '../config/storage-layout';
import { environmentImage } from '../config/images';
import { shellScript, shQuote } from '../runtime/render/shell';

/*
 * What an NFS export needs before the first deploy. Docker's local driver mounts each volume's
 * sub-path (`device=:<export>/<tenant>/<service>/<purpose>`) when the container starts and fails
 * when that directory does not exist on the server, so on a fresh export nothing starts. Synthesis
 * writes, for each environment on NFS, `cdktf.out/stacks/<env>/nfs-prepare.sh`: run once as root
 * on the NFS server (or a host with the export mounted) before the first deploy and again after
 * tenants or services are added, it creates every volume directory that is missing, owned by the
 * user of the image that writes it, mode 0700.
 *
 * Existing directories are left as they are, never chowned or chmodded: they may hold data whose
 * files the service has given its own modes (Postgres insists on 0700), an operator may have
 * chosen another image and its user on purpose, and a recursive chown of a large tree at the wrong
 * moment would stop a running service. A directory appears under its final name only once its
 * owner and mode are set, so an interrupted run leaves nothing half-prepared that a re-run skips.
 */

/** The file synthesis writes beside each NFS environment's cdk.tf.json. */
export const NFS_PREPARE_SCRIPT = 'nfs-prepare.sh';

/** Every data directory is its service's alone: tenant data, readable by its owner only (Postgres refuses anything wider). */
const VOLUME_MODE = '0700';

/** The account that owns a volume directory, as the image defines it. */
interface ImageUser {
  readonly user: string;
  readonly uid: number;
  readonly gid: number;
}

/**
 * The user of each image Tenantry runs on a volume: the account its entrypoint (or Tenantry's
 * start script) hands the data directory to, or root where the server runs as root. The official
 * Postgres and Redis images define their accounts differently on Alpine and on Debian (read from
 * the Alpine and Debian Dockerfiles of docker-library/postgres and docker-library/redis); the tag
 * says which one an image is ("-alpine"), so a registry mirror of an official image gets its owner
 * right. Another image may use another account: the script says which line to change. The backup agent's account is created in
 * runtime/agent/Dockerfile (test/unit/synth/nfs-prepare.test.ts checks that it still is).
 */
export const IMAGE_USERS = {
  postgres: { alpine: { user: 'postgres', uid: 70, gid: 70 }, debian: { user: 'postgres', uid: 999, gid: 999 } },
  redis: { alpine: { user: 'redis', uid: 999, gid: 1000 }, debian: { user: 'redis', uid: 999, gid: 999 } },
  /** qdrant/qdrant runs as root unless built with another USER_ID. */
  qdrant: { alpine: { user: 'root', uid: 0, gid: 0 }, debian: { user: 'root', uid: 0, gid: 0 } },
  /** MinIO's entrypoint drops to another user only when MINIO_USERNAME is set, which Tenantry does not. */
  minio: { alpine: { user: 'root', uid: 0, gid: 0 }, debian: { user: 'root', uid: 0, gid: 0 } },
  backup: { alpine: { user: 'tenantry', uid: 10001, gid: 10001 }, debian: { user: 'tenantry', uid: 10001, gid: 10001 } },
} as const satisfies Record<EnvironmentVolume['image'], Record<Variant, ImageUser>>;

/** The image a volume's service runs in this environment ("the backup agent image" when Tenantry builds it). */
function imageOf(env: EnvironmentConfig, volume: EnvironmentVolume): string {
  const services = env.tenants.find((t) => t.name === volume.id.tenant)?.services;
  switch (volume.image) {
    case 'postgres':
      return environmentImage.postgres(env.images, services?.postgres?.version ?? env.sharedPostgres!.version);
    case 'redis':
      return environmentImage.redis(env.images);
    case 'qdrant':
      return environmentImage.qdrant(env.images, services!.qdrant!.version);
    case 'minio':
      return environmentImage.minio(env.images);
    case 'backup':
      return env.images.backup ?? 'the backup agent image built from runtime/agent/Dockerfile';
  }
}

type Variant = 'alpine' | 'debian';

/** Official images tag their Alpine builds "-alpine" (or "alpine"); the rest are Debian's. */
function variantOf(reference: string): Variant {
  return /(^|-)alpine/.test(imageTag(reference) ?? '') ? 'alpine' : 'debian';
}

/**
 * The preparation script for an environment on NFS storage, or undefined for any other storage.
 * Deterministic: the same configuration gives the same bytes.
 */
export function nfsPrepareScript(env: EnvironmentConfig): string | undefined {
  const storage = env.storage;
  if (storage.kind !== 'nfs') return undefined;
  const exportRoot = storage.export.replace(/\/$/, '');
  const volumes = environmentVolumes(env).flatMap((v) => (v.location.kind === 'nfs' ? [{ volume: v, path: v.location.path }] : []));

  // One owner variable per image family, set from the images this environment runs.
  const owners = new Map<EnvironmentVolume['image'], { variant: Variant; images: Set<string> }>();
  for (const { volume } of volumes) {
    const reference = imageOf(env, volume);
    const variant = variantOf(reference);
    const known = owners.get(volume.image);
    // Every Postgres of an environment runs images.postgres, or the defaults (all Alpine): one variant per family.
    if (known && known.variant !== variant) throw new Error(`internal: ${volume.image} volumes of environment "${env.name}" run both Alpine and Debian images`);
    if (known) known.images.add(reference);
    else owners.set(volume.image, { variant, images: new Set([reference]) });
  }
  const ownerLines = [...owners].map(([image, { variant, images }]) => {
    const user = IMAGE_USERS[image][variant];
    const otherVariant = variant === 'alpine' ? 'debian' : 'alpine';
    const other = IMAGE_USERS[image][otherVariant];
    const alternative = other.uid === user.uid && other.gid === user.gid ? '' : `; ${otherVariant === 'alpine' ? 'Alpine' : 'Debian'}-based: ${other.uid}:${other.gid}`;
    return `${image}_owner=${user.uid}:${user.gid}  # ${user.user} in ${[...images].sort().join(', ')}${alternative}`;
  });

  const why = [
    `Generated by Tenantry (npm run synth) for environment "${env.name}": re-synthesize rather than`,
    'edit, except the owner lines below.',
    `Prepares the NFS export ${storage.server}:${storage.export} before the first deploy, and again`,
    'after a tenant or service is added: Docker mounts each volume\'s directory of the export when its',
    'container starts, and fails when the directory does not exist. Run it as root where root may',
    'chown on the export (the NFS server itself, or a host that mounts it without root_squash), with',
    'the export\'s mount point there:',
    `  sh ${NFS_PREPARE_SCRIPT} ${storage.export}`,
    `It creates only the directories that are missing, each owned by its service's user, mode ${VOLUME_MODE},`,
    'and prints each one. Existing directories are left as they are (their data belongs to their',
    'service), so running it again is safe. The Docker host needs the export without root_squash too:',
    'the containers start as root and hand their directories to their users (README: Before the',
    'first deploy on NFS).',
    'Owners are the uid:gid each image runs its service as. For another image, set its line to that',
    'image\'s user, e.g. from: docker run --rm --entrypoint id IMAGE postgres',
  ];
  const body = [
    'umask 022',
    ...ownerLines,
    '',
    `if [ "$#" -ne 1 ]; then echo "usage: $0 <mount point of ${storage.server}:${storage.export}>" >&2; exit 2; fi`,
    'root="$1"',
    'if [ ! -d "$root" ]; then echo "nfs-prepare: $root is not a directory: give the mount point of the export" >&2; exit 2; fi',
    'if [ "$(id -u)" != 0 ]; then echo "nfs-prepare: run as root: the directories belong to the services\' users" >&2; exit 2; fi',
    '',
    '# prepare <directory under the export> <uid:gid>',
    'prepare() {',
    '  dir="$root/$1"',
    '  if [ -L "$dir" ] || { [ -e "$dir" ] && [ ! -d "$dir" ]; }; then',
    '    echo "nfs-prepare: $dir exists and is not a directory: move it away, then run this again" >&2',
    '    exit 1',
    '  fi',
    '  if [ -d "$dir" ]; then return 0; fi',
    '  mkdir -p "${dir%/*}"',
    '  partial="$dir.nfs-prepare-partial"',
    '  rmdir "$partial" 2>/dev/null || true',
    '  mkdir "$partial"',
    '  chown "$2" "$partial"',
    `  chmod ${VOLUME_MODE} "$partial"`,
    '  mv "$partial" "$dir"',
    `  echo "created $dir ($2, ${VOLUME_MODE})"`,
    '}',
    '',
    ...volumes.map(({ volume, path }) => `prepare ${shQuote(path.slice(exportRoot.length + 1))} "$${volume.image}_owner"`),
  ];
  return shellScript(why, body);
}

import { actionsOn, MINIO_BACKUP_S3_CALLS, s3Calls, S3CallTable } from '../agent/s3-calls';
import { isBucketName } from '../bucket-name';
import { requireEnvLine, shQuote, shellScript } from './shell';
import type { ContainerLaunch } from './types';
import { checkInteger, checkNonEmpty, checkPath } from './validate';

export interface MinioSetupRenderOptions {
  /** The object store's S3 endpoint, e.g. 'http://dev-acme-minio:9000'. */
  endpoint: string;
  buckets: { name: string; versioned: boolean }[];
  /** The application's MinIO user: read, write and list on the buckets above, nothing else. */
  applicationUser: string;
  /** The backup agent's MinIO user: exactly what the backup job calls (read only). */
  backupUser: string;
  /**
   * Where the setup script is uploaded.
   * @default '/tenantry'
   */
  scriptDir?: string;
  /**
   * How many times to ask the object store before giving up (it may still be starting).
   * @default 30
   */
  readyAttempts?: number;
  /**
   * Seconds between two attempts.
   * @default 2
   */
  readyIntervalSeconds?: number;
}

const RENDERER = 'renderMinioSetup';
const ALIAS = 'tenantry';
const SCRIPT_NAME = 'minio-setup.sh';
const ACCESS_KEY = /^[A-Za-z0-9_.@-]{3,128}$/;

/** The container's variables: root to set up, and the secret keys of the users it creates. */
export const MINIO_SETUP_ENV = {
  rootUser: 'MINIO_ROOT_USER',
  rootPassword: 'MINIO_ROOT_PASSWORD',
  applicationSecret: 'MINIO_APPLICATION_SECRET_KEY',
  backupSecret: 'MINIO_BACKUP_SECRET_KEY',
} as const;

/**
 * What applications do with their buckets: objects read, written, deleted, uploaded in parts;
 * buckets listed and located (SDKs ask for the region). Not creating or deleting buckets, not
 * changing their policy, versioning or lifecycle: those are the config's.
 */
export const APPLICATION_S3_CALLS = s3Calls({
  GetBucketLocationCommand: [], ListObjectsV2Command: [], ListMultipartUploadsCommand: [], GetObjectCommand: [],
  PutObjectCommand: [], DeleteObjectCommand: [], AbortMultipartUploadCommand: [], ListPartsCommand: [],
});

/**
 * A MinIO policy document (MinIO uses the AWS IAM policy language: Version, Statement, Effect,
 * Action, Resource as `arn:aws:s3:::<bucket>` and `arn:aws:s3:::<bucket>/*`) allowing `calls` on
 * `buckets` and nothing else.
 */
export function minioPolicy(calls: S3CallTable, buckets: readonly string[]): string {
  const statement = (sid: string, on: 'bucket' | 'object') => ({
    Sid: sid,
    Effect: 'Allow',
    Action: actionsOn(calls, on),
    Resource: buckets.map((b) => (on === 'bucket' ? `arn:aws:s3:::${b}` : `arn:aws:s3:::${b}/*`)),
  });
  const statements = [statement('TenantBuckets', 'bucket'), statement('TenantObjects', 'object')].filter((s) => s.Action.length > 0);
  return `${JSON.stringify({ Version: '2012-10-17', Statement: statements }, null, 2)}\n`;
}

interface Resolved extends MinioSetupRenderOptions {
  scriptDir: string;
  readyAttempts: number;
  readyIntervalSeconds: number;
}

function resolve(o: MinioSetupRenderOptions): Resolved {
  const resolved = { ...o, scriptDir: o.scriptDir ?? '/tenantry', readyAttempts: o.readyAttempts ?? 30, readyIntervalSeconds: o.readyIntervalSeconds ?? 2 };
  if (!/^https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?$/.test(resolved.endpoint)) {
    throw new Error(`${RENDERER}: endpoint must be http(s)://host[:port] (value: ${JSON.stringify(resolved.endpoint)})`);
  }
  checkNonEmpty(RENDERER, 'buckets', resolved.buckets.map(({ name }) => name));
  for (const [i, { name }] of resolved.buckets.entries()) {
    if (!isBucketName(name)) throw new Error(`${RENDERER}: buckets[${i}].name must be a valid S3 bucket name (value: ${JSON.stringify(name)})`);
  }
  for (const field of ['applicationUser', 'backupUser'] as const) {
    if (!ACCESS_KEY.test(resolved[field])) throw new Error(`${RENDERER}: ${field} must be a MinIO access key: 3-128 characters of A-Z, a-z, 0-9, "_.@-" (value: ${JSON.stringify(resolved[field])})`);
  }
  if (resolved.applicationUser === resolved.backupUser) throw new Error(`${RENDERER}: applicationUser and backupUser must differ (both ${JSON.stringify(resolved.backupUser)})`);
  checkPath(RENDERER, 'scriptDir', resolved.scriptDir);
  checkInteger(RENDERER, 'readyAttempts', resolved.readyAttempts, 1);
  checkInteger(RENDERER, 'readyIntervalSeconds', resolved.readyIntervalSeconds, 0);
  return resolved;
}

function bucketCommands(buckets: Resolved['buckets']): string[] {
  return buckets.flatMap(({ name, versioned }) => {
    const target = shQuote(`${ALIAS}/${name}`);
    return [`mc mb --ignore-existing ${target}`, `mc version ${versioned ? 'enable' : 'suspend'} ${target}`];
  });
}

/** Policy name, document file and user of each MinIO user the setup creates. */
function users(o: Resolved): { policy: string; file: string; user: string; secretEnv: string; document: string }[] {
  const buckets = o.buckets.map((b) => b.name);
  return [
    { policy: 'tenantry-application', file: `${o.scriptDir}/application-policy.json`, user: o.applicationUser, secretEnv: MINIO_SETUP_ENV.applicationSecret, document: minioPolicy(APPLICATION_S3_CALLS, buckets) },
    { policy: 'tenantry-backup', file: `${o.scriptDir}/backup-policy.json`, user: o.backupUser, secretEnv: MINIO_SETUP_ENV.backupSecret, document: minioPolicy(MINIO_BACKUP_S3_CALLS, buckets) },
  ];
}

/**
 * `mc admin policy create` replaces a policy of the same name and `mc admin user add` sets the
 * secret of an existing user, so both are safe to repeat; `mc admin policy attach` of a policy
 * already attached fails on mc releases before 2024-10 ("already in effect"), which is success here.
 */
function userCommands(o: Resolved): string[] {
  return [
    'attach() {',
    `  if ! out="$(mc admin policy attach ${ALIAS} "$1" --user "$2" 2>&1)"; then`,
    '    case "$out" in',
    '      *"already in effect"*) ;;',
    '      *) echo "tenantry: attaching policy $1 to $2 failed: $out" >&2; exit 1 ;;',
    '    esac',
    '  fi',
    '}',
    ...users(o).flatMap((u) => [
      `mc admin policy create ${ALIAS} ${u.policy} ${shQuote(u.file)} >/dev/null`,
      `mc admin user add ${ALIAS} ${shQuote(u.user)} "$${u.secretEnv}" >/dev/null`,
      `attach ${u.policy} ${shQuote(u.user)}`,
    ]),
  ];
}

/**
 * The keys go to `mc alias set` as arguments: MC_HOST_<alias> would keep them out of argv but
 * needs the secret URL-encoded, which busybox sh cannot do reliably, and this one-shot container
 * runs nothing but mc. The alias is set inside the wait loop because mc may probe the server
 * when an alias is set. `mc ls` (not MinIO's health endpoint) is the readiness check, so that any
 * S3-compatible server can stand in for MinIO, and it proves the credentials too.
 */
function setupScript(o: Resolved): string {
  return shellScript(
    [
      "Tenantry: waits for the tenant's object store, then creates its buckets, sets their",
      'versioning, and creates the application and backup users, each with a policy limited to',
      'those buckets. Safe to run again.',
    ],
    [
      ...Object.values(MINIO_SETUP_ENV).map(requireEnvLine),
      `endpoint=${shQuote(o.endpoint)}`,
      'answers() {',
      `  mc alias set --api S3v4 ${ALIAS} "$endpoint" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null &&`,
      `    mc ls ${ALIAS} >/dev/null`,
      '}',
      'attempt=1',
      'until error="$(answers 2>&1)"; do',
      `  if [ "$attempt" -ge ${o.readyAttempts} ]; then`,
      `    echo "tenantry: $endpoint did not answer after ${o.readyAttempts} attempts: $error" >&2`,
      '    exit 1',
      '  fi',
      '  attempt=$((attempt + 1))',
      `  sleep ${o.readyIntervalSeconds}`,
      'done',
      ...bucketCommands(o.buckets),
      ...userCommands(o),
    ],
  );
}

/** A one-shot container of the `minio/mc` image: the script replaces the image's `mc` entrypoint. */
export function renderMinioSetup(o: MinioSetupRenderOptions): ContainerLaunch {
  const resolved = resolve(o);
  const script = `${resolved.scriptDir}/${SCRIPT_NAME}`;
  return {
    files: [
      { path: script, content: setupScript(resolved), executable: true },
      ...users(resolved).map((u) => ({ path: u.file, content: u.document, executable: false })),
    ],
    entrypoint: ['/bin/sh', script],
    env: Object.values(MINIO_SETUP_ENV),
  };
}

import { isBucketName } from '../bucket-name';
import { requireEnvLine, shQuote, shellScript } from './shell';
import type { ContainerLaunch } from './types';
import { checkInteger, checkNonEmpty, checkPath } from './validate';

export interface MinioSetupRenderOptions {
  /** The object store's S3 endpoint, e.g. 'http://dev-acme-minio:9000'. */
  endpoint: string;
  buckets: { name: string; versioned: boolean }[];
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

/**
 * The keys go to `mc alias set` as arguments: MC_HOST_<alias> would keep them out of argv but
 * needs the secret URL-encoded, which busybox sh cannot do reliably, and this one-shot container
 * runs nothing but mc. The alias is set inside the wait loop because mc may probe the server
 * when an alias is set. `mc ls` (not MinIO's health endpoint) is the readiness check, so that any
 * S3-compatible server can stand in for MinIO, and it proves the credentials too.
 */
function setupScript(o: Resolved): string {
  return shellScript(
    ["Tenantry: waits for the tenant's object store, then creates its buckets and sets their", 'versioning. Safe to run again.'],
    [
      requireEnvLine('MINIO_ROOT_USER'),
      requireEnvLine('MINIO_ROOT_PASSWORD'),
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
    ],
  );
}

/** A one-shot container of the `minio/mc` image: the script replaces the image's `mc` entrypoint. */
export function renderMinioSetup(o: MinioSetupRenderOptions): ContainerLaunch {
  const resolved = resolve(o);
  const script = `${resolved.scriptDir}/${SCRIPT_NAME}`;
  return {
    files: [{ path: script, content: setupScript(resolved), executable: true }],
    entrypoint: ['/bin/sh', script],
    env: ['MINIO_ROOT_USER', 'MINIO_ROOT_PASSWORD'],
  };
}

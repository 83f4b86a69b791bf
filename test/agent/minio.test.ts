/**
 * The MinIO job through the S3 API, against s3rver (an S3 protocol stand-in: MinIO cannot run here).
 */
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { AgentConfig, MINIO_RESTORE_CREDENTIAL_ENV } from '../../runtime/agent/config';
import { sha256File } from '../../runtime/agent/durable';
import { renderManifest } from '../../runtime/agent/manifest';
import { createS3Client } from '../../runtime/agent/s3';
import { BackupStore } from '../../runtime/agent/store';
import { cli, manifests, writeConfig } from './harness';
import { S3RVER_CREDENTIALS, S3StandIn, startS3StandIn } from './standins';

interface StoredObject {
  key: string;
  body: string;
  contentType?: string;
  metadata?: Record<string, string>;
}

const OBJECTS: StoredObject[] = [
  { key: 'cat.png', body: randomBytes(300_000).toString('base64'), contentType: 'image/png', metadata: { owner: 'ada', 'source-app': 'upload' } },
  { key: 'albums/2025/summer/beach.jpg', body: 'jpeg bytes', contentType: 'image/jpeg' },
  { key: 'albums/2025', body: 'an object whose key is also a "folder" of others' },
  { key: 'odd/../key with spaces & ümlauts.txt', body: 'still just a key', contentType: 'text/plain; charset=utf-8' },
  { key: 'empty', body: '' },
];

async function objectsOf(s3: S3Client, bucket: string): Promise<StoredObject[]> {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
  const out: StoredObject[] = [];
  for (const { Key } of listed.Contents ?? []) {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key }));
    out.push({ key: Key ?? '', body: (await object.Body?.transformToString()) ?? '', contentType: object.ContentType, metadata: object.Metadata });
  }
  return out.sort((a, b) => a.key.localeCompare(b.key));
}

describe('MinIO backup job (s3rver as an S3 protocol stand-in for MinIO)', () => {
  let minio: S3StandIn;
  let s3: S3Client;
  let configPath: string;
  let config: AgentConfig;
  const env = { MINIO_ACCESS_KEY: S3RVER_CREDENTIALS.accessKeyId, MINIO_SECRET_KEY: S3RVER_CREDENTIALS.secretAccessKey };
  // s3rver has one credential; in a deployment the restore's is MinIO's root, the backup's a read-only user.
  const restoreEnv = {
    ...env,
    [MINIO_RESTORE_CREDENTIAL_ENV.restoreAccessKeyEnv]: S3RVER_CREDENTIALS.accessKeyId,
    [MINIO_RESTORE_CREDENTIAL_ENV.restoreSecretKeyEnv]: S3RVER_CREDENTIALS.secretAccessKey,
  };

  beforeAll(async () => {
    minio = await startS3StandIn(['images', 'thumbnails']);
    s3 = createS3Client({ region: 'us-east-1', endpoint: minio.endpoint, forcePathStyle: true, ...S3RVER_CREDENTIALS });
    for (const o of OBJECTS) {
      await s3.send(new PutObjectCommand({ Bucket: 'images', Key: o.key, Body: Buffer.from(o.body), ContentType: o.contentType, Metadata: o.metadata }));
    }
    await s3.send(new PutObjectCommand({ Bucket: 'thumbnails', Key: 'cat-small.png', Body: Buffer.from('small') }));
    const written = writeConfig({
      jobs: [{
        name: 'objects',
        kind: 'minio',
        schedule: '30 2 * * *',
        retention: { daily: 7, weekly: 4, monthly: 3 },
        offsite: false,
        minio: { endpoint: minio.endpoint, accessKeyEnv: 'MINIO_ACCESS_KEY', secretKeyEnv: 'MINIO_SECRET_KEY', ...MINIO_RESTORE_CREDENTIAL_ENV, buckets: ['images', 'thumbnails'], region: 'us-east-1' },
      }],
    });
    configPath = written.path;
    config = written.config;
  });

  afterAll(async () => {
    s3.destroy();
    await minio.stop();
  });

  test('copies every object of every bucket with its metadata, checked by count and ETag', async () => {
    const result = await cli(['run', 'objects', '--config', configPath], env);
    expect(result.code).toBe(0);
    const [manifest] = await manifests(config, 'objects');
    expect(manifest.details).toEqual({ buckets: { images: { objects: 5, bytes: expect.any(Number) }, thumbnails: { objects: 1, bytes: 5 } } });
    expect(manifest.check).toMatchObject({ method: 'object count and ETag', result: 'passed', details: '6 objects in 2 buckets match their ETags' });
  });

  test('a restore without the restore credential is refused with the command that passes it, and writes nothing', async () => {
    const result = await cli(['restore', 'objects', '--from', 'latest', '--only', 'images', '--target', 'images-unwritten', '--config', configPath], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('TENANTRY_RESTORE_MINIO_ACCESS_KEY and TENANTRY_RESTORE_MINIO_SECRET_KEY are not set');
    expect(result.stderr).toContain('docker exec -e TENANTRY_RESTORE_MINIO_ACCESS_KEY="$(terraform output -json admin_<tenant> | jq -r .minio_root.access_key)" -e TENANTRY_RESTORE_MINIO_SECRET_KEY=');
    expect(result.stderr).toContain('tenantry-agent restore objects --from');
    await expect(s3.send(new ListObjectsV2Command({ Bucket: 'images-unwritten' }))).rejects.toThrow();
  });

  test('restore into another bucket: same keys, bodies, content types and metadata', async () => {
    const result = await cli(['restore', 'objects', '--from', 'latest', '--only', 'images', '--target', 'images-restored', '--config', configPath], restoreEnv);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/restored 5 objects from images into images-restored/);
    expect(await objectsOf(s3, 'images-restored')).toEqual(await objectsOf(s3, 'images'));

    const refused = await cli(['restore', 'objects', '--from', 'latest', '--only', 'images', '--target', 'images-restored', '--config', configPath], restoreEnv);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe('tenantry-agent: bucket "images-restored" already holds objects; restore into another --target, or pass --force to overwrite objects of the same key\n');
  });

  test('verify finds an object that no longer matches its ETag, even when the manifest was rewritten to match', async () => {
    const store = new BackupStore(config.backupDir, 'objects');
    const [manifest] = await manifests(config, 'objects');
    const relative = 'buckets/images/objects/000001';
    const file = path.join(store.backupDir(manifest.id), relative);
    const original = fs.readFileSync(file);
    fs.writeFileSync(file, Buffer.concat([original.subarray(0, original.length - 1), Buffer.from('!')]));
    try {
      const bySha = await cli(['verify', manifest.id, '--config', configPath], env);
      expect(bySha.code).toBe(1);
      expect(bySha.stdout).toContain(`verification failed (sha256 + object count and ETag): ${relative}: sha256 `);

      // With the manifest's sha256 forged to match, the ETag from the source still catches it.
      const forged = { ...manifest, files: await Promise.all(manifest.files.map(async (f) => (f.path === relative ? { ...f, sha256: await sha256File(file) } : f))) };
      fs.writeFileSync(path.join(store.backupDir(manifest.id), 'manifest.json'), renderManifest(forged));
      const byEtag = await cli(['verify', manifest.id, '--config', configPath], env);
      expect(byEtag.code).toBe(1);
      expect(byEtag.stdout).toMatch(/verification failed \(sha256 \+ object count and ETag\): bucket images, key \S+: MD5 [0-9a-f]{32} does not match ETag [0-9a-f]{32}/);
    } finally {
      fs.writeFileSync(file, original);
      fs.writeFileSync(path.join(store.backupDir(manifest.id), 'manifest.json'), renderManifest(manifest));
    }
    const again = await cli(['verify', manifest.id, '--config', configPath], env);
    expect(again.stdout).toContain('verification passed (sha256 + object count and ETag): 6 objects in 2 buckets match their ETags');
  });
});

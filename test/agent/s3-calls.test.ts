/**
 * The policies are built from the tables in runtime/agent/s3-calls.ts; these tests hold the
 * tables to the code. Statically: every S3 command a runtime file imports is in its table, and
 * every table entry is imported. Dynamically, against s3rver (an S3 protocol stand-in: no AWS or
 * MinIO here): what an off-site upload, listing and download, and a MinIO backup, really send.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { MINIO_RESTORE_CREDENTIAL_ENV, OffsiteConfig } from '../../runtime/agent/config';
import { MinioDriver } from '../../runtime/agent/jobs/minio';
import { createLogger } from '../../runtime/agent/log';
import { Manifest } from '../../runtime/agent/manifest';
import { Offsite, PART_SIZE } from '../../runtime/agent/offsite';
import { MINIO_BACKUP_S3_CALLS, OFFSITE_S3_CALLS, S3_CALLS_BY_SOURCE } from '../../runtime/agent/s3-calls';
import { BackupStore } from '../../runtime/agent/store';
import { tempDir } from '../helpers/servers';
import { S3RVER_CREDENTIALS, S3StandIn, startS3StandIn } from './standins';

const REPO = path.resolve(__dirname, '../..');

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(full) : e.name.endsWith('.ts') ? [full] : [];
  });
}

/** The S3 commands a file imports from @aws-sdk/client-s3, and lib-storage's Upload. */
function s3CallsIn(text: string): string[] {
  const calls: string[] = [];
  for (const m of text.matchAll(/import\s*\{([^}]*)\}\s*from\s*'@aws-sdk\/(client-s3|lib-storage)'/g)) {
    const names = m[1].split(',').map((n) => n.trim().split(/\s+as\s+/)[0]).filter(Boolean);
    calls.push(...names.filter((n) => (m[2] === 'client-s3' ? n.endsWith('Command') : n === 'Upload')));
  }
  return calls.sort();
}

describe('S3 calls: the tables the policies come from match the code', () => {
  test('every runtime file that sends S3 commands sends exactly those of its tables', () => {
    const used: Record<string, string[]> = {};
    for (const file of sourceFiles(path.join(REPO, 'runtime'))) {
      const calls = s3CallsIn(fs.readFileSync(file, 'utf8'));
      if (calls.length > 0) used[path.relative(REPO, file)] = calls;
    }
    const listed = Object.fromEntries(
      Object.entries(S3_CALLS_BY_SOURCE).map(([file, tables]) => [file, [...new Set(tables.flatMap((t) => Object.keys(t)))].sort()]),
    );
    expect(used).toEqual(listed);
  });

  test('the scan finds commands, aliases and lib-storage uploads', () => {
    const text = "import { GetObjectCommand, PutObjectCommand as Put, S3Client } from '@aws-sdk/client-s3';\nimport { Upload } from '@aws-sdk/lib-storage';";
    expect(s3CallsIn(text)).toEqual(['GetObjectCommand', 'PutObjectCommand', 'Upload']);
  });

  describe('what the agent really sends (s3rver as the S3 protocol stand-in)', () => {
    let s3: S3StandIn;
    let sent: string[];
    let spy: jest.SpyInstance;
    const log = createLogger(() => undefined);
    const env = { KEY: S3RVER_CREDENTIALS.accessKeyId, SECRET: S3RVER_CREDENTIALS.secretAccessKey };

    beforeAll(async () => {
      s3 = await startS3StandIn(['offsite', 'images']);
    });
    afterAll(() => s3.stop());
    beforeEach(() => {
      sent = [];
      const send = S3Client.prototype.send;
      spy = jest.spyOn(S3Client.prototype, 'send').mockImplementation(function (this: S3Client, command: object, ...rest: unknown[]) {
        sent.push(command.constructor.name);
        return (send as (...args: unknown[]) => unknown).call(this, command, ...rest);
      } as typeof send);
    });
    afterEach(() => spy.mockRestore());

    test('an off-site upload (single and multipart), listing and download send only OFFSITE_S3_CALLS, and every one of them but the abort', async () => {
      const dir = tempDir('offsite-calls');
      const files = { 'big.bin': Buffer.alloc(PART_SIZE + 1000, 7), 'small.bin': Buffer.from('small') };
      for (const [name, body] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), body);
      const manifest: Manifest = {
        formatVersion: 1,
        tenant: 'acme',
        environment: 'prod',
        job: 'objects',
        kind: 'minio',
        id: 'objects-20250101T000000Z',
        status: 'ok',
        startedAt: '2025-01-01T00:00:00Z',
        endedAt: '2025-01-01T00:00:01Z',
        sizeBytes: PART_SIZE + 1005,
        files: Object.entries(files).map(([name, body]) => ({ path: name, size: body.length, sha256: createHash('sha256').update(body).digest('hex') })),
        source: { version: 'S3 API' },
        tools: {},
        details: {},
      } as Manifest;
      const config: OffsiteConfig = {
        bucket: 'offsite', prefix: 'prod/acme', region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true,
        accessKeyIdEnv: 'KEY', secretAccessKeyEnv: 'SECRET', retry: { attempts: 1, baseDelayMs: 1 },
      };
      const offsite = new Offsite(config, env, log);
      try {
        await offsite.upload(dir, manifest);
        expect(await offsite.listBackups('objects')).toEqual([manifest.id]);
        const store = new BackupStore(tempDir('offsite-calls-store'), 'objects');
        await store.ensureDir();
        await offsite.download('objects', manifest.id, store);
        // A postgres-pitr job's WAL segment goes up once; other bytes under its key are refused.
        const segment = path.join(dir, 'small.bin');
        await offsite.uploadWalFile('postgres-pitr', '7714382839368764142', segment, '000000010000000000000003');
        await offsite.uploadWalFile('postgres-pitr', '7714382839368764142', segment, '000000010000000000000003');
        await expect(offsite.uploadWalFile('postgres-pitr', '7714382839368764142', path.join(dir, 'big.bin'), '000000010000000000000003')).rejects.toThrow(
          'prod/acme/postgres-pitr/wal/7714382839368764142/000000010000000000000003 already holds other bytes',
        );
        expect(sent.filter((c) => c === 'PutObjectCommand')).toHaveLength(3); // big.bin is multipart: small.bin, the manifest, the segment
      } finally {
        offsite.close();
      }
      expect(new Set(sent)).toEqual(new Set(Object.keys(OFFSITE_S3_CALLS).filter((c) => c !== 'AbortMultipartUploadCommand')));
    });

    test('a MinIO backup sends only MINIO_BACKUP_S3_CALLS (what its read-only user holds)', async () => {
      const driver = new MinioDriver({
        name: 'objects', kind: 'minio', schedule: '@daily', retention: { daily: 1, weekly: 0, monthly: 0 }, offsite: false,
        minio: { endpoint: s3.endpoint, accessKeyEnv: 'KEY', secretKeyEnv: 'SECRET', ...MINIO_RESTORE_CREDENTIAL_ENV, buckets: ['images'], region: 'us-east-1' },
      });
      const upload = new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS });
      const { PutObjectCommand } = await import('@aws-sdk/client-s3');
      await upload.send(new PutObjectCommand({ Bucket: 'images', Key: 'cat.png', Body: Buffer.from('cat') }));
      upload.destroy();
      sent = [];

      await driver.backup(tempDir('minio-calls'), { log, signal: new AbortController().signal, env });
      expect(new Set(sent)).toEqual(new Set(Object.keys(MINIO_BACKUP_S3_CALLS)));
    });
  });
});

/**
 * MinIO (any S3-compatible store): every current object of each configured bucket, with its
 * metadata, copied through the S3 API. Object keys may contain anything ("a/../b", "a" next to
 * "a/b"), so objects are stored as numbered files with an index mapping them back to keys:
 *
 *   buckets/<bucket>/index.json       [{ key, file, size, etag, md5, contentType, metadata, … }]
 *   buckets/<bucket>/objects/<n>
 *
 * Old versions are not copied: the backup is of what the application sees now.
 */
import { CreateBucketCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { Readable } from 'stream';
import { pipeline } from 'stream/promises';
import type { JobConfig } from '../config';
import { secretFromEnv } from '../config';
import { UserError } from '../errors';
import { createS3Client, isMultipartEtag, plainEtag, s3ErrorName } from '../s3';
import { BackupOutcome, DriverContext, JobDriver, RestoreRequest, selectParts } from './driver';

type MinioJob = Extract<JobConfig, { kind: 'minio' }>;

interface IndexEntry {
  key: string;
  file: string;
  size: number;
  etag: string;
  md5: string;
  lastModified?: string;
  contentType?: string;
  cacheControl?: string;
  contentDisposition?: string;
  contentEncoding?: string;
  contentLanguage?: string;
  metadata: Record<string, string>;
}

interface MinioDetails {
  buckets: Record<string, { objects: number; bytes: number }>;
}

const PARALLEL_DOWNLOADS = 4;
const bucketDir = (dir: string, bucket: string) => path.join(dir, 'buckets', bucket);

export class MinioDriver implements JobDriver {
  private readonly minio: MinioJob['minio'];
  private readonly jobName: string;

  constructor(job: MinioJob) {
    this.minio = job.minio;
    this.jobName = job.name;
  }

  async backup(dir: string, ctx: DriverContext): Promise<BackupOutcome> {
    const s3 = this.client(this.minio.accessKeyEnv, this.minio.secretKeyEnv, ctx);
    const details: MinioDetails = { buckets: {} };
    try {
      for (const bucket of this.minio.buckets) {
        const index = await this.copyBucket(s3, bucket, dir, ctx);
        details.buckets[bucket] = { objects: index.length, bytes: index.reduce((sum, e) => sum + e.size, 0) };
        ctx.log.info('bucket copied', { bucket, objects: index.length });
      }
    } finally {
      s3.destroy();
    }
    return { source: { version: 'S3 API', address: this.minio.endpoint }, tools: {}, details: { ...details } };
  }

  private async copyBucket(s3: S3Client, bucket: string, dir: string, ctx: DriverContext): Promise<IndexEntry[]> {
    const target = bucketDir(dir, bucket);
    await fs.promises.mkdir(path.join(target, 'objects'), { recursive: true });
    const keys = await listKeys(s3, bucket, ctx.signal);
    const index: IndexEntry[] = new Array(keys.length);
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < keys.length; i = next++) index[i] = await downloadObject(s3, bucket, keys[i], target, String(i + 1).padStart(6, '0'), ctx.signal);
    };
    await Promise.all(Array.from({ length: PARALLEL_DOWNLOADS }, worker));
    await fs.promises.writeFile(path.join(target, 'index.json'), `${JSON.stringify(index, null, 1)}\n`);
    return index;
  }

  /**
   * Object count against the count at backup time, and every file against its ETag (an MD5 for
   * single-part uploads; multipart ETags are not, so those are checked by size and the MD5 taken
   * while downloading).
   */
  async check(dir: string, details: Record<string, unknown>): Promise<string> {
    const { buckets } = details as unknown as MinioDetails;
    let objects = 0;
    let multipart = 0;
    for (const [bucket, expected] of Object.entries(buckets)) {
      const index = await readIndex(dir, bucket);
      if (index.length !== expected.objects) throw new Error(`bucket ${bucket}: index lists ${index.length} objects, the backup copied ${expected.objects}`);
      for (const entry of index) {
        const file = path.join(bucketDir(dir, bucket), entry.file);
        const { md5, size } = await md5AndSize(file);
        if (size !== entry.size) throw new Error(`bucket ${bucket}, key ${entry.key}: file has ${size} bytes, the object had ${entry.size}`);
        const expectedMd5 = isMultipartEtag(entry.etag) ? entry.md5 : entry.etag;
        if (isMultipartEtag(entry.etag)) multipart++;
        if (md5 !== expectedMd5) throw new Error(`bucket ${bucket}, key ${entry.key}: MD5 ${md5} does not match ETag ${entry.etag}`);
      }
      objects += index.length;
    }
    const note = multipart > 0 ? ` (${multipart} multipart objects checked by size and download MD5)` : '';
    return `${objects} objects in ${Object.keys(buckets).length} buckets match their ETags${note}`;
  }

  async restore(request: RestoreRequest, ctx: DriverContext): Promise<string> {
    const { buckets } = request.manifest.details as unknown as MinioDetails;
    const sources = selectParts(Object.keys(buckets), request.only, 'bucket');
    if (request.target !== undefined && sources.length > 1) {
      throw new UserError(`--target names one bucket but the backup has ${sources.length} (${sources.join(', ')}); add --only <bucket>`);
    }
    const s3 = this.client(...this.restoreCredential(ctx), ctx);
    const done: string[] = [];
    try {
      for (const source of sources) {
        const target = request.target ?? source;
        await prepareBucket(s3, target, request.force);
        const index = await readIndex(request.dir, source);
        for (const entry of index) await uploadObject(s3, target, entry, path.join(bucketDir(request.dir, source), entry.file), ctx.signal);
        done.push(`${index.length} objects ${source === target ? `into ${target}` : `from ${source} into ${target}`}`);
      }
    } finally {
      s3.destroy();
    }
    return `restored ${done.join(', ')} at ${this.minio.endpoint}`;
  }

  private client(accessKeyEnv: string, secretKeyEnv: string, ctx: DriverContext): S3Client {
    return createS3Client({
      region: this.minio.region,
      endpoint: this.minio.endpoint,
      forcePathStyle: true, // MinIO serves buckets as paths unless configured with a domain
      accessKeyId: secretFromEnv(accessKeyEnv, ctx.env),
      secretAccessKey: secretFromEnv(secretKeyEnv, ctx.env),
    });
  }

  /** The agent's own MinIO user only reads: a restore writes, with a credential passed for it alone. */
  private restoreCredential(ctx: DriverContext): [string, string] {
    const { restoreAccessKeyEnv: access, restoreSecretKeyEnv: secret } = this.minio;
    const missing = [access, secret].filter((name) => !ctx.env[name]);
    if (missing.length > 0) {
      throw new UserError(
        `restoring MinIO writes to its buckets, which the backup agent's own MinIO user (read only) may not: ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not set. ` +
          `Pass the root credential for this restore only, from the operators' output: ` +
          `docker exec -e ${access}="$(terraform output -json admin_<tenant> | jq -r .minio_root.access_key)" -e ${secret}="$(terraform output -json admin_<tenant> | jq -r .minio_root.secret_key)" <env>-<tenant>-backup tenantry-agent restore ${this.jobName} --from … (see the README, "Restore")`,
      );
    }
    return [access, secret];
  }
}

async function listKeys(s3: S3Client, bucket: string, signal: AbortSignal): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }), { abortSignal: signal });
    keys.push(...(page.Contents ?? []).map((o) => o.Key ?? ''));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

async function downloadObject(s3: S3Client, bucket: string, key: string, target: string, name: string, signal: AbortSignal): Promise<IndexEntry> {
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
  const file = `objects/${name}`;
  const hash = createHash('md5');
  let size = 0;
  await pipeline(
    object.Body as Readable,
    async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        hash.update(chunk);
        size += chunk.length;
        yield chunk;
      }
    },
    fs.createWriteStream(path.join(target, file)),
  );
  return {
    key,
    file,
    size,
    etag: plainEtag(object.ETag),
    md5: hash.digest('hex'),
    lastModified: object.LastModified?.toISOString(),
    contentType: object.ContentType,
    cacheControl: object.CacheControl,
    contentDisposition: object.ContentDisposition,
    contentEncoding: object.ContentEncoding,
    contentLanguage: object.ContentLanguage,
    metadata: object.Metadata ?? {},
  };
}

async function readIndex(dir: string, bucket: string): Promise<IndexEntry[]> {
  return JSON.parse(await fs.promises.readFile(path.join(bucketDir(dir, bucket), 'index.json'), 'utf8')) as IndexEntry[];
}

async function md5AndSize(file: string): Promise<{ md5: string; size: number }> {
  const hash = createHash('md5');
  let size = 0;
  for await (const chunk of fs.createReadStream(file)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { md5: hash.digest('hex'), size };
}

/** Creates the bucket if needed; refuses one that holds objects unless forced. */
async function prepareBucket(s3: S3Client, bucket: string, force: boolean): Promise<void> {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch (error) {
    if (!['NotFound', 'NoSuchBucket'].includes(s3ErrorName(error))) throw error;
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  }
  // The first page answers "is it empty?"; no MaxKeys, as some S3 servers fail to page tiny pages.
  const existing = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
  if ((existing.KeyCount ?? 0) > 0 && !force) {
    throw new UserError(`bucket "${bucket}" already holds objects; restore into another --target, or pass --force to overwrite objects of the same key`);
  }
}

/** Above this, objects go up in parts (PutObject stops at 5 GiB). */
const MULTIPART_FROM = 64 * 1024 * 1024;

async function uploadObject(s3: S3Client, bucket: string, entry: IndexEntry, file: string, signal: AbortSignal): Promise<void> {
  const properties = {
    Bucket: bucket,
    Key: entry.key,
    ContentType: entry.contentType,
    CacheControl: entry.cacheControl,
    ContentDisposition: entry.contentDisposition,
    ContentEncoding: entry.contentEncoding,
    ContentLanguage: entry.contentLanguage,
    Metadata: entry.metadata,
  };
  if (entry.size > MULTIPART_FROM) {
    const upload = new Upload({ client: s3, params: { ...properties, Body: fs.createReadStream(file) }, partSize: MULTIPART_FROM });
    signal.addEventListener('abort', () => void upload.abort(), { once: true });
    await upload.done();
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: entry.key }));
    if (head.ContentLength !== entry.size) throw new Error(`bucket ${bucket}, key ${entry.key}: the server stored ${head.ContentLength} bytes, expected ${entry.size}`);
    return;
  }
  const result = await s3.send(
    new PutObjectCommand({ ...properties, Body: fs.createReadStream(file), ContentLength: entry.size, ContentMD5: Buffer.from(entry.md5, 'hex').toString('base64') }),
    { abortSignal: signal },
  );
  if (plainEtag(result.ETag) !== entry.md5) throw new Error(`bucket ${bucket}, key ${entry.key}: the server stored ETag ${plainEtag(result.ETag)}, expected MD5 ${entry.md5}`);
}

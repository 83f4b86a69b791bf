/**
 * Off-site copies in S3: `<prefix>/<job>/<backup-id>/<file>`, manifest.json last, so a backup
 * whose manifest exists remotely is complete there. Every request has Content-MD5 and its ETag is
 * compared with the MD5 we computed (per part for multipart uploads); each object also carries
 * its sha256 as metadata, and downloads are checked against the manifest's sha256 list.
 *
 * The agent never deletes remote copies, so a compromised or buggy agent cannot erase them; the
 * bucket's lifecycle expires none either (see the OffsiteBucket construct): an operator prunes them.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { Readable } from 'stream';
import { pipeline } from 'stream/promises';
import { OffsiteConfig, secretFromEnv } from './config';
import { sha256File } from './durable';
import type { Logger } from './log';
import { Manifest, MANIFEST_FILE, parseManifest, renderManifest } from './manifest';
import { withRetry } from './retry';
import { createS3Client, plainEtag } from './s3';
import type { BackupStore } from './store';

/** Files larger than this go up in parts of this size (S3 allows 10,000 parts: 160 GiB). */
export const PART_SIZE = 16 * 1024 * 1024;

export class Offsite {
  private readonly s3: S3Client;

  constructor(private readonly config: OffsiteConfig, env: NodeJS.ProcessEnv, private readonly log: Logger) {
    this.s3 = createS3Client({
      region: config.region,
      endpoint: config.endpoint,
      forcePathStyle: config.forcePathStyle,
      accessKeyId: secretFromEnv(config.accessKeyIdEnv, env),
      secretAccessKey: secretFromEnv(config.secretAccessKeyEnv, env),
      maxAttempts: 1, // our backoff below is the only retry loop, so logs show every attempt
    });
  }

  location(job: string, id: string): string {
    return `s3://${this.config.bucket}/${this.key(job, id, '')}`;
  }

  /** Uploads every file of a finished backup, then its manifest; throws once retries are spent. */
  async upload(dir: string, manifest: Manifest): Promise<void> {
    for (const file of manifest.files) {
      await this.uploadFile(path.join(dir, file.path), this.key(manifest.job, manifest.id, file.path), file.sha256);
    }
    const body = Buffer.from(renderManifest(manifest));
    await this.putObject(this.key(manifest.job, manifest.id, MANIFEST_FILE), body, createHash('sha256').update(body).digest('hex'));
  }

  /**
   * Copies one completed WAL segment (or history file) of a postgres-pitr job to
   * `<prefix>/<job>/wal/<system-identifier>/<name>`, once: an object already there with the same
   * sha256 counts as copied, one with other bytes is refused (never overwritten).
   */
  async uploadWalFile(job: string, systemIdentifier: string, file: string, name: string): Promise<void> {
    const key = `${this.jobPrefix(job)}wal/${systemIdentifier}/${name}`;
    const sha256 = await sha256File(file);
    const existing = await this.retry(`look up ${key}`, async () => {
      try {
        return await this.s3.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: key }));
      } catch (error) {
        if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
        throw error;
      }
    });
    if (existing !== undefined) {
      if (existing.Metadata?.sha256 === sha256) return;
      throw new Error(`s3://${this.config.bucket}/${key} already holds other bytes (sha256 ${existing.Metadata?.sha256 ?? 'unknown'}, local ${sha256}); it is never overwritten`);
    }
    await this.uploadFile(file, key, sha256);
  }

  /** Ids of the job's complete remote backups (those with a manifest), oldest first. */
  async listBackups(job: string): Promise<string[]> {
    const prefix = this.jobPrefix(job);
    const ids: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.retry(`list s3://${this.config.bucket}/${prefix}`, () =>
        this.s3.send(new ListObjectsV2Command({ Bucket: this.config.bucket, Prefix: prefix, ContinuationToken: token })),
      );
      for (const object of page.Contents ?? []) {
        const rest = (object.Key ?? '').slice(prefix.length);
        if (rest.endsWith(`/${MANIFEST_FILE}`) && rest.split('/').length === 2) ids.push(rest.split('/')[0]);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return ids.sort();
  }

  /**
   * Fetches a remote backup into the local store (through a partial directory, like a backup run)
   * and checks every file against the manifest's sha256 before promoting it.
   */
  async download(job: string, id: string, store: BackupStore): Promise<Manifest> {
    const manifestKey = this.key(job, id, MANIFEST_FILE);
    const manifest = parseManifest((await this.getObject(manifestKey)).toString('utf8'), `s3://${this.config.bucket}/${manifestKey}`);
    const partial = await store.createPartial(id);
    try {
      for (const file of manifest.files) {
        const target = path.join(partial, file.path);
        await fs.promises.mkdir(path.dirname(target), { recursive: true });
        await this.retry(`download ${file.path}`, () => this.downloadTo(this.key(job, id, file.path), target));
        const actual = await sha256File(target);
        if (actual !== file.sha256) throw new Error(`off-site copy of ${file.path} has sha256 ${actual}, the manifest says ${file.sha256}`);
      }
      await store.promote({ ...manifest, offsite: { status: 'uploaded', at: manifest.offsite?.at, location: this.location(job, id) } });
    } catch (error) {
      await fs.promises.rm(partial, { recursive: true, force: true });
      throw error;
    }
    return store.read(id);
  }

  private jobPrefix(job: string): string {
    return `${this.config.prefix}/${job}/`;
  }

  private key(job: string, id: string, file: string): string {
    return `${this.jobPrefix(job)}${id}/${file}`;
  }

  private async uploadFile(file: string, key: string, sha256: string): Promise<void> {
    const size = (await fs.promises.stat(file)).size;
    if (size <= PART_SIZE) return this.putObject(key, await fs.promises.readFile(file), sha256);
    return this.uploadMultipart(file, key, size, sha256);
  }

  private putObject(key: string, body: Buffer, sha256: string): Promise<void> {
    const md5 = createHash('md5').update(body).digest();
    return this.retry(`upload ${key}`, async () => {
      const result = await this.s3.send(
        new PutObjectCommand({ Bucket: this.config.bucket, Key: key, Body: body, ContentMD5: md5.toString('base64'), Metadata: { sha256 } }),
      );
      if (plainEtag(result.ETag) !== md5.toString('hex')) throw new Error(`S3 stored ETag ${plainEtag(result.ETag)}, expected MD5 ${md5.toString('hex')}`);
    });
  }

  private async uploadMultipart(file: string, key: string, size: number, sha256: string): Promise<void> {
    const created = await this.retry(`start multipart upload of ${key}`, () =>
      this.s3.send(new CreateMultipartUploadCommand({ Bucket: this.config.bucket, Key: key, Metadata: { sha256 } })),
    );
    const uploadId = created.UploadId ?? '';
    try {
      const parts: { ETag: string; PartNumber: number }[] = [];
      const handle = await fs.promises.open(file, 'r');
      try {
        for (let offset = 0, partNumber = 1; offset < size; offset += PART_SIZE, partNumber++) {
          const chunk = Buffer.alloc(Math.min(PART_SIZE, size - offset));
          await handle.read(chunk, 0, chunk.length, offset);
          parts.push({ ETag: await this.uploadPart(key, uploadId, partNumber, chunk), PartNumber: partNumber });
        }
      } finally {
        await handle.close();
      }
      await this.retry(`complete multipart upload of ${key}`, () =>
        this.s3.send(new CompleteMultipartUploadCommand({ Bucket: this.config.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } })),
      );
    } catch (error) {
      // Parts of an abandoned upload are billed until aborted.
      await this.s3.send(new AbortMultipartUploadCommand({ Bucket: this.config.bucket, Key: key, UploadId: uploadId })).catch(() => undefined);
      throw error;
    }
  }

  private uploadPart(key: string, uploadId: string, partNumber: number, chunk: Buffer): Promise<string> {
    const md5 = createHash('md5').update(chunk).digest();
    return this.retry(`upload part ${partNumber} of ${key}`, async () => {
      const result = await this.s3.send(
        new UploadPartCommand({ Bucket: this.config.bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: chunk, ContentMD5: md5.toString('base64') }),
      );
      if (plainEtag(result.ETag) !== md5.toString('hex')) throw new Error(`S3 stored part ETag ${plainEtag(result.ETag)}, expected MD5 ${md5.toString('hex')}`);
      return result.ETag ?? '';
    });
  }

  private async getObject(key: string): Promise<Buffer> {
    return this.retry(`download ${key}`, async () => {
      const result = await this.s3.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: key }));
      return Buffer.from(await (result.Body as Readable & { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
    });
  }

  private async downloadTo(key: string, target: string): Promise<void> {
    const result = await this.s3.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: key }));
    await pipeline(result.Body as Readable, fs.createWriteStream(target));
  }

  private retry<T>(what: string, call: () => Promise<T>): Promise<T> {
    return withRetry(what, this.config.retry, this.log, call);
  }

  close(): void {
    this.s3.destroy();
  }
}

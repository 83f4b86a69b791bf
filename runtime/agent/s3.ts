/**
 * S3 clients for the off-site bucket and for MinIO sources. Checksums are Content-MD5 on every
 * write, compared with the ETag S3 returns, because every S3-compatible server honours them; the
 * SDK's newer flexible checksums (aws-chunked trailers) are switched off, since many of those
 * servers reject or ignore them.
 */
import { S3Client } from '@aws-sdk/client-s3';

export interface S3Endpoint {
  region: string;
  endpoint?: string;
  forcePathStyle?: boolean;
  accessKeyId: string;
  secretAccessKey: string;
  /** SDK-level attempts; callers that run their own backoff pass 1. */
  maxAttempts?: number;
}

export function createS3Client(endpoint: S3Endpoint): S3Client {
  return new S3Client({
    region: endpoint.region,
    endpoint: endpoint.endpoint,
    forcePathStyle: endpoint.forcePathStyle ?? false,
    credentials: { accessKeyId: endpoint.accessKeyId, secretAccessKey: endpoint.secretAccessKey },
    maxAttempts: endpoint.maxAttempts ?? 3,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** An ETag without its quotes; multipart ETags end in `-<parts>` and are not an MD5. */
export function plainEtag(etag: string | undefined): string {
  return (etag ?? '').replace(/"/g, '');
}

export function isMultipartEtag(etag: string): boolean {
  return etag.includes('-');
}

/** The S3 error name, for messages ("NoSuchBucket", "AccessDenied", …). */
export function s3ErrorName(error: unknown): string {
  return (error as { name?: string }).name ?? 'Error';
}

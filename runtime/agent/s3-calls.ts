/**
 * Every S3 call the agent makes, by its @aws-sdk/client-s3 command (or @aws-sdk/lib-storage
 * helper), and what a policy must allow for it. The off-site credential and the agent's MinIO user
 * are built from these tables, so they hold exactly what the agent calls; a test reads runtime/
 * and fails when a file sends a command its table lacks, or a table lists one nobody sends.
 */

/** What IAM (or MinIO's IAM-compatible policies) must allow for one call. */
export interface S3Call {
  readonly action: string;
  /** The action applies to the bucket (`arn:…:bucket`) or to its objects (`arn:…:bucket/<key>`). */
  readonly on: 'bucket' | 'object';
  /** What S3 asks KMS for on the caller's behalf when the bucket encrypts with SSE-KMS. */
  readonly kms: readonly string[];
}

export type S3CallTable = Readonly<Record<string, S3Call>>;

/**
 * The IAM action each S3 command needs, and on what: one place for the mapping every table below
 * (and the application's, runtime/render/minio-setup.ts) uses.
 */
const S3_ACTIONS = {
  GetBucketLocationCommand: { action: 's3:GetBucketLocation', on: 'bucket' },
  HeadBucketCommand: { action: 's3:ListBucket', on: 'bucket' },
  CreateBucketCommand: { action: 's3:CreateBucket', on: 'bucket' },
  ListObjectsV2Command: { action: 's3:ListBucket', on: 'bucket' },
  ListMultipartUploadsCommand: { action: 's3:ListBucketMultipartUploads', on: 'bucket' },
  GetObjectCommand: { action: 's3:GetObject', on: 'object' },
  HeadObjectCommand: { action: 's3:GetObject', on: 'object' },
  PutObjectCommand: { action: 's3:PutObject', on: 'object' },
  DeleteObjectCommand: { action: 's3:DeleteObject', on: 'object' },
  CreateMultipartUploadCommand: { action: 's3:PutObject', on: 'object' },
  UploadPartCommand: { action: 's3:PutObject', on: 'object' },
  CompleteMultipartUploadCommand: { action: 's3:PutObject', on: 'object' },
  AbortMultipartUploadCommand: { action: 's3:AbortMultipartUpload', on: 'object' },
  ListPartsCommand: { action: 's3:ListMultipartUploadParts', on: 'object' },
  /** lib-storage's multipart upload: CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload. */
  Upload: { action: 's3:PutObject', on: 'object' },
} as const satisfies Record<string, Omit<S3Call, 'kms'>>;

export type S3Command = keyof typeof S3_ACTIONS;

/** A table of the calls `commands` names, each with the KMS actions it needs under SSE-KMS (none: []), in the order given. */
export function s3Calls(commands: Partial<Record<S3Command, readonly string[]>>): S3CallTable {
  return Object.fromEntries(Object.entries(commands).map(([command, kms]) => [command, { ...S3_ACTIONS[command as S3Command], kms }]));
}

/**
 * runtime/agent/offsite.ts: uploads (single and multipart), listing and downloads. No delete, so
 * a leaked credential cannot erase backups: the agent's retention is local only, and off-site
 * copies stay until an operator deletes them (constructs/offsite-bucket.ts, README "Backups").
 * Multipart uploads need kms:Decrypt as well (S3 reads the encrypted parts to complete them).
 */
export const OFFSITE_S3_CALLS = s3Calls({
  PutObjectCommand: ['kms:GenerateDataKey'],
  CreateMultipartUploadCommand: ['kms:GenerateDataKey'],
  UploadPartCommand: ['kms:GenerateDataKey'],
  CompleteMultipartUploadCommand: ['kms:Decrypt'],
  AbortMultipartUploadCommand: [],
  ListObjectsV2Command: [],
  GetObjectCommand: ['kms:Decrypt'],
  /** A WAL segment is uploaded once: its key is looked up first (offsite.ts uploadWalFile). */
  HeadObjectCommand: [],
});

/** runtime/agent/jobs/minio.ts, backup: the agent's own MinIO user holds exactly these (read only). */
export const MINIO_BACKUP_S3_CALLS = s3Calls({ ListObjectsV2Command: [], GetObjectCommand: [] });

/**
 * runtime/agent/jobs/minio.ts, restore: writes, so it runs with the root credential an operator
 * passes for that one restore (no policy is built from this table; it documents what restore needs).
 */
export const MINIO_RESTORE_S3_CALLS = s3Calls({
  HeadBucketCommand: [], CreateBucketCommand: [], ListObjectsV2Command: [], PutObjectCommand: [], HeadObjectCommand: [], Upload: [],
});

/** Which runtime file sends the calls of which tables (the source scan checks each file against them). */
export const S3_CALLS_BY_SOURCE: Readonly<Record<string, readonly S3CallTable[]>> = {
  'runtime/agent/offsite.ts': [OFFSITE_S3_CALLS],
  'runtime/agent/jobs/minio.ts': [MINIO_BACKUP_S3_CALLS, MINIO_RESTORE_S3_CALLS],
};

/** The table's IAM actions on buckets or on objects, sorted and without repeats. */
export function actionsOn(table: S3CallTable, on: S3Call['on']): string[] {
  return [...new Set(Object.values(table).filter((call) => call.on === on).map((call) => call.action))].sort();
}

/** The KMS actions the table's calls need under SSE-KMS, sorted and without repeats. */
export function kmsActions(table: S3CallTable): string[] {
  return [...new Set(Object.values(table).flatMap((call) => call.kms))].sort();
}

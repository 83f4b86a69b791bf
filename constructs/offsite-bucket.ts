import { S3Bucket } from '@cdktf/provider-aws/lib/s3-bucket';
import { S3BucketLifecycleConfiguration } from '@cdktf/provider-aws/lib/s3-bucket-lifecycle-configuration';
import { S3BucketObjectLockConfigurationA } from '@cdktf/provider-aws/lib/s3-bucket-object-lock-configuration';
import { S3BucketPolicy } from '@cdktf/provider-aws/lib/s3-bucket-policy';
import { S3BucketPublicAccessBlock } from '@cdktf/provider-aws/lib/s3-bucket-public-access-block';
import { S3BucketServerSideEncryptionConfigurationA } from '@cdktf/provider-aws/lib/s3-bucket-server-side-encryption-configuration';
import { S3BucketVersioningA } from '@cdktf/provider-aws/lib/s3-bucket-versioning';
import { DataAwsPartition } from '@cdktf/provider-aws/lib/data-aws-partition';
import { Construct } from 'constructs';
import { BUCKET_NAME_RULE, isBucketName } from '../runtime/bucket-name';

/**
 * How long a replaced or deleted backup object stays recoverable by default: a month to notice a
 * mistaken deletion, or a backup overwritten by a compromised host, before S3 expires it.
 */
export const NONCURRENT_VERSION_DAYS = 30;

/**
 * A multipart upload the agent abandoned (killed mid-copy) is billed until it is aborted; the agent
 * starts its copies afresh, so one a week old will never complete.
 */
const INCOMPLETE_UPLOAD_DAYS = 7;

export interface OffsiteBucketProps {
  /** Globally unique S3 bucket name. */
  readonly bucketName: string;
  /** Tags for cost allocation and ownership. */
  readonly tags: Readonly<Record<string, string>>;
  /**
   * Server-side encryption with this KMS key.
   * @default SSE-S3 (AES256) when no key is given
   */
  readonly kmsKeyArn?: string;
  /**
   * Days a replaced or deleted backup object (a noncurrent version) is kept before S3 expires it.
   * @default NONCURRENT_VERSION_DAYS, or the object-lock period when that is longer
   */
  readonly noncurrentDays?: number;
  /**
   * Write-once retention for every new object version (S3 Object Lock). Only settable when the
   * bucket is created.
   * @default no object lock
   */
  readonly objectLock?: {
    /** GOVERNANCE: users with a bypass permission may still delete; COMPLIANCE: nobody may, root included. */
    readonly mode: 'GOVERNANCE' | 'COMPLIANCE';
    /** How long each new object version stays locked. */
    readonly days: number;
  };
}

/** What a credential needs of a bucket, whichever stack declares it. */
export interface OffsiteBucketReference {
  /** The literal name (it goes into agent config files, which must be readable). */
  readonly bucketName: string;
  readonly bucketArn: string;
}

/**
 * An S3 bucket for off-site backup copies: versioned, encrypted at rest, never public, TLS only.
 *
 * Lifecycle decision table. Nothing removes current backup objects: the agent's credential holds
 * no delete, and there is no expiration rule, so the bucket grows with every backup until an
 * operator deletes old ones with an admin credential (README, "Backups").
 *
 * | objects                       | removed by                                  | why                                                                                           |
 * |-------------------------------|---------------------------------------------|-----------------------------------------------------------------------------------------------|
 * | current backup objects        | nobody: an operator, by hand                | S3 lifecycle knows only age: during a long outage it would expire the last good backup; and a leaked agent credential must not delete |
 * | noncurrent versions           | lifecycle, after `noncurrentDays`           | what an operator deleted or an upload replaced stays recoverable for a while (and for the whole object-lock period) |
 * | incomplete multipart uploads  | lifecycle, after 7 days                     | an interrupted upload would otherwise be billed forever                                      |
 * | expired delete markers        | lifecycle                                   | keeps listings fast                                                                           |
 */
export class OffsiteBucket extends Construct implements OffsiteBucketReference {
  /**
   * A bucket another environment's stack declares (`backup.offsite.managedBy`): only its name and
   * ARN, so this stack neither creates nor changes it.
   */
  static managedElsewhere(scope: Construct, id: string, bucketName: string): OffsiteBucketReference {
    validateBucketName(bucketName);
    const partition = new DataAwsPartition(scope, id);
    return { bucketName, bucketArn: `arn:${partition.partition}:s3:::${bucketName}` };
  }

  readonly bucketName: string;
  readonly bucketArn: string;

  constructor(scope: Construct, id: string, props: OffsiteBucketProps) {
    super(scope, id);
    validateBucketName(props.bucketName);
    const lockDays = props.objectLock?.days ?? 0;
    const noncurrentDays = props.noncurrentDays ?? Math.max(NONCURRENT_VERSION_DAYS, lockDays);
    if (noncurrentDays < lockDays) {
      throw new Error(`offsite bucket ${props.bucketName}: noncurrentDays (${noncurrentDays}) must be at least objectLock.days (${lockDays}): S3 cannot expire a locked version`);
    }

    const bucket = new S3Bucket(this, 'bucket', {
      bucket: props.bucketName,
      objectLockEnabled: props.objectLock ? true : undefined,
      tags: { ...props.tags },
    });
    // The literal name, not a reference: it goes into agent config files, which must be readable.
    this.bucketName = props.bucketName;
    this.bucketArn = bucket.arn;

    new S3BucketVersioningA(this, 'versioning', { bucket: bucket.id, versioningConfiguration: { status: 'Enabled' } });
    new S3BucketServerSideEncryptionConfigurationA(this, 'encryption', {
      bucket: bucket.id,
      rule: [
        {
          applyServerSideEncryptionByDefault: props.kmsKeyArn
            ? { sseAlgorithm: 'aws:kms', kmsMasterKeyId: props.kmsKeyArn }
            : { sseAlgorithm: 'AES256' },
          bucketKeyEnabled: props.kmsKeyArn ? true : undefined,
        },
      ],
    });
    new S3BucketPublicAccessBlock(this, 'public-access-block', {
      bucket: bucket.id,
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    });
    new S3BucketPolicy(this, 'tls-only', { bucket: bucket.id, policy: denyInsecureTransport(bucket.arn) });
    new S3BucketLifecycleConfiguration(this, 'lifecycle', {
      bucket: bucket.id,
      rule: [
        {
          id: 'expire-noncurrent-versions',
          status: 'Enabled',
          filter: [{ prefix: '' }],
          noncurrentVersionExpiration: [{ noncurrentDays }],
        },
        {
          id: 'abort-incomplete-uploads',
          status: 'Enabled',
          filter: [{ prefix: '' }],
          abortIncompleteMultipartUpload: [{ daysAfterInitiation: INCOMPLETE_UPLOAD_DAYS }],
        },
        {
          id: 'remove-expired-delete-markers',
          status: 'Enabled',
          filter: [{ prefix: '' }],
          expiration: [{ expiredObjectDeleteMarker: true }],
        },
      ],
    });
    if (props.objectLock) {
      new S3BucketObjectLockConfigurationA(this, 'object-lock', {
        bucket: bucket.id,
        rule: { defaultRetention: { mode: props.objectLock.mode, days: props.objectLock.days } },
      });
    }
  }
}

function denyInsecureTransport(bucketArn: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'DenyInsecureTransport',
        Effect: 'Deny',
        Principal: '*',
        Action: 's3:*',
        Resource: [bucketArn, `${bucketArn}/*`],
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      },
    ],
  });
}

function validateBucketName(name: string): void {
  if (!isBucketName(name)) {
    throw new Error(`offsite bucket name "${name}" is not a valid S3 bucket name (${BUCKET_NAME_RULE}): shorten backup.offsite.bucket, the environment or the tenant name`);
  }
}

import { Construct } from 'constructs';
import type { OffsiteTargetConfig } from '../config/model';
import type { BackupOffsiteTarget } from './backup';
import { OffsiteBucket, OffsiteBucketProps, OffsiteBucketReference } from './offsite-bucket';
import { OffsiteCredential } from './offsite-credential';

export interface OffsiteTargetProps {
  /** The environment's name (tag `tenantry:environment`). */
  readonly environment: string;
  /** Whose copies these are: a tenant's name, or SHARED_TENANT for the shared server's archive (tag `tenantry:tenant`). */
  readonly tenant: string;
  /** The resolved bucket, prefix and credential name. */
  readonly target: OffsiteTargetConfig;
  /** The environment's one bucket in "shared" mode. @default a bucket of its own, `target.bucket` */
  readonly sharedBucket?: OffsiteBucketReference;
  /** Object lock of a bucket of its own (`backup.offsite.objectLock`). @default no object lock */
  readonly objectLock?: OffsiteBucketProps['objectLock'];
}

/**
 * A bucket of its own (or the environment's shared bucket) and a credential that reaches only
 * `target.prefix` in it, as children `offsite` and `offsite-credential` of `scope`: a tenant and
 * the environment's archive of its shared server get theirs by this one rule.
 */
export function addOffsiteTarget(scope: Construct, props: OffsiteTargetProps): BackupOffsiteTarget {
  const { target } = props;
  const tags = { 'tenantry:environment': props.environment, 'tenantry:tenant': props.tenant, 'managed-by': 'tenantry' };
  const bucket =
    props.sharedBucket ??
    new OffsiteBucket(scope, 'offsite', { bucketName: target.bucket, tags, kmsKeyArn: target.kmsKeyArn, objectLock: props.objectLock });
  const credential = new OffsiteCredential(scope, 'offsite-credential', {
    userName: target.credentialName,
    bucketName: bucket.bucketName,
    bucketArn: bucket.bucketArn,
    prefix: target.prefix,
    kmsKeyArn: target.kmsKeyArn,
    tags,
  });
  return {
    bucket: bucket.bucketName,
    prefix: target.prefix,
    region: target.region,
    endpoint: target.endpoint,
    accessKeyId: credential.accessKeyId,
    secretAccessKey: credential.secretAccessKey,
  };
}

import { IamUserPolicy } from '@cdktf/provider-aws/lib/iam-user-policy';
import { S3Bucket } from '@cdktf/provider-aws/lib/s3-bucket';
import { S3BucketLifecycleConfiguration } from '@cdktf/provider-aws/lib/s3-bucket-lifecycle-configuration';
import { S3BucketObjectLockConfigurationA } from '@cdktf/provider-aws/lib/s3-bucket-object-lock-configuration';
import { S3BucketPolicy } from '@cdktf/provider-aws/lib/s3-bucket-policy';
import { S3BucketPublicAccessBlock } from '@cdktf/provider-aws/lib/s3-bucket-public-access-block';
import { S3BucketServerSideEncryptionConfigurationA } from '@cdktf/provider-aws/lib/s3-bucket-server-side-encryption-configuration';
import { S3BucketVersioningA } from '@cdktf/provider-aws/lib/s3-bucket-versioning';
import { Testing } from 'cdktf';
import { OffsiteBucket } from '../../../constructs/offsite-bucket';
import { OffsiteCredential } from '../../../constructs/offsite-credential';

type Json = Record<string, Record<string, Record<string, Record<string, unknown>>>>;
const resources = (json: string, type: string) => Object.values((JSON.parse(json) as Json).resource[type] ?? {});

describe('OffsiteBucket', () => {
  const synth = (props: Partial<ConstructorParameters<typeof OffsiteBucket>[2]> = {}) =>
    Testing.synthScope((scope) => new OffsiteBucket(scope, 'offsite', { bucketName: 'backups-prod-acme', tags: { 'tenantry:tenant': 'acme' }, ...props }));

  it('is versioned, blocks all public access and encrypts with AES256 when no KMS key is given', () => {
    const json = synth();
    expect(json).toHaveResourceWithProperties(S3Bucket, { bucket: 'backups-prod-acme', tags: { 'tenantry:tenant': 'acme' } });
    expect(json).toHaveResourceWithProperties(S3BucketVersioningA, { versioning_configuration: { status: 'Enabled' } });
    expect(json).toHaveResourceWithProperties(S3BucketPublicAccessBlock, {
      block_public_acls: true,
      block_public_policy: true,
      ignore_public_acls: true,
      restrict_public_buckets: true,
    });
    expect(json).toHaveResourceWithProperties(S3BucketServerSideEncryptionConfigurationA, {
      rule: [{ apply_server_side_encryption_by_default: { sse_algorithm: 'AES256' } }],
    });
    expect(json).not.toHaveResource(S3BucketObjectLockConfigurationA);
  });

  it('uses SSE-KMS with a bucket key when a KMS key is given', () => {
    const key = 'arn:aws:kms:eu-central-1:111122223333:key/abcd';
    expect(synth({ kmsKeyArn: key })).toHaveResourceWithProperties(S3BucketServerSideEncryptionConfigurationA, {
      rule: [{ apply_server_side_encryption_by_default: { sse_algorithm: 'aws:kms', kms_master_key_id: key }, bucket_key_enabled: true }],
    });
  });

  it('denies every request that does not use TLS', () => {
    const [policy] = resources(synth(), 'aws_s3_bucket_policy');
    const document = JSON.parse(String(policy.policy));
    expect(document.Statement).toEqual([
      expect.objectContaining({
        Effect: 'Deny',
        Principal: '*',
        Action: 's3:*',
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      }),
    ]);
    expect(document.Statement[0].Resource).toHaveLength(2);
    expect(synth()).toHaveResource(S3BucketPolicy);
  });

  it('expires only noncurrent versions, aborted uploads and delete markers: never a current backup', () => {
    const [lifecycle] = resources(synth(), 'aws_s3_bucket_lifecycle_configuration');
    const rules = lifecycle.rule as Record<string, unknown>[];
    expect(rules.map((r) => r.id)).toEqual(['expire-noncurrent-versions', 'abort-incomplete-uploads', 'remove-expired-delete-markers']);
    expect(rules[0].noncurrent_version_expiration).toEqual([{ noncurrent_days: 30 }]);
    expect(rules[1].abort_incomplete_multipart_upload).toEqual([{ days_after_initiation: 7 }]);
    for (const rule of rules) {
      for (const expiration of (rule.expiration as Record<string, unknown>[] | undefined) ?? []) {
        expect(expiration).toEqual({ expired_object_delete_marker: true });
      }
    }
    expect(synth()).toHaveResource(S3BucketLifecycleConfiguration);
  });

  it('turns on object lock at creation and keeps noncurrent versions at least as long as the lock', () => {
    const json = synth({ objectLock: { mode: 'COMPLIANCE', days: 45 } });
    expect(json).toHaveResourceWithProperties(S3Bucket, { object_lock_enabled: true });
    expect(json).toHaveResourceWithProperties(S3BucketObjectLockConfigurationA, { rule: { default_retention: { mode: 'COMPLIANCE', days: 45 } } });
    const [lifecycle] = resources(json, 'aws_s3_bucket_lifecycle_configuration');
    expect((lifecycle.rule as Record<string, unknown>[])[0].noncurrent_version_expiration).toEqual([{ noncurrent_days: 45 }]);
  });

  it('refuses an invalid bucket name and a noncurrent period shorter than the lock, naming the values', () => {
    expect(() => synth({ bucketName: 'Backups_Prod' })).toThrow(/"Backups_Prod" is not a valid S3 bucket name/);
    expect(() => synth({ objectLock: { mode: 'GOVERNANCE', days: 60 }, noncurrentDays: 30 })).toThrow(/noncurrentDays \(30\) must be at least objectLock.days \(60\)/);
  });
});

describe('OffsiteCredential', () => {
  const synth = (prefix: string, kmsKeyArn?: string) =>
    Testing.synthScope((scope) => new OffsiteCredential(scope, 'cred', { userName: 'prod-acme-backup', bucketName: 'shared', bucketArn: 'arn:aws:s3:::shared', prefix, kmsKeyArn, tags: {} }));

  it('reaches only its own prefix: list is conditioned on the prefix, object access is limited to prefix/*', () => {
    const json = synth('acme');
    expect(json).toHaveResource(IamUserPolicy);
    const [policy] = resources(json, 'aws_iam_user_policy');
    const statements = JSON.parse(String(policy.policy)).Statement as Record<string, unknown>[];
    const list = statements.find((s) => s.Sid === 'ListOwnPrefix')!;
    expect(list.Resource).toBe('arn:aws:s3:::shared');
    expect(list.Condition).toEqual({ StringLike: { 's3:prefix': ['acme', 'acme/*'] } });
    const objects = statements.find((s) => s.Sid === 'ReadWriteOwnPrefix')!;
    expect(objects.Resource).toBe('arn:aws:s3:::shared/acme/*');
    expect(statements.every((s) => s.Effect === 'Allow' && !String(s.Resource).endsWith(':::shared/*'))).toBe(true);
    expect(statements.some((s) => String(s.Action).includes('s3:*'))).toBe(false);
  });

  it('may use the bucket KMS key only through S3', () => {
    const [policy] = resources(synth('acme', 'arn:aws:kms:eu-central-1:1:key/k'), 'aws_iam_user_policy');
    const kms = (JSON.parse(String(policy.policy)).Statement as Record<string, unknown>[]).find((s) => s.Sid === 'UseBucketKey');
    expect(kms).toMatchObject({ Resource: 'arn:aws:kms:eu-central-1:1:key/k', Condition: { StringLike: { 'kms:ViaService': 's3.*.amazonaws.com' } } });
  });

  it('refuses a prefix with slashes at its ends', () => {
    expect(() => synth('/acme/')).toThrow(/prefix must be non-empty without leading or trailing "\/" \(value: "\/acme\/"\)/);
  });
});

import { S3Bucket } from '@cdktf/provider-aws/lib/s3-bucket';
import { S3BucketPublicAccessBlock } from '@cdktf/provider-aws/lib/s3-bucket-public-access-block';
import { S3BucketVersioningA } from '@cdktf/provider-aws/lib/s3-bucket-versioning';
import { Construct } from 'constructs';
import { OffsiteBucket, OffsiteBucketProps } from '../../../constructs/offsite-bucket';
import { OffsiteCredential } from '../../../constructs/offsite-credential';
import { OFFSITE_S3_CALLS } from '../../../runtime/agent/s3-calls';
import { resourcesOf, synth } from './support';

const TAGS = { 'tenantry:environment': 'prod', 'managed-by': 'tenantry' };

function bucket(props: Partial<OffsiteBucketProps> = {}) {
  return synth((scope: Construct) => {
    new OffsiteBucket(scope, 'offsite', { bucketName: 'example-backups-prod-acme', tags: TAGS, ...props });
  });
}

const only = <T>(doc: ReturnType<typeof bucket>['doc'], type: string): T => {
  const all = Object.values(resourcesOf<T>(doc, type));
  if (all.length !== 1) throw new Error(`expected one ${type}, found ${all.length}`);
  return all[0];
};

interface Statement {
  Sid: string;
  Effect: string;
  Action: string | string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, unknown>>;
}

describe('OffsiteBucket', () => {
  test('versioned, never public, tagged', () => {
    const { json } = bucket();

    expect(json).toHaveResourceWithProperties(S3Bucket, { bucket: 'example-backups-prod-acme', tags: TAGS });
    expect(json).toHaveResourceWithProperties(S3BucketVersioningA, { versioning_configuration: { status: 'Enabled' } });
    expect(json).toHaveResourceWithProperties(S3BucketPublicAccessBlock, {
      block_public_acls: true,
      block_public_policy: true,
      ignore_public_acls: true,
      restrict_public_buckets: true,
    });
  });

  test('encrypted with SSE-S3 by default, with the KMS key (and a bucket key) when one is given', () => {
    const rule = (doc: ReturnType<typeof bucket>['doc']) => only<{ rule: unknown[] }>(doc, 'aws_s3_bucket_server_side_encryption_configuration').rule;

    expect(rule(bucket().doc)).toEqual([{ apply_server_side_encryption_by_default: { sse_algorithm: 'AES256' } }]);
    const kms = 'arn:aws:kms:eu-central-1:111122223333:key/abc';
    expect(rule(bucket({ kmsKeyArn: kms }).doc)).toEqual([
      { apply_server_side_encryption_by_default: { sse_algorithm: 'aws:kms', kms_master_key_id: kms }, bucket_key_enabled: true },
    ]);
  });

  test('a bucket policy denying every request without TLS, on the bucket and its objects', () => {
    const policy = JSON.parse(only<{ policy: string }>(bucket().doc, 'aws_s3_bucket_policy').policy) as { Statement: Statement[] };

    expect(policy.Statement).toEqual([
      {
        Sid: 'DenyInsecureTransport',
        Effect: 'Deny',
        Principal: '*',
        Action: 's3:*',
        Resource: [expect.stringMatching(/^\$\{aws_s3_bucket\.[^.]+\.arn\}$/), expect.stringMatching(/^\$\{aws_s3_bucket\.[^.]+\.arn\}\/\*$/)],
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      },
    ]);
  });

  test('lifecycle: noncurrent versions expire after 30 days, or the object-lock period when longer; no rule expires current objects', () => {
    const rules = (doc: ReturnType<typeof bucket>['doc']) =>
      only<{ rule: { id: string; noncurrent_version_expiration?: { noncurrent_days: number }[]; expiration?: Record<string, unknown>[] }[] }>(
        doc,
        'aws_s3_bucket_lifecycle_configuration',
      ).rule;

    const [noncurrent, uploads, markers] = rules(bucket().doc);
    expect([noncurrent, uploads, markers].map((r) => r.id)).toEqual(['expire-noncurrent-versions', 'abort-incomplete-uploads', 'remove-expired-delete-markers']);
    expect(noncurrent.noncurrent_version_expiration).toEqual([{ noncurrent_days: 30 }]);
    expect(uploads).toMatchObject({ abort_incomplete_multipart_upload: [{ days_after_initiation: 7 }] });
    expect(rules(bucket({ objectLock: { mode: 'GOVERNANCE', days: 90 } }).doc)[0].noncurrent_version_expiration).toEqual([{ noncurrent_days: 90 }]);
    // The only expiration of current objects allowed: delete markers with no versions left behind.
    for (const r of rules(bucket().doc)) for (const e of r.expiration ?? []) expect(e).toEqual({ expired_object_delete_marker: true });
  });

  test('object lock: enabled on the bucket and a default retention, only when asked for', () => {
    const locked = bucket({ objectLock: { mode: 'COMPLIANCE', days: 14 } });
    expect(only<{ object_lock_enabled?: boolean }>(locked.doc, 'aws_s3_bucket').object_lock_enabled).toBe(true);
    expect(only<{ rule: unknown }>(locked.doc, 'aws_s3_bucket_object_lock_configuration').rule).toEqual({ default_retention: { mode: 'COMPLIANCE', days: 14 } });

    const unlocked = bucket();
    expect(only<{ object_lock_enabled?: boolean }>(unlocked.doc, 'aws_s3_bucket').object_lock_enabled).toBeUndefined();
    expect(resourcesOf(unlocked.doc, 'aws_s3_bucket_object_lock_configuration')).toEqual({});
  });

  test.each(['Example-Backups', 'Backups_Prod', 'ab', 'a..b', 'x'.repeat(64), '-leading'])('refuses bucket name %p with what to shorten', (bucketName) => {
    expect(() => bucket({ bucketName })).toThrow(`offsite bucket name "${bucketName}" is not a valid S3 bucket name`);
  });

  test('refuses noncurrentDays shorter than the object-lock period, naming both', () => {
    expect(() => bucket({ noncurrentDays: 7, objectLock: { mode: 'GOVERNANCE', days: 14 } })).toThrow(
      'offsite bucket example-backups-prod-acme: noncurrentDays (7) must be at least objectLock.days (14)',
    );
  });
});

describe('OffsiteCredential', () => {
  function credential(prefix: string, kmsKeyArn?: string) {
    return synth((scope: Construct) => {
      new OffsiteCredential(scope, 'credential', {
        userName: 'prod-acme-backup',
        bucketName: 'example-backups',
        bucketArn: 'arn:aws:s3:::example-backups',
        prefix,
        kmsKeyArn,
        tags: TAGS,
      });
    });
  }
  const statements = (doc: ReturnType<typeof credential>['doc']) =>
    (JSON.parse(only<{ policy: string }>(doc, 'aws_iam_user_policy').policy) as { Statement: Statement[] }).Statement;

  test('an IAM user under /tenantry/ with one access key', () => {
    const { doc } = credential('acme');
    expect(only<{ name: string; path: string }>(doc, 'aws_iam_user')).toMatchObject({ name: 'prod-acme-backup', path: '/tenantry/' });
    expect(Object.keys(resourcesOf(doc, 'aws_iam_access_key'))).toHaveLength(1);
  });

  test("lists, reads and writes only under its environment's and tenant's prefix", () => {
    const [list, readWrite, ...rest] = statements(credential('prod/acme').doc);

    expect(rest).toEqual([]);
    expect(list).toMatchObject({ Sid: 'ListOwnPrefix', Effect: 'Allow', Resource: 'arn:aws:s3:::example-backups', Condition: { StringLike: { 's3:prefix': ['prod/acme/', 'prod/acme/*'] } } });
    expect(readWrite).toMatchObject({ Sid: 'ReadWriteOwnPrefix', Effect: 'Allow', Resource: 'arn:aws:s3:::example-backups/prod/acme/*' });
  });

  test('holds exactly the S3 (and KMS) actions of the calls the agent makes (OFFSITE_S3_CALLS): no delete, no versions, no wildcard', () => {
    const all = statements(credential('prod/acme', 'arn:aws:kms:eu-central-1:111122223333:key/abc').doc);
    const granted = all.flatMap((s) => [s.Action].flat()).sort();
    const called = Object.values(OFFSITE_S3_CALLS).flatMap((c) => [c.action, ...c.kms]);

    expect(granted).toEqual([...new Set(called)].sort());
    expect(granted).toEqual(['kms:Decrypt', 'kms:GenerateDataKey', 's3:AbortMultipartUpload', 's3:GetObject', 's3:ListBucket', 's3:PutObject']);
  });

  test('with a KMS key too, it only allows, never s3:*, and never objects outside the prefix', () => {
    const all = statements(credential('acme', 'arn:aws:kms:eu-central-1:111122223333:key/abc').doc);
    expect(all.map((s) => s.Effect)).toEqual(['Allow', 'Allow', 'Allow']);
    for (const s of all) {
      expect([s.Action].flat()).not.toContain('s3:*');
      expect([s.Resource].flat()).not.toContain('arn:aws:s3:::example-backups/*');
    }
  });

  test('may use the KMS key only through S3', () => {
    const kms = statements(credential('acme', 'arn:aws:kms:eu-central-1:111122223333:key/abc').doc).find((s) => s.Sid === 'UseBucketKey');
    expect(kms).toMatchObject({ Resource: 'arn:aws:kms:eu-central-1:111122223333:key/abc', Condition: { StringLike: { 'kms:ViaService': 's3.*.amazonaws.com' } } });
  });

  test.each(['', '/acme', 'acme/', '/acme/'])('refuses prefix %p', (prefix) => {
    expect(() => credential(prefix)).toThrow(`offsite credential prod-acme-backup: prefix must be non-empty without leading or trailing "/" (value: "${prefix}")`);
  });
});

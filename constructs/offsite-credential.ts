import { IamAccessKey } from '@cdktf/provider-aws/lib/iam-access-key';
import { IamUser } from '@cdktf/provider-aws/lib/iam-user';
import { IamUserPolicy } from '@cdktf/provider-aws/lib/iam-user-policy';
import { Construct } from 'constructs';
import { actionsOn, kmsActions, OFFSITE_S3_CALLS } from '../runtime/agent/s3-calls';

export interface OffsiteCredentialProps {
  /** IAM user name. */
  readonly userName: string;
  /** The bucket the credential reaches (its literal name, as the agent's config names it). */
  readonly bucketName: string;
  /** The same bucket's ARN, for the policy. */
  readonly bucketArn: string;
  /** The only key prefix (`<env>/<tenant>`) this credential may list, read and write under. */
  readonly prefix: string;
  /** A KMS key the bucket encrypts with: the credential may use it for this bucket only. @default none (SSE-S3) */
  readonly kmsKeyArn?: string;
  /** Tags of the IAM user, for cost allocation and ownership. */
  readonly tags: Readonly<Record<string, string>>;
}

/**
 * An access key for one tenant's backup agent that reaches only that tenant's prefix in its own
 * environment: even in a bucket shared by every tenant and environment, one agent cannot list or
 * read another's backups. It holds exactly the S3 calls the agent makes (OFFSITE_S3_CALLS), which
 * include no delete: a leaked key cannot erase backups.
 */
export class OffsiteCredential extends Construct {
  readonly accessKeyId: string;
  /** Sensitive: a reference to the access key's secret, never its value. */
  readonly secretAccessKey: string;

  constructor(scope: Construct, id: string, props: OffsiteCredentialProps) {
    super(scope, id);
    if (props.prefix === '' || props.prefix.startsWith('/') || props.prefix.endsWith('/')) {
      throw new Error(`offsite credential ${props.userName}: prefix must be non-empty without leading or trailing "/" (value: "${props.prefix}")`);
    }
    const user = new IamUser(this, 'user', { name: props.userName, path: '/tenantry/', tags: { ...props.tags } });
    new IamUserPolicy(this, 'policy', { name: 'offsite-backups', user: user.name, policy: prefixPolicy(props) });
    const key = new IamAccessKey(this, 'key', { user: user.name });
    this.accessKeyId = key.id;
    this.secretAccessKey = key.secret;
  }
}

function prefixPolicy(props: OffsiteCredentialProps): string {
  const statements: object[] = [
    {
      Sid: 'ListOwnPrefix',
      Effect: 'Allow',
      Action: actionsOn(OFFSITE_S3_CALLS, 'bucket'),
      Resource: props.bucketArn,
      // Never the bare prefix: a request for "prod/acme" would list prod/acme2/… too. The agent lists "<prefix>/<job>/".
      Condition: { StringLike: { 's3:prefix': [`${props.prefix}/`, `${props.prefix}/*`] } },
    },
    {
      Sid: 'ReadWriteOwnPrefix',
      Effect: 'Allow',
      Action: actionsOn(OFFSITE_S3_CALLS, 'object'),
      Resource: `${props.bucketArn}/${props.prefix}/*`,
    },
  ];
  if (props.kmsKeyArn) {
    statements.push({
      Sid: 'UseBucketKey',
      Effect: 'Allow',
      Action: kmsActions(OFFSITE_S3_CALLS),
      Resource: props.kmsKeyArn,
      Condition: { StringLike: { 'kms:ViaService': 's3.*.amazonaws.com' } },
    });
  }
  return JSON.stringify({ Version: '2012-10-17', Statement: statements });
}

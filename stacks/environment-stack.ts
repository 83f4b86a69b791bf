import { AwsProvider } from '@cdktf/provider-aws/lib/provider';
import { DockerProvider } from '@cdktf/provider-docker/lib/provider';
import { RandomProvider } from '@cdktf/provider-random/lib/provider';
import { Aspects, LocalBackend, S3Backend, TerraformStack, TerraformVariable } from 'cdktf';
import { Construct } from 'constructs';
import type { EnvironmentConfig, SharedPostgresArchiveConfig } from '../config/model';
import { Image } from '@cdktf/provider-docker/lib/image';
import { environmentImage } from '../config/images';
import { AgentImageBuild, agentBuildArgs, agentImageName } from './backup-image';
import { EnvironmentImages } from '../constructs/images';
import { OffsiteBucket, OffsiteBucketReference } from '../constructs/offsite-bucket';
import { addOffsiteTarget } from '../constructs/offsite-target';
import { EnvironmentNetwork } from '../constructs/network';
import { MemoryLimitPolicy, PinnedImagesPolicy, ProductionDataPortsPolicy } from '../constructs/policy';
import { SharedPostgresServer } from '../constructs/shared-postgres';
import { Backup } from '../constructs/backup';
import { SHARED_TENANT } from '../config/storage-layout';
import { Tenant } from '../constructs/tenant';

export interface EnvironmentStackProps {
  readonly environment: EnvironmentConfig;
  /**
   * Where the local backend keeps state, relative to the stack's working directory
   * (cdktf.out/stacks/<env>), for `backend.kind: local`.
   * @default "terraform.<env>.tfstate" in the stack's working directory
   */
  readonly localStatePath?: string;
  /**
   * How to build the backup agent's image when the environment names no `images.backup`: the build
   * context relative to the stack's working directory, the Dockerfile inside it, and what its tag
   * is made of (stacks/backup-image.ts).
   */
  readonly backupImageBuild: AgentImageBuild;
}

/** What verification of the shared server's archive counts rows in: PostgreSQL's own database, no tenant's. */
const SHARED_ARCHIVE_VERIFIED_DATABASE = 'postgres';

/** One environment: its providers and backend, its network, and every tenant deployed to it. */
export class EnvironmentStack extends TerraformStack {
  readonly tenants: Tenant[] = [];

  constructor(scope: Construct, id: string, props: EnvironmentStackProps) {
    super(scope, id);
    const env = props.environment;
    this.configureBackend(env, props.localStatePath);
    new DockerProvider(this, 'docker', { host: env.docker.host, sshOpts: env.docker.sshOptions });
    new RandomProvider(this, 'random');
    // Only environments with off-site copies (or a bucket others use) talk to AWS: a dev stack must plan without AWS credentials.
    const offsite = env.tenants.some((t) => t.offsite) || env.sharedPostgresArchive?.offsiteTarget !== undefined || env.sharedOffsiteBucket !== undefined;
    if (offsite) new AwsProvider(this, 'aws', { region: env.aws.region });

    const network = new EnvironmentNetwork(this, 'network', { environment: env.name, name: env.network.name, subnet: env.network.subnet });
    const images = new EnvironmentImages(this, 'images');
    const sharedPostgres = env.sharedPostgres
      ? new SharedPostgresServer(this, 'shared-postgres', {
          environment: env.name,
          image: images.use(environmentImage.postgres(env.images, env.sharedPostgres.version)),
          network: network.name,
          storage: env.storage,
          parameters: env.sharedPostgres.parameters,
          memoryMb: env.sharedPostgres.memoryMb,
          cpus: env.sharedPostgres.cpus,
          publishedPort: env.ports.publish && env.sharedPostgres.hostPort !== undefined ? { address: env.ports.address, port: env.sharedPostgres.hostPort } : undefined,
          pitr: env.sharedPostgresArchive && { maxSlotWalKeepMb: env.sharedPostgresArchive.pitr.maxSlotWalKeepMb },
        })
      : undefined;

    const shared = env.sharedOffsiteBucket;
    const sharedOffsiteBucket = !shared
      ? undefined
      : shared.declared
        ? new OffsiteBucket(this, 'offsite', {
            bucketName: shared.name,
            tags: { 'tenantry:environment': env.name, 'managed-by': 'tenantry' },
            kmsKeyArn: env.offsite.kmsKeyArn,
            objectLock: env.offsite.objectLock,
          })
        : OffsiteBucket.managedElsewhere(this, 'offsite-partition', shared.name);
    const hasBackups = env.sharedPostgresArchive !== undefined || env.tenants.some((t) => Object.keys(t.backup).length > 0);
    const backupImage = hasBackups ? this.backupImage(env, images, props.backupImageBuild) : '';

    const backupWebhookUrl = env.backupWebhook
      ? new TerraformVariable(this, 'backup_webhook_url', {
          type: 'string',
          sensitive: true,
          description: 'Slack-compatible webhook URL the backup agents POST to when a backup fails',
        }).stringValue
      : undefined;

    if (sharedPostgres && env.sharedPostgresArchive) {
      this.archiveSharedPostgres(env, sharedPostgres, env.sharedPostgresArchive, { network: network.name, image: backupImage, webhookUrl: backupWebhookUrl, sharedOffsiteBucket });
    }

    for (const tenant of env.tenants) {
      this.tenants.push(
        new Tenant(this, tenant.name, {
          tenant,
          environment: env,
          network: network.name,
          images,
          sharedPostgres,
          backupImage,
          sharedOffsiteBucket,
          backupWebhookUrl,
        }),
      );
    }

    Aspects.of(this).add(new PinnedImagesPolicy());
    Aspects.of(this).add(new MemoryLimitPolicy());
    Aspects.of(this).add(new ProductionDataPortsPolicy(env.name, env.production, env.ports.allowDataPortsInProduction));
  }

  /**
   * The shared server's WAL and base backups go to an agent of the environment's own
   * (`<env>-shared-backup`), never to a tenant's: they hold every tenant's data. Off-site they go
   * to a place of their own, as a tenant named SHARED_TENANT's would (construct `shared`, which no
   * tenant may be named): its own bucket or the shared one, a credential reaching `<env>/shared/`
   * only. Nothing of it names a tenant (verification counts the `postgres` database), so adding a
   * tenant leaves it as it is.
   */
  private archiveSharedPostgres(
    env: EnvironmentConfig,
    server: SharedPostgresServer,
    job: SharedPostgresArchiveConfig,
    agent: { network: string; image: string; webhookUrl: string | undefined; sharedOffsiteBucket: OffsiteBucketReference | undefined },
  ): void {
    const { network, image, webhookUrl } = agent;
    const offsite = job.offsiteTarget
      ? addOffsiteTarget(new Construct(this, SHARED_TENANT), {
          environment: env.name,
          tenant: SHARED_TENANT,
          target: job.offsiteTarget,
          sharedBucket: agent.sharedOffsiteBucket,
          objectLock: env.offsite.objectLock,
        })
      : undefined;
    const archive = new Backup(this, 'shared-postgres-backup', {
      environment: env.name,
      tenant: SHARED_TENANT,
      image,
      network,
      storage: env.storage,
      timeZone: env.timeZone,
      jobs: { postgres: job },
      pitrSource: { host: server.host, port: server.port, databases: [SHARED_ARCHIVE_VERIFIED_DATABASE], replication: server.replication },
      offsite,
      webhookUrl,
    });
    server.mountBackups(archive.volume);
  }

  /** The agent image: the environment's registry image, or built on the Docker host from this repository. */
  private backupImage(env: EnvironmentConfig, images: EnvironmentImages, build: AgentImageBuild): string {
    if (env.images.backup) return images.use(env.images.backup);
    const buildArgs = agentBuildArgs(environmentImage.redis(env.images));
    const image = new Image(this, 'backup-image', {
      name: agentImageName(build, buildArgs),
      keepLocally: true,
      buildAttribute: { context: build.context, dockerfile: build.dockerfile, buildArgs, label: { 'tenantry.service': 'backup' } },
    });
    return image.imageId;
  }

  private configureBackend(env: EnvironmentConfig, localStatePath: string | undefined): void {
    const backend = env.backend;
    if (backend.kind === 'local') {
      new LocalBackend(this, { path: localStatePath ?? `terraform.${env.name}.tfstate` });
      return;
    }
    new S3Backend(this, {
      bucket: backend.bucket,
      key: backend.key ?? `tenantry/${env.name}.tfstate`,
      region: backend.region,
      encrypt: backend.encrypt,
      kmsKeyId: backend.kmsKeyId,
      dynamodbTable: backend.locking === 'dynamodb' ? backend.dynamodbTable : undefined,
    });
    // S3-native locking (Terraform >= 1.10) is not among cdktf 0.21's S3Backend props.
    if (backend.locking === 'lockfile') this.addOverride('terraform.backend.s3.use_lockfile', true);
  }
}

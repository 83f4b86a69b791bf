import { TerraformOutput } from 'cdktf';
import { Construct } from 'constructs';
import { environmentImage } from '../config/images';
import type { EnvironmentConfig, OffsiteTargetConfig, TenantConfig } from '../config/model';
import type { PublishedPort } from '../config/ports';
import { Backup, BackupOffsiteTarget } from './backup';
import { EnvironmentImages } from './images';
import { OffsiteBucket, OffsiteBucketReference } from './offsite-bucket';
import { OffsiteCredential } from './offsite-credential';
import { ObjectStore } from './object-store';
import { PgBouncer } from './pgbouncer';
import { PostgresEndpoint, PostgresServer } from './postgres';
import { Qdrant } from './qdrant';
import { RedisSentinel } from './redis-sentinel';
import type { HostPort } from './service-container';
import { SharedPostgresDatabases, SharedPostgresServer } from './shared-postgres';

export interface TenantProps {
  /** The tenant as deployed in this environment (overrides applied, ports assigned). */
  readonly tenant: TenantConfig;
  readonly environment: EnvironmentConfig;
  readonly network: string;
  readonly images: EnvironmentImages;
  /** Required when the tenant's Postgres has mode "shared". @default none */
  readonly sharedPostgres?: SharedPostgresServer;
  /** The backup agent's image (ID or pinned reference). */
  readonly backupImage: string;
  /**
   * The environment's one off-site bucket when `backup.offsite.mode` is "shared" (declared by this
   * stack, or by the environment named in `managedBy`). @default a bucket per tenant
   */
  readonly sharedOffsiteBucket?: OffsiteBucketReference;
  /** Where backup agents report failures (a reference to a sensitive variable). @default no webhook */
  readonly backupWebhookUrl?: string;
}

/** `terraform output -json admin_<tenant>`: the operators' credentials of one tenant. */
export function adminOutputName(tenant: string): string {
  return `admin_${tenant.replace(/-/g, '_')}`;
}

/** The key of the Postgres superuser in the admin output. */
export const ADMIN_POSTGRES_KEY = 'postgres_superuser';

/**
 * Everything one tenant gets in one environment. Every construct ID below derives from the tenant
 * and service names only, so a tenant's logical IDs never depend on which other tenants exist.
 */
export class Tenant extends Construct {
  readonly postgres?: PostgresEndpoint;
  readonly pgbouncer?: PgBouncer;
  readonly redis?: RedisSentinel;
  readonly qdrant?: Qdrant;
  readonly objectStore?: ObjectStore;
  readonly backup?: Backup;

  constructor(scope: Construct, id: string, props: TenantProps) {
    super(scope, id);
    const { tenant, environment: env } = props;
    const s = tenant.services;
    const base = { environment: env.name, tenant: tenant.name, network: props.network, storage: env.storage };
    const hostPort = (p: PublishedPort): HostPort => ({ address: env.ports.address, port: p.external });
    const port = (container: string) => {
      const published = tenant.publishedPorts.find((p) => p.container === container);
      return published && hostPort(published);
    };

    if (s.postgres?.enabled) {
      this.postgres = s.postgres.mode === 'shared' ? this.sharedDatabases(props) : new PostgresServer(this, 'postgres', {
        ...base,
        image: props.images.use(environmentImage.postgres(env.images, s.postgres.version)),
        storageOverride: s.postgres.storage,
        databases: s.postgres.databases,
        parameters: s.postgres.parameters,
        memoryMb: s.postgres.memoryMb,
        cpus: s.postgres.cpus,
        publishedPort: port('postgres'),
        pitr: tenant.backup.postgres?.pitr,
      });
      if (s.pgbouncer?.enabled) {
        this.pgbouncer = new PgBouncer(this, 'pgbouncer', {
          environment: env.name,
          tenant: tenant.name,
          network: props.network,
          image: props.images.use(environmentImage.pgbouncer(env.images)),
          postgres: this.postgres,
          poolMode: s.pgbouncer.poolMode,
          poolSize: s.pgbouncer.poolSize,
          maxClients: s.pgbouncer.maxClients,
          memoryMb: s.pgbouncer.memoryMb,
          cpus: s.pgbouncer.cpus,
          publishedPort: port('pgbouncer'),
        });
      }
    }

    if (s.redis?.enabled) {
      const published: Record<string, HostPort> = {};
      for (const p of tenant.publishedPorts) if (/^(redis|sentinel)-\d+$/.test(p.container)) published[p.container] = hostPort(p);
      this.redis = new RedisSentinel(this, 'redis', {
        ...base,
        image: props.images.use(environmentImage.redis(env.images)),
        storageOverride: s.redis.storage,
        replicas: s.redis.replicas,
        sentinels: s.redis.sentinels,
        quorum: s.redis.quorum,
        downAfterMs: s.redis.downAfterMs,
        minReplicasToWrite: s.redis.minReplicasToWrite,
        maxmemory: s.redis.maxmemory,
        memoryMb: s.redis.memoryMb,
        cpus: s.redis.cpus,
        publishedPorts: published,
      });
    }

    if (s.qdrant?.enabled) {
      const http = port('qdrant');
      const grpc = port('qdrant-grpc');
      this.qdrant = new Qdrant(this, 'qdrant', {
        ...base,
        image: props.images.use(environmentImage.qdrant(env.images, s.qdrant.version)),
        storageOverride: s.qdrant.storage,
        memoryMb: s.qdrant.memoryMb,
        cpus: s.qdrant.cpus,
        publishedPorts: http !== undefined && grpc !== undefined ? { http, grpc } : undefined,
      });
    }

    if (s.minio?.enabled) {
      const api = port('minio');
      const console = port('minio-console');
      this.objectStore = new ObjectStore(this, 'minio', {
        ...base,
        image: props.images.use(environmentImage.minio(env.images)),
        clientImage: props.images.use(environmentImage.minioClient(env.images)),
        storageOverride: s.minio.storage,
        buckets: s.minio.buckets,
        memoryMb: s.minio.memoryMb,
        cpus: s.minio.cpus,
        publishedPorts: api !== undefined && console !== undefined ? { api, console } : undefined,
      });
    }

    if (Object.keys(tenant.backup).length > 0) {
      const offsite = tenant.offsite ? this.offsiteTarget(props, tenant.offsite) : undefined;
      this.backup = new Backup(this, 'backup', {
        ...base,
        image: props.backupImage,
        timeZone: env.timeZone,
        jobs: tenant.backup,
        postgres: this.postgres,
        postgresRestoreSource: `terraform output -json ${adminOutputName(tenant.name)} (key ${ADMIN_POSTGRES_KEY}: user, password)`,
        redis: this.redis,
        qdrant: this.qdrant,
        objectStore: this.objectStore,
        offsite,
        webhookUrl: props.backupWebhookUrl,
        publishedPort: port('backup'),
      });
      if (this.postgres instanceof PostgresServer && this.postgres.replication) this.postgres.mountBackups(this.backup.volume);
    }

    this.connectionOutput(tenant.name);
    this.adminOutput(tenant.name);
  }

  /**
   * Credentials for operators only, never handed to an application nor to a container that runs
   * all the time: the Postgres superuser a restore needs (the shared server's, for a tenant on it)
   * and MinIO's root user (setup, restores).
   */
  private adminOutput(name: string): void {
    const value: Record<string, unknown> = {};
    if (this.postgres) value[ADMIN_POSTGRES_KEY] = { user: this.postgres.superuser.user, password: this.postgres.superuser.password, host: this.postgres.host, port: this.postgres.port };
    if (this.objectStore) value.minio_root = { endpoint: this.objectStore.endpoint, access_key: this.objectStore.root.accessKey, secret_key: this.objectStore.root.secretKey };
    if (Object.keys(value).length === 0) return;
    const output = new TerraformOutput(this, 'admin', { value, sensitive: true, description: `Operator credentials for tenant ${name} (restores, setup): not for applications` });
    output.overrideLogicalId(adminOutputName(name));
  }

  /** The tenant's own bucket (or its prefix in the shared one) and a credential that reaches only that. */
  private offsiteTarget(props: TenantProps, target: OffsiteTargetConfig): BackupOffsiteTarget {
    const { tenant, environment: env } = props;
    const tags = { 'tenantry:environment': env.name, 'tenantry:tenant': tenant.name, 'managed-by': 'tenantry' };
    const bucket =
      props.sharedOffsiteBucket ??
      new OffsiteBucket(this, 'offsite', { bucketName: target.bucket, tags, kmsKeyArn: target.kmsKeyArn, objectLock: env.offsite.objectLock });
    const credential = new OffsiteCredential(this, 'offsite-credential', {
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

  private sharedDatabases(props: TenantProps): PostgresEndpoint {
    if (!props.sharedPostgres) {
      throw new Error(`tenant "${props.tenant.name}": postgres mode "shared" needs the environment's sharedPostgres server`);
    }
    return new SharedPostgresDatabases(this, 'postgres', {
      environment: props.environment.name,
      tenant: props.tenant.name,
      server: props.sharedPostgres,
      network: props.network,
      databases: props.tenant.services.postgres?.databases ?? [],
    });
  }

  /** One sensitive output per tenant: `terraform output -json tenant_<name>` gives an application all it needs. */
  private connectionOutput(name: string): void {
    const value: Record<string, unknown> = {};
    if (this.postgres && this.pgbouncer) {
      value.database_urls = Object.fromEntries(
        this.postgres.databases.map((db) => [
          db,
          `postgres://${this.postgres!.appRole}:${this.postgres!.appPassword}@${this.pgbouncer!.host}:${this.pgbouncer!.port}/${db}`,
        ]),
      );
    } else if (this.postgres) {
      value.database_urls = Object.fromEntries(
        this.postgres.databases.map((db) => [db, `postgres://${this.postgres!.appRole}:${this.postgres!.appPassword}@${this.postgres!.host}:${this.postgres!.port}/${db}`]),
      );
    }
    if (this.redis) {
      value.redis = {
        sentinels: this.redis.sentinelAddresses,
        master_name: this.redis.masterName,
        password: this.redis.password,
        sentinel_password: this.redis.sentinelPassword,
      };
    }
    if (this.qdrant) value.qdrant = { url: this.qdrant.url, api_key: this.qdrant.apiKey };
    if (this.backup) value.backup = { metrics_url: this.backup.metricsUrl };
    if (this.objectStore) {
      const user = this.objectStore.application;
      value.minio = user ? { endpoint: this.objectStore.endpoint, access_key: user.accessKey, secret_key: user.secretKey } : { endpoint: this.objectStore.endpoint };
    }
    const output = new TerraformOutput(this, 'connection', { value, sensitive: true, description: `Connection details for tenant ${name}` });
    output.overrideLogicalId(`tenant_${name.replace(/-/g, '_')}`);
  }
}

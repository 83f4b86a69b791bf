import { TerraformOutput } from 'cdktf';
import { Construct } from 'constructs';
import type { EnvironmentConfig, TenantConfig } from '../config/model';
import type { PublishedPort } from '../config/ports';
import { Backup, BackupOffsiteTarget } from './backup';
import { DEFAULT_IMAGES, EnvironmentImages } from './images';
import { boundedName } from './naming';
import { OffsiteBucket } from './offsite-bucket';
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
  /** The environment's one off-site bucket when `backup.offsite.mode` is "shared". @default a bucket per tenant */
  readonly sharedOffsiteBucket?: OffsiteBucket;
  /** Where backup agents report failures (a reference to a sensitive variable). @default no webhook */
  readonly backupWebhookUrl?: string;
}

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
    const image = (override: string | undefined, fallback: string) => props.images.use(override ?? fallback);

    if (s.postgres?.enabled) {
      this.postgres = s.postgres.mode === 'shared' ? this.sharedDatabases(props) : new PostgresServer(this, 'postgres', {
        ...base,
        image: image(env.images.postgres, DEFAULT_IMAGES.postgres(s.postgres.version)),
        storageOverride: s.postgres.storage,
        databases: s.postgres.databases,
        parameters: s.postgres.parameters,
        memoryMb: s.postgres.memoryMb,
        cpus: s.postgres.cpus,
        publishedPort: port('postgres'),
      });
      const pool = s.pgbouncer ?? { enabled: true as const };
      if (pool.enabled) {
        this.pgbouncer = new PgBouncer(this, 'pgbouncer', {
          environment: env.name,
          tenant: tenant.name,
          network: props.network,
          image: image(env.images.pgbouncer, DEFAULT_IMAGES.pgbouncer),
          postgres: this.postgres,
          ...s.pgbouncer,
          publishedPort: port('pgbouncer'),
        });
      }
    }

    if (s.redis?.enabled) {
      const published: Record<string, HostPort> = {};
      for (const p of tenant.publishedPorts) if (/^(redis|sentinel)-\d+$/.test(p.container)) published[p.container] = hostPort(p);
      this.redis = new RedisSentinel(this, 'redis', {
        ...base,
        image: image(env.images.redis, DEFAULT_IMAGES.redis),
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
        image: image(env.images.qdrant, DEFAULT_IMAGES.qdrant(s.qdrant.version)),
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
        image: image(env.images.minio, DEFAULT_IMAGES.minio),
        clientImage: image(env.images.minioClient, DEFAULT_IMAGES.minioClient),
        storageOverride: s.minio.storage,
        buckets: s.minio.buckets,
        memoryMb: s.minio.memoryMb,
        cpus: s.minio.cpus,
        publishedPorts: api !== undefined && console !== undefined ? { api, console } : undefined,
      });
    }

    if (Object.keys(tenant.backup).length > 0) {
      const offsite = Object.values(tenant.backup).some((job) => job.offsite) ? this.offsiteTarget(props) : undefined;
      this.backup = new Backup(this, 'backup', {
        ...base,
        image: props.backupImage,
        timeZone: env.timeZone,
        jobs: tenant.backup,
        postgres: this.postgres,
        redis: this.redis,
        qdrant: this.qdrant,
        objectStore: this.objectStore,
        offsite,
        webhookUrl: props.backupWebhookUrl,
        publishedPort: port('backup'),
      });
    }

    this.connectionOutput(tenant.name);
  }

  /** The tenant's own bucket (or its prefix in the shared one) and a credential that reaches only that. */
  private offsiteTarget(props: TenantProps): BackupOffsiteTarget {
    const { tenant, environment: env } = props;
    const settings = env.offsite;
    const tags = { 'tenantry:environment': env.name, 'tenantry:tenant': tenant.name, 'managed-by': 'tenantry' };
    const bucket =
      props.sharedOffsiteBucket ??
      new OffsiteBucket(this, 'offsite', {
        bucketName: boundedName(`${settings.bucket ?? 'tenantry-backups'}-${env.name}-${tenant.name}`, 63),
        tags,
        kmsKeyArn: settings.kmsKeyArn,
        objectLock: settings.objectLock,
      });
    const credential = new OffsiteCredential(this, 'offsite-credential', {
      userName: boundedName(`${env.name}-${tenant.name}-backup`, 64),
      bucketName: bucket.bucketName,
      bucketArn: bucket.bucketArn,
      prefix: tenant.name,
      kmsKeyArn: settings.kmsKeyArn,
      tags,
    });
    return {
      bucket: bucket.bucketName,
      prefix: tenant.name,
      region: env.aws.region,
      endpoint: settings.endpoint,
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
      value.minio = { endpoint: this.objectStore.endpoint, access_key: this.objectStore.accessKey, secret_key: this.objectStore.secretKey };
    }
    const output = new TerraformOutput(this, 'connection', { value, sensitive: true, description: `Connection details for tenant ${name}` });
    output.overrideLogicalId(`tenant_${name.replace(/-/g, '_')}`);
  }
}

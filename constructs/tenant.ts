import { TerraformOutput } from 'cdktf';
import { Construct } from 'constructs';
import { environmentImage } from '../config/images';
import type { EnvironmentConfig, TenantConfig } from '../config/model';
import { mapPorts, RedisPorts } from '../config/ports';
import type { ServiceStorage } from '../config/storage-layout';
import { Backup } from './backup';
import { EnvironmentImages } from './images';
import type { OffsiteBucketReference } from './offsite-bucket';
import { addOffsiteTarget } from './offsite-target';
import { ObjectStore, ObjectStoreProps } from './object-store';
import { PgBouncer } from './pgbouncer';
import { PostgresEndpoint, PostgresServer } from './postgres';
import { Qdrant, QdrantProps } from './qdrant';
import { RedisSentinel } from './redis-sentinel';
import type { HostPort } from './service-container';
import { SharedPostgresDatabases, SharedPostgresServer } from './shared-postgres';

export interface TenantProps {
  /** The tenant as deployed in this environment (overrides applied, ports assigned). */
  readonly tenant: TenantConfig;
  /** The environment the tenant is deployed in (its images, storage, ports and time zone). */
  readonly environment: EnvironmentConfig;
  /** The environment's Docker network, on which containers reach each other by name. */
  readonly network: string;
  /** The environment's images, shared by its tenants (one `docker_image` per reference). */
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
    const { address } = props.environment.ports;
    const ports = mapPorts(props.tenant.publishedPorts, (p): HostPort => ({ address, port: p.external }));

    const postgres = this.addPostgres(props, ports.postgres);
    this.postgres = postgres?.endpoint;
    this.pgbouncer = this.postgres && this.addPgBouncer(props, this.postgres, ports.pgbouncer);
    this.redis = this.addRedis(props, ports.redis);
    this.qdrant = this.addQdrant(props, ports.qdrant);
    this.objectStore = this.addObjectStore(props, ports.minio);
    this.backup = this.addBackup(props, ports.backup, postgres);
    this.connectionOutput(props.tenant.name);
    this.adminOutput(props.tenant.name);
  }

  /** What every stateful service of the tenant shares: where it runs and where its data lives. */
  private serviceBase({ tenant, environment: env, network }: TenantProps) {
    return { environment: env.name, tenant: tenant.name, network, storage: env.storage };
  }

  /** A stateful service's own share of the host, from its `services.<s>` section: storage, memory and CPUs. */
  private static resources(service: { readonly storage?: ServiceStorage; readonly memoryMb: number; readonly cpus?: number }) {
    return { storageOverride: service.storage, memoryMb: service.memoryMb, cpus: service.cpus };
  }

  private addPostgres(props: TenantProps, publishedPort: HostPort | undefined): PostgresServer | SharedPostgresDatabases | undefined {
    const { environment: env } = props;
    const postgres = props.tenant.services.postgres;
    if (!postgres?.enabled) return undefined;
    if (postgres.mode === 'shared') return this.sharedDatabases(props);
    return new PostgresServer(this, 'postgres', {
      ...this.serviceBase(props),
      ...Tenant.resources(postgres),
      image: props.images.use(environmentImage.postgres(env.images, postgres.version)),
      databases: postgres.databases,
      parameters: postgres.parameters,
      publishedPort,
      pitr: props.tenant.backup.postgres?.pitr,
    });
  }

  private addPgBouncer(props: TenantProps, postgres: PostgresEndpoint, publishedPort: HostPort | undefined): PgBouncer | undefined {
    const { tenant, environment: env } = props;
    const pgbouncer = tenant.services.pgbouncer;
    if (!pgbouncer?.enabled) return undefined;
    return new PgBouncer(this, 'pgbouncer', {
      environment: env.name,
      tenant: tenant.name,
      network: props.network,
      image: props.images.use(environmentImage.pgbouncer(env.images)),
      postgres,
      poolMode: pgbouncer.poolMode,
      poolSize: pgbouncer.poolSize,
      maxClients: pgbouncer.maxClients,
      memoryMb: pgbouncer.memoryMb,
      cpus: pgbouncer.cpus,
      publishedPort,
    });
  }

  private addRedis(props: TenantProps, publishedPorts: RedisPorts<HostPort> | undefined): RedisSentinel | undefined {
    const redis = props.tenant.services.redis;
    if (!redis?.enabled) return undefined;
    return new RedisSentinel(this, 'redis', {
      ...this.serviceBase(props),
      ...Tenant.resources(redis),
      image: props.images.use(environmentImage.redis(props.environment.images)),
      replicas: redis.replicas,
      sentinels: redis.sentinels,
      quorum: redis.quorum,
      downAfterMs: redis.downAfterMs,
      minReplicasToWrite: redis.minReplicasToWrite,
      maxmemory: redis.maxmemory,
      publishedPorts,
    });
  }

  private addQdrant(props: TenantProps, publishedPorts: QdrantProps['publishedPorts']): Qdrant | undefined {
    const qdrant = props.tenant.services.qdrant;
    if (!qdrant?.enabled) return undefined;
    return new Qdrant(this, 'qdrant', {
      ...this.serviceBase(props),
      ...Tenant.resources(qdrant),
      image: props.images.use(environmentImage.qdrant(props.environment.images, qdrant.version)),
      publishedPorts,
    });
  }

  private addObjectStore(props: TenantProps, publishedPorts: ObjectStoreProps['publishedPorts']): ObjectStore | undefined {
    const minio = props.tenant.services.minio;
    if (!minio?.enabled) return undefined;
    const images = props.environment.images;
    return new ObjectStore(this, 'minio', {
      ...this.serviceBase(props),
      ...Tenant.resources(minio),
      image: props.images.use(environmentImage.minio(images)),
      clientImage: props.images.use(environmentImage.minioClient(images)),
      buckets: minio.buckets,
      publishedPorts,
    });
  }

  /** The backup agent, for the services created above that have a backup job. */
  private addBackup(props: TenantProps, publishedPort: HostPort | undefined, postgres: PostgresServer | SharedPostgresDatabases | undefined): Backup | undefined {
    const { tenant, environment: env } = props;
    if (Object.keys(tenant.backup).length === 0) return undefined;
    const offsite = tenant.offsite
      ? addOffsiteTarget(this, { environment: env.name, tenant: tenant.name, target: tenant.offsite, sharedBucket: props.sharedOffsiteBucket, objectLock: env.offsite.objectLock })
      : undefined;
    const backup = new Backup(this, 'backup', {
      ...this.serviceBase(props),
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
      publishedPort,
    });
    // A prepared point-in-time restore reaches the server through its start script (read-only).
    if (postgres instanceof PostgresServer && postgres.endpoint.replication) postgres.mountBackups(backup.volume);
    return backup;
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

  private sharedDatabases(props: TenantProps): SharedPostgresDatabases {
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
    if (this.postgres) {
      // Applications go through PgBouncer when the tenant has one, to the server otherwise.
      const { appRole, appPassword, databases } = this.postgres;
      const { host, port } = this.pgbouncer ?? this.postgres;
      value.database_urls = Object.fromEntries(databases.map((db) => [db, `postgres://${appRole}:${appPassword}@${host}:${port}/${db}`]));
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

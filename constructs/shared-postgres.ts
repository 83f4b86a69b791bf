import { Construct } from 'constructs';
import type { StorageConfig } from '../config/model';
import { SHARED_POSTGRES_VOLUME, SHARED_TENANT } from '../config/storage-layout';
import { SERVICE_PORTS } from '../config/ports';
import { renderPostgresCommand } from '../runtime/render/postgres';
import type { PostgresCredential, PostgresEndpoint } from './postgres';
import { POSTGRES_SUPERUSER, provisionRoles, tenantLogins } from './postgres';
import { generatedSecret } from './secrets';
import { HostPort, ServiceContainer } from './service-container';
import { StatefulVolume } from './storage';

/** The environment's one Postgres server for tenants with `postgres.mode: shared`. */
export interface SharedPostgresProps {
  /** The environment's name: the first part of every container and volume name, and their `tenantry.env` label. */
  readonly environment: string;
  /** Image ID or pinned reference (the image policy aspect checks it). */
  readonly image: string;
  /** The environment's Docker network, on which containers reach each other by name. */
  readonly network: string;
  /** The environment's storage: where the server's data volume lives. */
  readonly storage: StorageConfig;
  /** Server parameters, passed as `-c key=value`. */
  readonly parameters: Readonly<Record<string, string | number | boolean>>;
  /** The container's memory limit in MiB. */
  readonly memoryMb: number;
  /** CPU limit in cores. @default no CPU limit */
  readonly cpus?: number;
  /** Host port for 5432. @default not published */
  readonly publishedPort?: HostPort;
}

export class SharedPostgresServer extends Construct {
  readonly host: string;
  readonly port = SERVICE_PORTS.postgres;
  readonly superuser: PostgresCredential;
  readonly image: string;

  constructor(scope: Construct, id: string, props: SharedPostgresProps) {
    super(scope, id);
    this.image = props.image;
    this.superuser = { user: POSTGRES_SUPERUSER, password: generatedSecret(this, 'superuser-password') };
    const data = new StatefulVolume(this, 'data', {
      environment: props.environment,
      ...SHARED_POSTGRES_VOLUME,
      storage: props.storage,
      containerPath: '/var/lib/postgresql/data',
    });
    const server = new ServiceContainer(this, 'server', {
      environment: props.environment,
      tenant: SHARED_TENANT,
      service: 'postgres',
      image: props.image,
      network: props.network,
      launch: { files: [], command: renderPostgresCommand({ ...props.parameters }), env: ['POSTGRES_PASSWORD'] },
      env: { POSTGRES_PASSWORD: this.superuser.password, PGDATA: '/var/lib/postgresql/data/pgdata' },
      memoryMb: props.memoryMb,
      cpus: props.cpus,
      volumes: [data.mount],
      publishedPorts: props.publishedPort === undefined ? undefined : [{ internal: this.port, host: props.publishedPort }],
      healthcheck: `pg_isready -U ${POSTGRES_SUPERUSER} -h 127.0.0.1 -p ${this.port}`,
    });
    this.host = server.hostname;
  }
}

export interface SharedPostgresDatabasesProps {
  /** The environment's name: the first part of every container and volume name, and their `tenantry.env` label. */
  readonly environment: string;
  /** The tenant's name: the second part of every container and volume name, and their `tenantry.tenant` label. */
  readonly tenant: string;
  /** The environment's shared server the databases are created on. */
  readonly server: SharedPostgresServer;
  /** The environment's Docker network, on which containers reach each other by name. */
  readonly network: string;
  /** The tenant's databases, created with its roles by a one-shot container. */
  readonly databases: readonly string[];
}

/**
 * A tenant's databases and roles on the shared server. The server's init scripts ran long before
 * this tenant existed, so a one-shot container runs the same (idempotent) script against it.
 * The tenant's own roles, not the server's superuser, are what its PgBouncer and backups use; only
 * this one-shot container and the server hold the superuser password (restores get it from operators).
 */
export class SharedPostgresDatabases extends Construct {
  /** The shared server's address with the tenant's own databases and roles: what PgBouncer, backups and the outputs use. */
  readonly endpoint: PostgresEndpoint;

  constructor(scope: Construct, id: string, props: SharedPostgresDatabasesProps) {
    super(scope, id);
    const { server } = props;
    this.endpoint = { host: server.host, port: server.port, databases: props.databases, ...tenantLogins(this, props.tenant), superuser: server.superuser };
    provisionRoles(this, { environment: props.environment, tenant: props.tenant, image: server.image, network: props.network, endpoint: this.endpoint });
  }
}

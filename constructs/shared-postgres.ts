import { Construct } from 'constructs';
import type { StorageConfig } from '../config/model';
import { SHARED_POSTGRES_VOLUME, SHARED_TENANT } from '../config/storage-layout';
import { SERVICE_PORTS } from '../config/ports';
import { pitrSlotName, tenantRoles } from '../config/postgres-names';
import { renderReplicationRoleScript, renderSharedPostgres } from '../runtime/render/postgres';
import { BACKUP_MOUNT } from '../runtime/render/postgres-restore-on-start';
import type { PostgresCredential, PostgresEndpoint, PostgresReplication, PostgresServerSettings } from './postgres';
import { POSTGRES_SUPERUSER, provisionRoles, SERVER_WAIT_POLL_SECONDS, tenantLogins } from './postgres';
import { generatedSecret } from './secrets';
import { ServiceContainer, SIDE_CONTAINER_MEMORY_MB } from './service-container';
import { StatefulVolume, VolumeMount } from './storage';

/** The environment's one Postgres server for tenants with `postgres.mode: shared`. */
export interface SharedPostgresProps extends PostgresServerSettings {
  /** The environment's name: the first part of every container and volume name, and their `tenantry.env` label. */
  readonly environment: string;
  /** Image ID or pinned reference (the image policy aspect checks it). */
  readonly image: string;
  /** The environment's Docker network, on which containers reach each other by name. */
  readonly network: string;
  /** The environment's storage: where the server's data volume lives. */
  readonly storage: StorageConfig;
}

/**
 * The shared server. With point-in-time recovery its WAL goes to the environment's archive, never
 * to a tenant's backup agent: a replication role reads every tenant's data, so it is the server's
 * (named after SHARED_TENANT), created by a one-shot container, and reaches no tenant's container.
 */
export class SharedPostgresServer extends Construct {
  readonly host: string;
  readonly port = SERVICE_PORTS.postgres;
  readonly superuser: PostgresCredential;
  readonly image: string;
  /** The environment's archive's way in. @default none (no PITR) */
  readonly replication?: PostgresReplication;
  private readonly container: ServiceContainer;

  constructor(scope: Construct, id: string, props: SharedPostgresProps) {
    super(scope, id);
    this.image = props.image;
    this.superuser = { user: POSTGRES_SUPERUSER, password: generatedSecret(this, 'superuser-password') };
    this.replication = props.pitr && {
      user: tenantRoles(SHARED_TENANT).replicationRole,
      password: generatedSecret(this, 'replication-password'),
      slot: pitrSlotName(SHARED_TENANT),
      maxSlotWalKeepMb: props.pitr.maxSlotWalKeepMb,
    };
    const pitrLaunch = this.replication && { replicationRole: this.replication.user, maxSlotWalKeepMb: this.replication.maxSlotWalKeepMb };
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
      launch: renderSharedPostgres({ ...props.parameters }, pitrLaunch),
      env: { POSTGRES_PASSWORD: this.superuser.password, PGDATA: '/var/lib/postgresql/data/pgdata' },
      memoryMb: props.memoryMb,
      cpus: props.cpus,
      volumes: [data.mount],
      publishedPorts: props.publishedPort === undefined ? undefined : [{ internal: this.port, host: props.publishedPort }],
      healthcheck: `pg_isready -U ${POSTGRES_SUPERUSER} -h 127.0.0.1 -p ${this.port}`,
    });
    this.host = server.hostname;
    this.container = server;
    if (this.replication) this.provisionReplicationRole(props, this.replication, server);
  }

  /**
   * Mounts the environment's archive read-only where the restore-on-start script looks for a
   * prepared whole-server restore (an operator's decision for the environment, never a tenant's).
   */
  mountBackups(backups: VolumeMount): void {
    if (!this.replication) throw new Error('shared postgres: the backup volume is mounted for point-in-time recovery only, which is off for this server');
    this.container.addVolume({ ...backups, containerPath: BACKUP_MOUNT, readOnly: true });
  }

  /** The server has no init script of its own (its data directory predates PITR): a one-shot container creates the role. */
  private provisionReplicationRole(props: SharedPostgresProps, replication: PostgresReplication, server: ServiceContainer): void {
    const script = { path: '/tenantry/replication-role.sh', content: renderReplicationRoleScript(replication.user), executable: true };
    new ServiceContainer(this, 'provision-replication', {
      environment: props.environment,
      tenant: SHARED_TENANT,
      service: 'postgres-provision',
      image: props.image,
      network: props.network,
      launch: {
        files: [script],
        entrypoint: ['/bin/sh', '-c', `until pg_isready -q; do sleep ${SERVER_WAIT_POLL_SECONDS}; done; exec /bin/sh ${script.path}`],
        env: ['PGPASSWORD', 'TENANTRY_REPLICATION_PASSWORD'],
      },
      env: { PGHOST: this.host, PGPORT: String(this.port), PGUSER: this.superuser.user, PGPASSWORD: this.superuser.password, TENANTRY_REPLICATION_PASSWORD: replication.password },
      memoryMb: SIDE_CONTAINER_MEMORY_MB,
      oneShot: true,
      dependsOn: [server.resource],
    });
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

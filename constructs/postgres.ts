import type { ITerraformDependable } from 'cdktf';
import { Construct } from 'constructs';
import { POSTGRES_SERVICE } from '../config/container-labels';
import { pitrSlotName, tenantRoles } from '../config/postgres-names';
import { SERVICE_PORTS } from '../config/ports';
import { renderPostgres, PostgresRenderOptions } from '../runtime/render/postgres';
import { BACKUP_MOUNT } from '../runtime/render/postgres-restore-on-start';
import { generatedSecret } from './secrets';
import { HostPort, ServiceContainer, SIDE_CONTAINER_MEMORY_MB } from './service-container';
import { StatefulServiceProps, StatefulVolume, VolumeMount } from './storage';

/** What other constructs need to reach a tenant's databases. */
export interface PostgresEndpoint {
  readonly host: string;
  readonly port: number;
  readonly databases: readonly string[];
  /** The application's LOGIN role: owns the tenant's databases, nothing more. */
  readonly appRole: string;
  readonly appPassword: string;
  readonly readonlyRole: string;
  readonly readonlyPassword: string;
  /** The role the backup agent dumps and verifies with: reads everything, owns nothing of the tenant's. */
  readonly backupRole: string;
  readonly backupPassword: string;
  /** The server's superuser: what a restore needs, handed to operators only (never to a container but the server). */
  readonly superuser: PostgresCredential;
  /** Point-in-time recovery's way in: a REPLICATION-only role and the slot it streams from. @default none (no PITR) */
  readonly replication?: PostgresReplication;
}

export interface PostgresReplication extends PostgresCredential {
  readonly slot: string;
  /** The server's max_slot_wal_keep_size, in MiB. */
  readonly maxSlotWalKeepMb: number;
}

export interface PostgresCredential {
  readonly user: string;
  readonly password: string;
}

/** The tenant's own roles on its server and their passwords: the part of the endpoint every kind of server gives alike. */
export type TenantLogins = Pick<PostgresEndpoint, 'appRole' | 'appPassword' | 'readonlyRole' | 'readonlyPassword' | 'backupRole' | 'backupPassword'>;

/**
 * The tenant's roles (config/postgres-names.ts), each with a password generated in `scope`: built
 * here once, so that a tenant's own server and its databases on the shared one name and secure
 * them alike.
 */
export function tenantLogins(scope: Construct, tenant: string): TenantLogins {
  const roles = tenantRoles(tenant);
  return {
    appRole: roles.appRole,
    appPassword: generatedSecret(scope, 'app-password'),
    readonlyRole: roles.readonlyRole,
    readonlyPassword: generatedSecret(scope, 'readonly-password'),
    backupRole: roles.backupRole,
    backupPassword: generatedSecret(scope, 'backup-password'),
  };
}

/** The official image's superuser (POSTGRES_USER's default), on dedicated and shared servers alike. */
export const POSTGRES_SUPERUSER = 'postgres';

/** How often the provisioning container asks whether the server accepts connections yet: a start takes seconds. */
export const SERVER_WAIT_POLL_SECONDS = 2;

/** How a Postgres server runs, a tenant's own or the environment's shared one. */
export interface PostgresServerSettings {
  /** Server parameters, passed as `-c key=value`. */
  readonly parameters: Readonly<Record<string, string | number | boolean>>;
  /** The container's memory limit in MiB. */
  readonly memoryMb: number;
  /** CPU limit in cores. @default no CPU limit */
  readonly cpus?: number;
  /** Host port for 5432. @default not published */
  readonly publishedPort?: HostPort;
  /**
   * Point-in-time recovery: streaming parameters, a replication role of the server's own, restore
   * on start; the WAL goes to the tenant's backup agent, or the environment's for the shared server.
   * @default off
   */
  readonly pitr?: {
    /** The server's max_slot_wal_keep_size in MB: how much WAL the receiver's slot may hold back. */
    readonly maxSlotWalKeepMb: number;
  };
}

export interface PostgresProps extends StatefulServiceProps, PostgresServerSettings {
  /** The tenant's databases, created with its roles on first start and re-asserted on every change. */
  readonly databases: readonly string[];
}

/**
 * A tenant's own Postgres server. Its databases and roles are created on first start by the
 * rendered init script (see runtime/render/postgres.ts), and re-asserted by a one-shot
 * provisioning container (provisionRoles) whenever the script or a password changes: the image runs its init
 * scripts only into an empty data directory, so without it a server deployed before a role
 * existed (or before a password rotated) would never get it. Passwords arrive as environment
 * variables from `random_password`.
 */
export class PostgresServer extends Construct {
  /** The server, the tenant's databases and roles: what PgBouncer, backups and the outputs use. */
  readonly endpoint: PostgresEndpoint;
  private readonly container: ServiceContainer;

  constructor(scope: Construct, id: string, props: PostgresProps) {
    super(scope, id);
    if (props.databases.length === 0) throw new Error(`postgres for tenant "${props.tenant}": databases must not be empty`);
    const port = SERVICE_PORTS.postgres;
    const superuser = { user: POSTGRES_SUPERUSER, password: generatedSecret(this, 'superuser-password') };
    const own: TenantDatabases = {
      databases: props.databases,
      ...tenantLogins(this, props.tenant),
      replication: props.pitr && {
        user: tenantRoles(props.tenant).replicationRole,
        password: generatedSecret(this, 'replication-password'),
        slot: pitrSlotName(props.tenant),
        maxSlotWalKeepMb: props.pitr.maxSlotWalKeepMb,
      },
    };

    const data = new StatefulVolume(this, 'data', {
      environment: props.environment,
      tenant: props.tenant,
      service: POSTGRES_SERVICE,
      purpose: 'data',
      storage: props.storage,
      override: props.storageOverride,
      containerPath: '/var/lib/postgresql/data',
    });

    const container = new ServiceContainer(this, 'server', {
      environment: props.environment,
      tenant: props.tenant,
      service: POSTGRES_SERVICE,
      image: props.image,
      network: props.network,
      launch: renderPostgres(initOptions(own, props.tenant, props.parameters)),
      env: {
        POSTGRES_PASSWORD: superuser.password,
        ...loginPasswordEnv(own),
        // The image initialises a sub-directory: the volume root may hold lost+found (NFS, ext4).
        PGDATA: '/var/lib/postgresql/data/pgdata',
      },
      memoryMb: props.memoryMb,
      cpus: props.cpus,
      volumes: [data.mount],
      publishedPorts: props.publishedPort === undefined ? undefined : [{ internal: port, host: props.publishedPort }],
      healthcheck: `pg_isready -U ${POSTGRES_SUPERUSER} -h 127.0.0.1 -p ${port}`,
    });
    this.endpoint = { host: container.hostname, port, ...own, superuser };
    this.container = container;
    provisionRoles(this, { environment: props.environment, tenant: props.tenant, image: props.image, network: props.network, endpoint: this.endpoint, dependsOn: [container.resource] });
  }

  /**
   * Mounts the tenant's backup volume read-only where the restore-on-start script looks for a
   * prepared point-in-time restore. The Backup construct owns the volume and is built after this.
   */
  mountBackups(backups: VolumeMount): void {
    if (!this.endpoint.replication) throw new Error('postgres: the backup volume is mounted for point-in-time recovery only, which is off for this server');
    this.container.addVolume({ ...backups, containerPath: BACKUP_MOUNT, readOnly: true });
  }
}

/** The tenant's part of an endpoint: what its init script creates, and the passwords it sets. */
type TenantDatabases = Pick<PostgresEndpoint, 'databases' | 'replication'> & TenantLogins;

function initOptions(t: TenantDatabases, tenant: string, parameters: PostgresProps['parameters']): PostgresRenderOptions {
  const pitr = t.replication && { maxSlotWalKeepMb: t.replication.maxSlotWalKeepMb };
  const { replicationRole } = tenantRoles(tenant);
  return { databases: [...t.databases], appRole: t.appRole, readonlyRole: t.readonlyRole, backupRole: t.backupRole, replicationRole, parameters: { ...parameters }, pitr };
}

/** The passwords the init script sets, under the variable names it reads them from. */
function loginPasswordEnv(t: TenantDatabases): Record<string, string> {
  return {
    TENANTRY_APP_PASSWORD: t.appPassword,
    TENANTRY_READONLY_PASSWORD: t.readonlyPassword,
    TENANTRY_BACKUP_PASSWORD: t.backupPassword,
    ...(t.replication ? { TENANTRY_REPLICATION_PASSWORD: t.replication.password } : {}),
  };
}

export interface RoleProvisioningProps {
  /** The environment's name: the first part of every container and volume name, and their `tenantry.env` label. */
  readonly environment: string;
  /** The tenant's name: the second part of every container and volume name, and their `tenantry.tenant` label. */
  readonly tenant: string;
  /** A Postgres image: it has psql and pg_isready of the server's version. */
  readonly image: string;
  /** The environment's Docker network, on which containers reach each other by name. */
  readonly network: string;
  /** The server, the tenant's databases and roles, and the superuser that may create them. */
  readonly endpoint: PostgresEndpoint;
  /** Resources that must exist before the provisioning runs (the server's container). @default none */
  readonly dependsOn?: ITerraformDependable[];
}

/**
 * A one-shot container (`provision` in `scope`) that runs the tenant's (idempotent) init script
 * against its server as the superuser, once per change of the script or of a password: Terraform
 * replaces a one-shot container only when its configuration changes, and never restarts it. It is
 * the only container besides the server that holds the superuser password, and it exits when done.
 */
export function provisionRoles(scope: Construct, props: RoleProvisioningProps): ServiceContainer {
  const e = props.endpoint;
  // The init script alone: the server's other files (pg_hba.conf, restore on start) are not the provisioner's.
  const init = renderPostgres(initOptions(e, props.tenant, {}));
  const script = init.files[0].path;
  return new ServiceContainer(scope, 'provision', {
    environment: props.environment,
    tenant: props.tenant,
    service: 'postgres-provision',
    image: props.image,
    network: props.network,
    launch: {
      files: [init.files[0]],
      entrypoint: ['/bin/sh', '-c', `until pg_isready -q; do sleep ${SERVER_WAIT_POLL_SECONDS}; done; exec /bin/sh ${script}`],
      env: init.env,
    },
    env: {
      PGHOST: e.host,
      PGPORT: String(e.port),
      PGUSER: e.superuser.user,
      POSTGRES_USER: e.superuser.user,
      PGPASSWORD: e.superuser.password,
      POSTGRES_PASSWORD: e.superuser.password,
      ...loginPasswordEnv(e),
    },
    memoryMb: SIDE_CONTAINER_MEMORY_MB,
    oneShot: true,
    dependsOn: props.dependsOn,
  });
}

import type { ITerraformDependable } from 'cdktf';
import { Construct } from 'constructs';
import { tenantRoles } from '../config/postgres-names';
import { POSTGRES_SERVICE } from '../config/container-labels';
import { renderPostgres } from '../runtime/render/postgres';
import { generatedSecret } from './secrets';
import { HostPort, ServiceContainer, SIDE_CONTAINER_MEMORY_MB } from './service-container';
import { StatefulServiceProps, StatefulVolume } from './storage';

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
}

export interface PostgresCredential {
  readonly user: string;
  readonly password: string;
}

/** The official image's superuser (POSTGRES_USER's default), on dedicated and shared servers alike. */
export const POSTGRES_SUPERUSER = 'postgres';

export interface PostgresProps extends StatefulServiceProps {
  readonly databases: readonly string[];
  /** Server parameters, passed as `-c key=value`. */
  readonly parameters: Readonly<Record<string, string | number | boolean>>;
  readonly memoryMb: number;
  /** @default no CPU limit */
  readonly cpus?: number;
  /** Host port for 5432. @default not published */
  readonly publishedPort?: HostPort;
}

/**
 * A tenant's own Postgres server. Its databases and roles are created on first start by the
 * rendered init script (see runtime/render/postgres.ts), and re-asserted by a one-shot
 * provisioning container (provisionRoles) whenever the script or a password changes: the image runs its init
 * scripts only into an empty data directory, so without it a server deployed before a role
 * existed (or before a password rotated) would never get it. Passwords arrive as environment
 * variables from `random_password`.
 */
export class PostgresServer extends Construct implements PostgresEndpoint {
  readonly host: string;
  readonly port = 5432;
  readonly databases: readonly string[];
  readonly appRole: string;
  readonly appPassword: string;
  readonly readonlyRole: string;
  readonly readonlyPassword: string;
  readonly backupRole: string;
  readonly backupPassword: string;
  readonly superuser: PostgresCredential;

  constructor(scope: Construct, id: string, props: PostgresProps) {
    super(scope, id);
    if (props.databases.length === 0) throw new Error(`postgres for tenant "${props.tenant}": databases must not be empty`);
    const roles = tenantRoles(props.tenant);
    this.appRole = roles.appRole;
    this.readonlyRole = roles.readonlyRole;
    this.backupRole = roles.backupRole;
    this.databases = props.databases;
    this.superuser = { user: POSTGRES_SUPERUSER, password: generatedSecret(this, 'superuser-password') };
    this.appPassword = generatedSecret(this, 'app-password');
    this.readonlyPassword = generatedSecret(this, 'readonly-password');
    this.backupPassword = generatedSecret(this, 'backup-password');

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
      launch: renderPostgres({
        databases: [...props.databases],
        appRole: this.appRole,
        readonlyRole: this.readonlyRole,
        backupRole: this.backupRole,
        parameters: { ...props.parameters },
      }),
      env: {
        POSTGRES_PASSWORD: this.superuser.password,
        TENANTRY_APP_PASSWORD: this.appPassword,
        TENANTRY_READONLY_PASSWORD: this.readonlyPassword,
        TENANTRY_BACKUP_PASSWORD: this.backupPassword,
        // The image initialises a sub-directory: the volume root may hold lost+found (NFS, ext4).
        PGDATA: '/var/lib/postgresql/data/pgdata',
      },
      memoryMb: props.memoryMb,
      cpus: props.cpus,
      volumes: [data.mount],
      publishedPorts: props.publishedPort === undefined ? undefined : [{ internal: 5432, host: props.publishedPort }],
      healthcheck: `pg_isready -U ${POSTGRES_SUPERUSER} -h 127.0.0.1 -p 5432`,
    });
    this.host = container.hostname;
    provisionRoles(this, { environment: props.environment, tenant: props.tenant, image: props.image, network: props.network, endpoint: this, dependsOn: [container.resource] });
  }
}

export interface RoleProvisioningProps {
  readonly environment: string;
  readonly tenant: string;
  /** A Postgres image: it has psql and pg_isready of the server's version. */
  readonly image: string;
  readonly network: string;
  /** The server, the tenant's databases and roles, and the superuser that may create them. */
  readonly endpoint: PostgresEndpoint;
  /** @default none */
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
  const init = renderPostgres({ databases: [...e.databases], appRole: e.appRole, readonlyRole: e.readonlyRole, backupRole: e.backupRole, parameters: {} });
  const script = init.files[0].path;
  return new ServiceContainer(scope, 'provision', {
    environment: props.environment,
    tenant: props.tenant,
    service: 'postgres-provision',
    image: props.image,
    network: props.network,
    launch: {
      files: init.files,
      entrypoint: ['/bin/sh', '-c', `until pg_isready -q; do sleep 2; done; exec /bin/sh ${script}`],
      env: init.env,
    },
    env: {
      PGHOST: e.host,
      PGPORT: String(e.port),
      PGUSER: e.superuser.user,
      POSTGRES_USER: e.superuser.user,
      PGPASSWORD: e.superuser.password,
      POSTGRES_PASSWORD: e.superuser.password,
      TENANTRY_APP_PASSWORD: e.appPassword,
      TENANTRY_READONLY_PASSWORD: e.readonlyPassword,
      TENANTRY_BACKUP_PASSWORD: e.backupPassword,
    },
    memoryMb: SIDE_CONTAINER_MEMORY_MB,
    oneShot: true,
    dependsOn: props.dependsOn,
  });
}

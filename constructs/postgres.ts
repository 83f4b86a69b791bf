import { Construct } from 'constructs';
import { renderPostgres } from '../runtime/render/postgres';
import { generatedSecret } from './secrets';
import { HostPort, ServiceContainer } from './service-container';
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
  /** The role the backup agent dumps and restores with. */
  readonly backupRole: string;
  readonly backupPassword: string;
}

export interface PostgresProps extends StatefulServiceProps {
  readonly databases: readonly string[];
  /** Server parameters, passed as `-c key=value`. @default none */
  readonly parameters?: Readonly<Record<string, string | number | boolean>>;
  readonly memoryMb: number;
  /** @default no CPU limit */
  readonly cpus?: number;
  /** Host port for 5432. @default not published */
  readonly publishedPort?: HostPort;
}

/** Role names derive from the tenant name; "-" is not valid in an unquoted identifier. */
export function tenantRoles(tenant: string): { appRole: string; readonlyRole: string } {
  const base = tenant.replace(/-/g, '_');
  return { appRole: `${base}_app`, readonlyRole: `${base}_readonly` };
}

/**
 * A tenant's own Postgres server. Its databases and roles are created on first start by the
 * rendered init script (see runtime/render/postgres.ts); passwords arrive as environment
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
  readonly backupRole = 'postgres';
  readonly backupPassword: string;

  constructor(scope: Construct, id: string, props: PostgresProps) {
    super(scope, id);
    if (props.databases.length === 0) throw new Error(`postgres for tenant "${props.tenant}": databases must not be empty`);
    const roles = tenantRoles(props.tenant);
    this.appRole = roles.appRole;
    this.readonlyRole = roles.readonlyRole;
    this.databases = props.databases;
    this.backupPassword = generatedSecret(this, 'superuser-password');
    this.appPassword = generatedSecret(this, 'app-password');
    this.readonlyPassword = generatedSecret(this, 'readonly-password');

    const data = new StatefulVolume(this, 'data', {
      environment: props.environment,
      tenant: props.tenant,
      service: 'postgres',
      purpose: 'data',
      storage: props.storage,
      override: props.storageOverride,
      containerPath: '/var/lib/postgresql/data',
    });

    const container = new ServiceContainer(this, 'server', {
      environment: props.environment,
      tenant: props.tenant,
      service: 'postgres',
      image: props.image,
      network: props.network,
      launch: renderPostgres({
        databases: [...props.databases],
        appRole: this.appRole,
        readonlyRole: this.readonlyRole,
        parameters: { ...props.parameters },
      }),
      env: {
        POSTGRES_PASSWORD: this.backupPassword,
        TENANTRY_APP_PASSWORD: this.appPassword,
        TENANTRY_READONLY_PASSWORD: this.readonlyPassword,
        // The image initialises a sub-directory: the volume root may hold lost+found (NFS, ext4).
        PGDATA: '/var/lib/postgresql/data/pgdata',
      },
      memoryMb: props.memoryMb,
      cpus: props.cpus,
      volumes: [data.mount],
      publishedPorts: props.publishedPort === undefined ? undefined : [{ internal: 5432, host: props.publishedPort }],
      healthcheck: 'pg_isready -U postgres -h 127.0.0.1 -p 5432',
    });
    this.host = container.hostname;
  }
}

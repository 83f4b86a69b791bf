import { Construct } from 'constructs';
import { SERVICE_PORTS } from '../config/ports';
import { renderPgBouncer } from '../runtime/render/pgbouncer';
import type { PostgresEndpoint } from './postgres';
import { HostPort, ServiceContainer } from './service-container';

export interface PgBouncerProps {
  /** The environment's name: the first part of every container and volume name, and their `tenantry.env` label. */
  readonly environment: string;
  /** The tenant's name: the second part of every container and volume name, and their `tenantry.tenant` label. */
  readonly tenant: string;
  /** Image ID or pinned reference (the image policy aspect checks it). */
  readonly image: string;
  /** The environment's Docker network, on which containers reach each other by name. */
  readonly network: string;
  /** The server PgBouncer pools connections to, and the app role it connects as. */
  readonly postgres: PostgresEndpoint;
  /** 'transaction' suits web applications; 'session' keeps prepared statements across transactions. */
  readonly poolMode: 'session' | 'transaction' | 'statement';
  /** Server connections per database/user pair. */
  readonly poolSize: number;
  /** Client connections PgBouncer accepts in all. */
  readonly maxClients: number;
  /** The container's memory limit in MiB. */
  readonly memoryMb: number;
  /** CPU limit in cores. @default no CPU limit */
  readonly cpus?: number;
  /** Host port for 6432. @default not published */
  readonly publishedPort?: HostPort;
}

/** Connection pooling in front of the tenant's Postgres; applications connect here, as the app role. */
export class PgBouncer extends Construct {
  readonly host: string;
  readonly port = SERVICE_PORTS.pgbouncer;

  constructor(scope: Construct, id: string, props: PgBouncerProps) {
    super(scope, id);
    const { poolSize, maxClients } = props;
    if (poolSize > maxClients) {
      throw new Error(`pgbouncer for tenant "${props.tenant}": poolSize (${poolSize}) must not exceed maxClients (${maxClients})`);
    }
    const container = new ServiceContainer(this, 'pooler', {
      environment: props.environment,
      tenant: props.tenant,
      service: 'pgbouncer',
      image: props.image,
      network: props.network,
      launch: renderPgBouncer({
        listenPort: this.port,
        serverHost: props.postgres.host,
        serverPort: props.postgres.port,
        databases: [...props.postgres.databases],
        user: props.postgres.appRole,
        poolMode: props.poolMode,
        poolSize,
        maxClients,
      }),
      env: { PGBOUNCER_PASSWORD: props.postgres.appPassword },
      memoryMb: props.memoryMb,
      cpus: props.cpus,
      publishedPorts: props.publishedPort === undefined ? undefined : [{ internal: this.port, host: props.publishedPort }],
      healthcheck: `nc -z 127.0.0.1 ${this.port}`,
    });
    this.host = container.hostname;
  }
}

/**
 * The Postgres server a job talks to, as one credential: its sessions (node-postgres) and the
 * libpq environment of the client tools, both with the agent's session settings.
 */
import { Client } from 'pg';
import type { JobConfig } from '../../config';
import type { Logger } from '../../log';
import type { PostgresTools } from './tools';

export type PostgresJob = Extract<JobConfig, { kind: 'postgres' }>;
export type PostgresSettings = PostgresJob['postgres'];

/** Who the agent connects as: the backup role (backup, verify) or the operator's restore credential. */
export interface Credential {
  user: string;
  password: string;
}

/**
 * Every agent session resolves unqualified names in pg_catalog only: a tenant's database holds the
 * tenant's own functions and operators (a public.format(text, name, name) is a better match for
 * format('%I.%I', …) than pg_catalog's), which would otherwise run with the agent's rights.
 */
export const SAFE_SEARCH_PATH = '-c search_path=pg_catalog';

/** Session settings that speed a restore up and that any role may set (pg_restore and psql read PGOPTIONS). */
export const RESTORE_SESSION = `${SAFE_SEARCH_PATH} -c maintenance_work_mem=512MB -c synchronous_commit=off`;

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export class PostgresServer {
  constructor(
    private readonly pg: PostgresSettings,
    private readonly credential: Credential,
    private readonly log: Logger,
  ) {}

  get address(): string {
    return `${this.pg.host}:${this.pg.port}`;
  }

  get user(): string {
    return this.credential.user;
  }

  /** CREATE/DROP DATABASE need a connection to another database, one that survives the restore. */
  get maintenanceDatabase(): string {
    return this.pg.maintenanceDatabase ?? 'postgres';
  }

  withMaintenance<T>(use: (db: Client) => Promise<T>): Promise<T> {
    return this.withDatabase(this.maintenanceDatabase, use);
  }

  async withDatabase<T>(database: string, use: (db: Client) => Promise<T>): Promise<T> {
    const client = await this.connect(database);
    try {
      return await use(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async connect(database: string): Promise<Client> {
    const client = new Client({
      host: this.pg.host,
      port: this.pg.port,
      user: this.credential.user,
      password: this.credential.password,
      database,
      application_name: 'tenantry-agent',
      // A database's or role's timeouts are for its applications: the agent's queries (count(*)
      // of a big table, a session idling in the dump's transaction) must not be cut short.
      options: `${SAFE_SEARCH_PATH} -c statement_timeout=0 -c idle_in_transaction_session_timeout=0`,
      connectionTimeoutMillis: 10_000,
    });
    // Without a listener, a server that goes away while the connection idles crashes the agent.
    client.on('error', (error) => this.log.warn('postgres connection lost', { database, error: error.message }));
    await client.connect();
    // PostgreSQL 17's transaction_timeout would end a long dump's transaction; older servers
    // reject the name, hence the guard.
    await client.query("SELECT set_config('transaction_timeout', '0', false) WHERE current_setting('server_version_num')::int >= 170000");
    return client;
  }

  /** The libpq environment of `tools` run against this server as this credential. */
  toolEnv(tools: PostgresTools): NodeJS.ProcessEnv {
    return {
      ...tools.path, PGHOST: this.pg.host, PGPORT: String(this.pg.port), PGUSER: this.credential.user, PGPASSWORD: this.credential.password,
      PGCONNECT_TIMEOUT: '10', PGAPPNAME: 'tenantry-agent', PGOPTIONS: SAFE_SEARCH_PATH,
    };
  }

  /**
   * A new database lets PUBLIC connect by default; on a shared server another tenant's backup
   * role (pg_read_all_data) could then read what is restored into it. It is created closed to
   * connections, PUBLIC loses its rights, and only then does it open.
   */
  createDatabase(name: string): Promise<void> {
    return this.withMaintenance(async (db) => {
      await db.query(`CREATE DATABASE ${quoteIdent(name)} WITH ALLOW_CONNECTIONS false`);
      await db.query(`REVOKE ALL ON DATABASE ${quoteIdent(name)} FROM PUBLIC`);
      await db.query(`ALTER DATABASE ${quoteIdent(name)} WITH ALLOW_CONNECTIONS true`);
    });
  }

  dropDatabase(name: string): Promise<void> {
    return this.withMaintenance(async (db) => {
      await db.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
    });
  }
}

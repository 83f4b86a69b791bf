/**
 * An application-like Postgres workload, through PgBouncer with the database URLs the tenant's
 * Terraform output hands to applications: several connections, transactions that insert into
 * two related tables, each row carrying an md5 of its payload. And a digest of the contents (row
 * count and an md5 over the ordered rows per table) to compare before and after a restore.
 */
import { createHash, randomBytes } from 'crypto';
import { Client, Pool } from 'pg';

export const APP_TABLES = ['orders', 'order_events'] as const;
export const ANALYTICS_TABLES = ['daily_totals'] as const;

const SCHEMA = {
  app: `
    CREATE TABLE IF NOT EXISTS orders (
      id bigserial PRIMARY KEY,
      customer text NOT NULL,
      amount_cents bigint NOT NULL,
      payload text NOT NULL,
      checksum text NOT NULL
    );
    CREATE TABLE IF NOT EXISTS order_events (
      id bigserial PRIMARY KEY,
      order_id bigint NOT NULL REFERENCES orders (id),
      kind text NOT NULL,
      payload text NOT NULL,
      checksum text NOT NULL
    );`,
  analytics: `
    CREATE TABLE IF NOT EXISTS daily_totals (
      id bigserial PRIMARY KEY,
      day date NOT NULL,
      total_cents bigint NOT NULL,
      payload text NOT NULL,
      checksum text NOT NULL
    );`,
};

const md5 = (text: string) => createHash('md5').update(text).digest('hex');

export interface WorkloadResult {
  transactions: number;
  connections: number;
  rows: Record<string, number>;
  ms: number;
}

/** Runs `transactions` transactions over a pool of `connections`, all through the given URL. */
export async function runAppWorkload(appUrl: string, analyticsUrl: string, options: { connections: number; transactions: number }): Promise<WorkloadResult> {
  const started = Date.now();
  const pool = new Pool({ connectionString: appUrl, max: options.connections, connectionTimeoutMillis: 10_000 });
  const analytics = new Client({ connectionString: analyticsUrl, connectionTimeoutMillis: 10_000 });
  try {
    await pool.query(SCHEMA.app);
    await analytics.connect();
    await analytics.query(SCHEMA.analytics);
    let next = 0;
    const worker = async () => {
      while (next < options.transactions) {
        const n = next++;
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          const payload = randomBytes(24 + (n % 40)).toString('base64');
          const { rows } = await client.query<{ id: string }>(
            'INSERT INTO orders (customer, amount_cents, payload, checksum) VALUES ($1, $2, $3, $4) RETURNING id',
            [`customer-${n % 17}`, 100 + ((n * 7919) % 100_000), payload, md5(payload)],
          );
          for (const kind of ['created', 'paid']) {
            const eventPayload = `${kind}:${n}:${randomBytes(8).toString('hex')}`;
            await client.query('INSERT INTO order_events (order_id, kind, payload, checksum) VALUES ($1, $2, $3, $4)', [rows[0].id, kind, eventPayload, md5(eventPayload)]);
          }
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw error;
        } finally {
          client.release();
        }
      }
    };
    await Promise.all(Array.from({ length: options.connections }, worker));
    for (let day = 0; day < 30; day++) {
      const payload = `day ${day} ${randomBytes(6).toString('hex')}`;
      await analytics.query('INSERT INTO daily_totals (day, total_cents, payload, checksum) VALUES ($1, $2, $3, $4)', [`2025-01-${String(day + 1).padStart(2, '0')}`, day * 1000, payload, md5(payload)]);
    }
    const rows: Record<string, number> = {};
    for (const table of APP_TABLES) rows[table] = Number((await pool.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);
    for (const table of ANALYTICS_TABLES) rows[table] = Number((await analytics.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);
    return { transactions: options.transactions, connections: options.connections, rows, ms: Date.now() - started };
  } finally {
    await pool.end();
    await analytics.end().catch(() => undefined);
  }
}

export interface TableDigest {
  rows: number;
  /** md5 over every row's text form, ordered by id. */
  md5: string;
  /** Rows whose checksum column does not match md5(payload). */
  badChecksums: number;
}

/** Row count, md5 over the ordered rows and checksum mismatches, per table. */
export async function digestTables(url: string, tables: readonly string[]): Promise<Record<string, TableDigest>> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    const out: Record<string, TableDigest> = {};
    for (const table of tables) {
      const { rows } = await client.query<{ n: string; digest: string; bad: string }>(
        `SELECT count(*) AS n,
                md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t.id), '')) AS digest,
                count(*) FILTER (WHERE md5(t.payload) <> t.checksum) AS bad
           FROM ${table} t`,
      );
      out[table] = { rows: Number(rows[0].n), md5: rows[0].digest, badChecksums: Number(rows[0].bad) };
    }
    return out;
  } finally {
    await client.end();
  }
}

/** Runs one statement as a superuser straight on Postgres (not through PgBouncer). */
export async function asSuperuser<T>(connection: { port: number; user: string; password: string; database?: string }, f: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ host: '127.0.0.1', port: connection.port, user: connection.user, password: connection.password, database: connection.database ?? 'postgres', connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await f(client);
  } finally {
    await client.end();
  }
}

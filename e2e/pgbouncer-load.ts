/**
 * Many clients at once through PgBouncer: every client connects and stays connected until all
 * are; then each runs one short query while a superuser session on Postgres samples how many
 * server connections PgBouncer opened for the pool (pg_stat_activity). The synthesized ini sets
 * no admin_users/stats_users and no unix socket, so its admin console (SHOW POOLS) cannot be
 * reached: pg_stat_activity is the check.
 */
import * as fs from 'fs';
import { Client } from 'pg';
import { asSuperuser } from './postgres-workload';

export interface LoadResult {
  clients: number;
  /** Client sockets ESTABLISHED on PgBouncer's port with every client connected (from /proc/net/tcp). */
  establishedAtPeak: number;
  queriesOk: number;
  queryErrors: string[];
  /** Highest number of Postgres backends of the app role in the database, sampled while the queries ran. */
  maxServerConnections: number;
  samples: number;
  connectMs: number;
  queryMs: number;
}

/** ESTABLISHED TCP sockets whose local port is `port` (the server side of each connection). */
export function establishedOnPort(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  let count = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!fs.existsSync(table)) continue;
    for (const line of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length > 3 && fields[1].endsWith(`:${hex}`) && fields[3] === '01') count++;
    }
  }
  return count;
}

async function inBatches<T>(items: T[], size: number, f: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(f));
}

export async function manyClients(options: {
  url: string;
  pgbouncerPort: number;
  clients: number;
  /** Straight to Postgres, to sample pg_stat_activity. */
  superuser: { port: number; user: string; password: string };
  appRole: string;
  database: string;
  /** Seconds each query sleeps, so that clients queue for the pool. */
  querySeconds: number;
  timeoutMs: number;
}): Promise<LoadResult> {
  const deadline = Date.now() + options.timeoutMs;
  const clients = Array.from({ length: options.clients }, () => new Client({ connectionString: options.url, connectionTimeoutMillis: 30_000, query_timeout: options.timeoutMs }));
  // Ignore late 'error' events of clients PgBouncer or the test closes; results are checked below.
  for (const c of clients) c.on('error', () => undefined);
  try {
    const connectStart = Date.now();
    // Connect in waves: PgBouncer's listen backlog (128) would otherwise drop SYNs and make the
    // clients wait for TCP retransmits. All stay connected: the peak below counts them together.
    await inBatches(clients, 100, async (c) => {
      if (Date.now() > deadline) throw new Error('connect phase exceeded the time limit');
      await c.connect();
    });
    const connectMs = Date.now() - connectStart;
    const establishedAtPeak = establishedOnPort(options.pgbouncerPort);

    return await asSuperuser({ ...options.superuser }, async (sampler) => {
      let sampling = true;
      let maxServerConnections = 0;
      let samples = 0;
      const sampleLoop = (async () => {
        while (sampling && Date.now() < deadline) {
          const { rows } = await sampler.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE usename = $1 AND datname = $2', [options.appRole, options.database]);
          maxServerConnections = Math.max(maxServerConnections, Number(rows[0].n));
          samples++;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      })();
      const queryStart = Date.now();
      const results = await Promise.allSettled(clients.map((c, i) => c.query('SELECT pg_sleep($1), $2::int AS n', [options.querySeconds, i])));
      const queryMs = Date.now() - queryStart;
      sampling = false;
      await sampleLoop;
      const queryErrors = results.flatMap((r) => (r.status === 'rejected' ? [String((r.reason as Error).message)] : []));
      return {
        clients: options.clients,
        establishedAtPeak,
        queriesOk: results.length - queryErrors.length,
        queryErrors: [...new Set(queryErrors)].slice(0, 5),
        maxServerConnections,
        samples,
        connectMs,
        queryMs,
      };
    });
  } finally {
    await Promise.allSettled(clients.map((c) => c.end()));
  }
}

/**
 * A client that records every commit acknowledged to it, for measuring what a lost server loses:
 * each connection inserts one row per transaction (autocommit) into `table` (client, seq, payload,
 * checksum), and notes, per row, when it sent the INSERT and when the server acknowledged the
 * commit. After a restore the rows present are compared with that record: an acknowledged row
 * that is missing was lost; a row sent after a restore's target time must be absent; a row in
 * flight at that time (sent before, acknowledged after) may go either way, and is counted apart.
 */
import { createHash, randomBytes } from 'crypto';
import { Client, ClientConfig } from 'pg';

export const ACK_TABLE_DDL = (table: string) =>
  `CREATE TABLE IF NOT EXISTS ${table} (client int NOT NULL, seq int NOT NULL, payload text NOT NULL, checksum text NOT NULL, PRIMARY KEY (client, seq))`;

export interface Commit {
  readonly client: number;
  readonly seq: number;
  readonly payload: string;
  /** Date.now() before the INSERT was sent, and when its acknowledgement arrived (undefined: none came). */
  readonly sentAt: number;
  ackedAt?: number;
}

const md5 = (text: string) => createHash('md5').update(text).digest('hex');
const key = (client: number, seq: number) => `${client}:${seq}`;

export class CommitWriter {
  readonly commits: Commit[] = [];
  private running = false;
  private loops: Promise<void>[] = [];
  private clients: Client[] = [];
  /** The first error each connection ended with (a killed server ends them all). */
  readonly errors: string[] = [];

  constructor(
    private readonly connection: ClientConfig,
    private readonly table: string,
    private readonly connections = 2,
  ) {}

  async start(): Promise<void> {
    const setup = new Client(this.connection);
    await setup.connect();
    try {
      await setup.query(ACK_TABLE_DDL(this.table));
    } finally {
      await setup.end();
    }
    this.running = true;
    for (let c = 0; c < this.connections; c++) {
      const client = new Client(this.connection);
      client.on('error', () => undefined);
      await client.connect();
      this.clients.push(client);
      this.loops.push(this.loop(client, c));
    }
  }

  private async loop(client: Client, id: number): Promise<void> {
    const start = (await client.query<{ next: number }>(`SELECT coalesce(max(seq), 0) + 1 AS next FROM ${this.table} WHERE client = $1`, [id])).rows[0].next;
    for (let seq = start; this.running; seq++) {
      const payload = randomBytes(12).toString('base64');
      const commit: Commit = { client: id, seq, payload, sentAt: Date.now() };
      this.commits.push(commit);
      try {
        await client.query(`INSERT INTO ${this.table} (client, seq, payload, checksum) VALUES ($1, $2, $3, $4)`, [id, seq, payload, md5(payload)]);
        commit.ackedAt = Date.now();
      } catch (error) {
        this.errors.push(error instanceof Error ? error.message : String(error));
        return;
      }
    }
  }

  /** Stops writing (each connection finishes its INSERT in flight) and closes the connections. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.allSettled(this.loops);
    await Promise.allSettled(this.clients.map((c) => c.end()));
    this.loops = [];
    this.clients = [];
  }

  get acknowledged(): number {
    return this.commits.filter((c) => c.ackedAt !== undefined).length;
  }
}

/** The rows of the writer's table on a (restored) server, keyed client:seq, with their checksum checked. */
export async function rowsPresent(connection: ClientConfig, table: string): Promise<{ rows: Map<string, string>; badChecksums: number }> {
  const client = new Client(connection);
  await client.connect();
  try {
    const result = await client.query<{ client: number; seq: number; payload: string; checksum: string }>(`SELECT client, seq, payload, checksum FROM ${table}`);
    const rows = new Map<string, string>();
    let badChecksums = 0;
    for (const row of result.rows) {
      rows.set(key(row.client, row.seq), row.payload);
      if (md5(row.payload) !== row.checksum) badChecksums++;
    }
    return { rows, badChecksums };
  } finally {
    await client.end();
  }
}

export interface LatestComparison {
  acknowledged: number;
  /** Acknowledged commits missing from the restore (or present with other contents). */
  lost: Commit[];
  /**
   * Seconds of writes lost, at most: from when the first lost commit was sent to the loss; 0 when
   * none. Sent, not acknowledged: an acknowledgement that arrived while the client was busy
   * killing the server is only seen afterwards.
   */
  lostSeconds: number;
  /** Unacknowledged INSERTs (in flight at the loss) that the restore holds anyway. */
  unacknowledgedPresent: number;
  /** Rows present that the writer never sent: must be 0. */
  unknown: number;
}

/** What a restore to the latest point kept of the writer's commits, against the moment `lostAt` (ms) the server was lost. */
export function compareLatest(commits: readonly Commit[], present: Map<string, string>, lostAt: number): LatestComparison {
  const sent = new Map(commits.map((c) => [key(c.client, c.seq), c]));
  const acked = commits.filter((c) => c.ackedAt !== undefined);
  const lost = acked.filter((c) => present.get(key(c.client, c.seq)) !== c.payload);
  const firstLost = Math.min(...lost.map((c) => c.sentAt));
  return {
    acknowledged: acked.length,
    lost,
    lostSeconds: lost.length ? Math.max(0, (lostAt - firstLost) / 1000) : 0,
    unacknowledgedPresent: commits.filter((c) => c.ackedAt === undefined && present.has(key(c.client, c.seq))).length,
    unknown: [...present.keys()].filter((k) => !sent.has(k)).length,
  };
}

export interface PointComparison {
  /** Acknowledged before T: all must be present, with their contents. */
  before: number;
  missingBefore: Commit[];
  /** Sent after T: none may be present. */
  after: number;
  presentAfter: Commit[];
  /** Sent before T and acknowledged after it (or never): either outcome is correct. */
  inFlight: number;
  inFlightPresent: number;
  unknown: number;
}

/** What a restore to time `t` (ms) holds of the writer's commits: exactly those committed before it. */
export function compareToTime(commits: readonly Commit[], present: Map<string, string>, t: number): PointComparison {
  const sent = new Map(commits.map((c) => [key(c.client, c.seq), c]));
  const before = commits.filter((c) => c.ackedAt !== undefined && c.ackedAt < t);
  const after = commits.filter((c) => c.sentAt > t);
  const inFlight = commits.filter((c) => c.sentAt <= t && (c.ackedAt === undefined || c.ackedAt >= t));
  return {
    before: before.length,
    missingBefore: before.filter((c) => present.get(key(c.client, c.seq)) !== c.payload),
    after: after.length,
    presentAfter: after.filter((c) => present.has(key(c.client, c.seq))),
    inFlight: inFlight.length,
    inFlightPresent: inFlight.filter((c) => present.has(key(c.client, c.seq))).length,
    unknown: [...present.keys()].filter((k) => !sent.has(k)).length,
  };
}

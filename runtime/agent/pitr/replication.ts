/**
 * A postgres-pitr job's server as a replication connection sees it (replication=true: the
 * walsender's own commands, as pg_receivewal and pg_basebackup use). The base backup, the WAL
 * receiver and its monitor identify the server through it, so that each writes only under the
 * system identifier it was told.
 */
import { Client } from 'pg';
import type { JobConfig } from '../config';
import { secretFromEnv } from '../config';
import { parseHistory, parseLsn, parseWalSegmentSize, TimelineSwitch } from './wal-archive';

export type PitrJob = Extract<JobConfig, { kind: 'postgres-pitr' }>;

/** What IDENTIFY_SYSTEM, TIMELINE_HISTORY and SHOW tell about the server, before anything is written. */
export interface IdentifiedServer {
  readonly systemIdentifier: string;
  readonly timeline: number;
  /** How the server's timeline descends from timeline 1 (its .history file): empty on timeline 1. */
  readonly history: readonly TimelineSwitch[];
  /** The server's flushed WAL position. */
  readonly flushLsn: bigint;
  readonly walSegmentSize: number;
  /** server_version, as the manifest records it. */
  readonly version: string;
  readonly major: number;
}

/** `purpose` names the connection in pg_stat_activity (`tenantry-agent <job> <purpose>`). */
export async function replicationConnection(job: PitrJob, env: NodeJS.ProcessEnv, purpose: string): Promise<Client> {
  const client = new Client({
    host: job.pitr.host,
    port: job.pitr.port,
    user: job.pitr.user,
    password: secretFromEnv(job.pitr.passwordEnv, env),
    replication: 'true',
    application_name: `tenantry-agent ${job.name} ${purpose}`,
    connectionTimeoutMillis: 10_000,
    query_timeout: 10_000,
  } as ConstructorParameters<typeof Client>[0]);
  client.on('error', () => undefined); // a dropped connection fails the next query, which reports it
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    throw error;
  }
  return client;
}

export async function identifyServer(client: Client): Promise<IdentifiedServer> {
  const system = (await client.query<{ systemid: string; timeline: number; xlogpos: string }>('IDENTIFY_SYSTEM')).rows[0];
  const size = (await client.query<{ wal_segment_size: string }>('SHOW wal_segment_size')).rows[0].wal_segment_size;
  const versionNum = (await client.query<{ server_version_num: string }>('SHOW server_version_num')).rows[0].server_version_num;
  const version = (await client.query<{ server_version: string }>('SHOW server_version')).rows[0].server_version;
  const timeline = Number(system.timeline);
  const history = timeline > 1 ? (await client.query<{ content: string | Buffer }>(`TIMELINE_HISTORY ${timeline}`)).rows[0].content.toString() : '';
  return {
    systemIdentifier: String(system.systemid),
    timeline,
    history: parseHistory(history),
    flushLsn: parseLsn(system.xlogpos),
    walSegmentSize: parseWalSegmentSize(size),
    version,
    major: Math.floor(Number(versionNum) / 10000),
  };
}

/** Identifies the server over a connection of its own. */
export async function identifyJobServer(job: PitrJob, env: NodeJS.ProcessEnv, purpose: string): Promise<IdentifiedServer> {
  const client = await replicationConnection(job, env, purpose);
  try {
    return await identifyServer(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

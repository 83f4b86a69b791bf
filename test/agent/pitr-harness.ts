/**
 * What the PITR tests share: a source server set up for streaming, pg_receivewal writing the
 * archive layout (in place of the agent's own receiver, which another part of issue 12 builds),
 * and a server started on a recovered data directory to read what it holds.
 */
import { ChildProcess, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Client } from 'pg';
import { identifyJobServer, PitrJob } from '../../runtime/agent/pitr/replication';
import { walFolder } from '../../runtime/agent/pitr/wal-archive';
import { freePort, PostgresServer, startPostgres, tempDir, withDatabase } from '../helpers/servers';
import { sleep } from '../helpers/processes';

export const REPLICATOR = { user: 'replicator', password: 'replicator-pw' };
export const PITR_ENV = { PITR_PASSWORD: REPLICATOR.password };

export function postgresUser(): { uid: number; gid: number } {
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((entry) => entry.startsWith('postgres:'));
  if (!line) throw new Error('no postgres OS user');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** A source server with a REPLICATION role and verification's read rights, and a database `app`. */
export async function startSource(binDir: string): Promise<PostgresServer> {
  const server = await startPostgres({ binDir, parameters: { wal_level: 'replica', max_wal_senders: '10', max_replication_slots: '10' } });
  await withDatabase(server, 'postgres', async (db) => {
    await db.query(`CREATE ROLE ${REPLICATOR.user} LOGIN REPLICATION PASSWORD '${REPLICATOR.password}'`);
    await db.query(`GRANT pg_read_all_data TO ${REPLICATOR.user}`);
    await db.query('CREATE DATABASE app');
  });
  await withDatabase(server, 'app', (db) => db.query('CREATE TABLE events (id int PRIMARY KEY, batch int NOT NULL, note text)'));
  return server;
}

export function pitrJob(server: PostgresServer, retention = { daily: 7, weekly: 4, monthly: 6 }): PitrJob & { verifySchedule?: string } {
  return {
    name: 'pitr',
    kind: 'postgres-pitr',
    schedule: '0 3 * * *',
    retention,
    offsite: false,
    pitr: { host: server.host, port: server.port, user: REPLICATOR.user, passwordEnv: 'PITR_PASSWORD', slot: 'tenantry_test', windowDays: 7, maxLagSeconds: 60, maxSlotWalKeepMb: 1024, databases: ['app'] },
  };
}

/** Inserts batch `batch` (rows batch*100 .. batch*100+size-1) in one transaction. */
export async function insertBatch(server: PostgresServer, batch: number, size = 50): Promise<void> {
  await withDatabase(server, 'app', (db) => db.query('INSERT INTO events SELECT $1 * 100 + i, $1, md5(i::text) FROM generate_series(0, $2 - 1) i', [batch, size]));
}

export interface Receiver {
  readonly folder: string;
  /** Waits until the receiver has flushed everything the server has written so far. */
  caughtUp(server: PostgresServer): Promise<void>;
  stop(): Promise<void>;
}

/** pg_receivewal --synchronous with a slot, as the postgres OS user, into the job's WAL folder. */
export async function startReceiver(server: PostgresServer, backupDir: string, job: PitrJob): Promise<Receiver> {
  const { systemIdentifier } = await identifyJobServer(job, PITR_ENV, 'test');
  const folder = walFolder(backupDir, job.name, systemIdentifier);
  fs.mkdirSync(folder, { recursive: true });
  const user = postgresUser();
  fs.chownSync(folder, user.uid, user.gid);
  const env = { PGPASSWORD: REPLICATOR.password, PATH: process.env.PATH };
  const common = ['-h', server.host, '-p', String(server.port), '-U', REPLICATOR.user, '--slot', job.pitr.slot];
  const created = spawnSync(path.join(server.binDir, 'pg_receivewal'), [...common, '--create-slot', '--if-not-exists'], { env, ...user });
  if (created.status !== 0) throw new Error(`pg_receivewal --create-slot: ${created.stderr}`);
  const child: ChildProcess = spawn(path.join(server.binDir, 'pg_receivewal'), [...common, '-D', folder, '--synchronous', '--no-loop'], { env, ...user, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return {
    folder,
    caughtUp: async () => {
      for (let i = 0; i < 300; i++) {
        const behind = await withDatabase(server, 'postgres', async (db) =>
          (await db.query<{ behind: boolean }>("SELECT coalesce((SELECT flush_lsn < pg_current_wal_lsn() FROM pg_stat_replication WHERE application_name = 'pg_receivewal'), true) AS behind")).rows[0].behind,
        );
        if (!behind) return;
        if (child.exitCode !== null) throw new Error(`pg_receivewal exited: ${stderr}`);
        await sleep(100);
      }
      throw new Error(`pg_receivewal did not catch up: ${stderr}`);
    },
    stop: async () => {
      if (child.exitCode !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGINT');
      await gone;
    },
  };
}

/** Starts Postgres on a recovered data directory (as its owner would), runs `use` on `database`, stops it. */
export async function readRecovered<T>(pgdata: string, binDir: string, password: string, database: string, use: (db: Client) => Promise<T>): Promise<T> {
  const port = await freePort();
  const socket = tempDir('recovered-socket');
  const user = postgresUser();
  const pgctl = (...args: string[]) => spawnSync(path.join(binDir, 'pg_ctl'), ['-D', pgdata, ...args], { ...user, encoding: 'utf8', env: { PATH: process.env.PATH } });
  const started = pgctl('-o', `-c port=${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${socket}`, '-l', path.join(socket, 'log'), '-w', 'start');
  if (started.status !== 0) throw new Error(`pg_ctl start on the recovered directory: ${started.stderr}${fs.existsSync(path.join(socket, 'log')) ? fs.readFileSync(path.join(socket, 'log'), 'utf8') : ''}`);
  try {
    const db = new Client({ host: '127.0.0.1', port, user: 'postgres', password, database });
    await db.connect();
    try {
      return await use(db);
    } finally {
      await db.end();
    }
  } finally {
    pgctl('-m', 'fast', '-w', 'stop');
  }
}

export async function batchesIn(db: Client): Promise<number[]> {
  return (await db.query<{ batch: number }>('SELECT DISTINCT batch FROM events ORDER BY 1')).rows.map((r) => r.batch);
}

export { startPostgres };

/** Bytes the folder's files hold on the disk, each inode once (as du counts hard links). */
export function diskUsage(dir: string): number {
  const inodes = new Map<number, number>();
  const walk = (d: string): void => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else {
        const stat = fs.statSync(full);
        inodes.set(stat.ino, stat.blocks * 512);
      }
    }
  };
  walk(dir);
  return [...inodes.values()].reduce((a, b) => a + b, 0);
}

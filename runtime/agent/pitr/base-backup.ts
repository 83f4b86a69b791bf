/**
 * The `postgres-pitr` job's backup: a physical base backup with pg_basebackup, in tar format with
 * the WAL it needs streamed alongside (-X stream), so each base backup restores on its own even
 * when the WAL archive has a gap. The runner gives it the same lock, partial directory, checksums,
 * promotion, off-site copy and retention as every job; the WAL archive beside it is wal-archive.ts.
 *
 * Compression, measured on a pgbench database (scale 20, 307 MB, PG 15, 2 cores, to local disk;
 * docs/benchmarks.md): server-side zstd level 1 is the fastest that is also small, 0.35 s and
 * 33 MB, against 0.42-0.65 s and 354 MB uncompressed, 0.43-0.49 s for the same zstd:1 on the
 * client, 1.2 s for server-zstd:6 (31 MB), 0.76-0.82 s for server-gzip:1 (39 MB), 0.22 s but
 * 56 MB for server-lz4; `pg_dump | gzip` of the same database takes 1.6 s. The server compresses
 * before sending, so the network and the agent's CPU carry a tenth of the bytes. pg_wal.tar (the
 * WAL streamed during the backup) stays uncompressed: pg_basebackup streams it beside the
 * server's compressed tar. With one zstd worker thread (`workers=1`) the server compresses beside
 * reading and checksumming the files instead of in turn: on the scale-70 database (1.1 GB, CRC32C
 * manifest) 0.74-0.83 s against 1.02-1.05 s, for 4 % more bytes (51.5 against 49.6 MB).
 */
import * as fs from 'fs';
import * as path from 'path';
import { secretFromEnv } from '../config';
import { UserError } from '../errors';
import { runPipeline, runTool, toolVersion } from '../exec';
import { writtenBackWhile } from '../durable';
import type { BackupOutcome, DriverContext, JobDriver } from '../jobs/driver';
import { BACKUP_MANIFEST, checkBaseBackup, checksumOf, decompressorFor, followFile, hashTarFile, manifestChecksum, readManifest, TarContents } from './base-backup-check';
import { pathForMajor } from './server-binaries';
import { identifyJobServer, PitrJob } from './replication';

/** pg_basebackup's --compress: see the measurements above. */
export const BASE_BACKUP_COMPRESSION = 'server-zstd:level=1,workers=1';

/** What the manifest records of a base backup (its `details`), and what restore reads back. */
export interface BaseBackupDetails {
  /** Where recovery from this backup starts, and the point it is consistent from. */
  readonly startLsn: string;
  readonly endLsn: string;
  /** Before pg_basebackup started and after it ended: the consistent point lies between. */
  readonly startTime: string;
  readonly endTime: string;
  readonly timeline: number;
  /** Names the WAL folder the backup's later WAL is in (wal-archive.ts). */
  readonly systemIdentifier: string;
  readonly serverMajor: number;
  readonly walSegmentBytes: number;
  readonly compression: string;
  /** The data directory's tar and the WAL streamed during the backup, as pg_basebackup named them. */
  readonly baseTar: string;
  readonly walTar: string;
}

/** The data directory's tar as pg_basebackup names it with BASE_BACKUP_COMPRESSION. */
const STREAMED_BASE_TAR = 'base.tar.zst';

export class PitrDriver implements JobDriver {
  /** Per backup folder: its data directory's tar, hashed while pg_basebackup wrote it; check() takes it. */
  private readonly streamed = new Map<string, Promise<TarContents>>();

  constructor(private readonly job: PitrJob) {}

  async backup(dir: string, ctx: DriverContext): Promise<BackupOutcome> {
    const password = secretFromEnv(this.job.pitr.passwordEnv, ctx.env);
    const server = await identifyJobServer(this.job, ctx.env, 'base backup');
    const PATH = await pathForMajor(server.major, ctx.env);
    const env = { PATH, PGPASSWORD: password, PGCONNECT_TIMEOUT: '10', PGAPPNAME: 'tenantry-agent' };
    const startTime = new Date().toISOString();
    // Asked while the copy runs: two processes less at its end.
    const tools = Promise.all([toolVersion('pg_basebackup', { PATH }), toolVersion('zstd')]);
    tools.catch(() => undefined);
    const checksum = manifestChecksum();
    const copied = runTool(
      'pg_basebackup',
      [
        `--host=${this.job.pitr.host}`, `--port=${this.job.pitr.port}`, `--username=${this.job.pitr.user}`, '--no-password',
        `--pgdata=${dir}`, '--format=tar', '--wal-method=stream', '--checkpoint=fast', `--compress=${BASE_BACKUP_COMPRESSION}`,
        '--label=tenantry-agent', `--manifest-checksums=${checksum}`,
      ],
      { env, signal: ctx.signal },
    );
    // The check hashes the data directory's tar as pg_basebackup writes it, on the other core,
    // rather than reading it back afterwards (base-backup-check.ts).
    const streamedTar = path.join(dir, STREAMED_BASE_TAR);
    const streamed = hashTarFile(streamedTar, checksum, ctx.signal, followFile(streamedTar, copied, ctx.signal));
    streamed.catch(() => undefined);
    await copied;
    this.streamed.set(dir, streamed);
    const endTime = new Date().toISOString();
    const manifest = readManifest(await fs.promises.readFile(path.join(dir, BACKUP_MANIFEST), 'utf8'));
    const ranges = manifest['WAL-Ranges'];
    const files = await fs.promises.readdir(dir);
    const details: BaseBackupDetails = {
      startLsn: ranges[0]['Start-LSN'],
      endLsn: ranges[ranges.length - 1]['End-LSN'],
      startTime,
      endTime,
      timeline: ranges[ranges.length - 1].Timeline,
      systemIdentifier: server.systemIdentifier,
      serverMajor: server.major,
      walSegmentBytes: server.walSegmentSize,
      compression: BASE_BACKUP_COMPRESSION,
      baseTar: tarNamed(files, 'base'),
      walTar: tarNamed(files, 'pg_wal'),
    };
    return {
      source: { version: server.version, address: `${this.job.pitr.host}:${this.job.pitr.port}` },
      tools: await tools.then(([pgBasebackup, zstd]) => ({ pg_basebackup: pgBasebackup, zstd })),
      details: { ...details },
    };
  }

  /**
   * pg_verifybackup's checks, read from the tars as they stream (base-backup-check.ts): every
   * file's size and checksum against backup_manifest, and the WAL from start to end point parsed.
   * Every byte of both tars is read (a truncated or damaged archive fails); nothing but the WAL
   * of the backup's own span is written.
   */
  async check(dir: string, raw: Record<string, unknown>, ctx: DriverContext): Promise<string> {
    const details = raw as unknown as BaseBackupDetails;
    const PATH = await pathForMajor(details.serverMajor, ctx.env);
    const streamed = details.baseTar === STREAMED_BASE_TAR ? this.streamed.get(dir) : undefined;
    this.streamed.delete(dir);
    const manifest = await checkBaseBackup({ dir, baseTar: details.baseTar, walTar: details.walTar, PATH, signal: ctx.signal }, streamed);
    return `manifest checked (${manifest.Files.length} files, ${checksumOf(manifest)}${streamed ? ', hashed as written' : ''}) and WAL ${details.startLsn}..${details.endLsn} parsed on timeline ${details.timeline}, system ${details.systemIdentifier}`;
  }

  async restore(): Promise<string> {
    throw new UserError(`a ${this.job.kind} job is restored to a point: tenantry-agent restore ${this.job.name} --to-time <t> | --to-lsn <lsn> | --to-name <name> | --latest`);
  }
}

function tarNamed(files: readonly string[], stem: string): string {
  const name = files.find((file) => file === `${stem}.tar` || file.startsWith(`${stem}.tar.`));
  if (name === undefined) throw new Error(`pg_basebackup wrote no ${stem}.tar (files: ${files.join(', ')})`);
  return name;
}

/** Unpacks a base backup into `target` (created, 0700 as Postgres requires): the data directory, its pg_wal. */
export async function extractBaseBackup(dir: string, details: BaseBackupDetails, target: string, signal?: AbortSignal): Promise<void> {
  // Only the data directory itself is private: the recovery server's user must reach it.
  await fs.promises.mkdir(target, { recursive: true });
  await fs.promises.chmod(target, 0o700);
  await fs.promises.mkdir(path.join(target, 'pg_wal'), { mode: 0o700 });
  await writtenBackWhile(target, async () => {
    await untar(path.join(dir, details.baseTar), target, signal);
    await untar(path.join(dir, details.walTar), path.join(target, 'pg_wal'), signal);
  });
}

/**
 * GNU tar reading 1 MiB records, whole ones from the pipe (--read-full-records), where its
 * default is 10 KiB: one read, and one wake-up of the decompressor, per MiB instead of per 10 KiB.
 * Unpacking the pgbench -s 70 base backup (1.1 GB) through the agent's pipeline: 0.71-0.94 s
 * against 1.37-2.19 s (3 alternated runs, docs/benchmarks.md). The image brings GNU tar (busybox
 * tar knows neither option).
 */
const TAR_EXTRACT = ['--blocking-factor=2048', '--read-full-records', '-x'];

async function untar(file: string, into: string, signal?: AbortSignal): Promise<void> {
  const decompressor = decompressorFor(file);
  if (decompressor === undefined) {
    await runTool('tar', [...TAR_EXTRACT, '-f', file, '-C', into], { signal });
    return;
  }
  await runPipeline({ file: decompressor, args: ['-dc', file] }, { file: 'tar', args: [...TAR_EXTRACT, '-f', '-', '-C', into] }, { signal });
}

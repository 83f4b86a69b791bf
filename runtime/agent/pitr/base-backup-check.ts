/**
 * The check of a base backup before it is promoted, without extracting it: pg_verifybackup's
 * checks, read from the tars as they stream. PostgreSQL 15-17's pg_verifybackup reads only a
 * plain data directory, so checking a tar backup with it means writing the whole uncompressed
 * database to disk first (as much free space again as the database, and most of the job's time:
 * docs/benchmarks.md). Here the compressed data directory's tar is decompressed by zstd into a
 * stream, every file's size and SHA-256 compared with backup_manifest as it passes, and nothing
 * of it is written; only the WAL of the backup's own span (pg_wal.tar, a few segments) is
 * extracted, for pg_waldump to parse from the start to the end point, as pg_verifybackup does.
 *
 * What is checked, as pg_verifybackup checks it: the manifest's own checksum; every file the
 * manifest lists is in the tar with its size and checksum; no file is in the tar that the manifest
 * does not list (but those pg_verifybackup ignores); the WAL from start to end point parses.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { Readable } from 'stream';
import { extract } from 'tar-stream';
import { readToolStream, runTool } from '../exec';

/** pg_basebackup's manifest, beside the tars. */
export const BACKUP_MANIFEST = 'backup_manifest';

/** The manifest's file entry (backup_manifest, PostgreSQL's own JSON). */
interface ManifestFile {
  readonly Path?: string;
  readonly 'Encoded-Path'?: string;
  readonly Size: number;
  readonly 'Checksum-Algorithm'?: string;
  readonly Checksum?: string;
}

export interface PgBackupManifest {
  readonly Files: readonly ManifestFile[];
  readonly 'WAL-Ranges': readonly { Timeline: number; 'Start-LSN': string; 'End-LSN': string }[];
  readonly 'Manifest-Checksum': string;
}

/** Paths pg_verifybackup does not expect in the manifest (its default --ignore list). */
const IGNORED = ['backup_manifest', 'pg_wal', 'postgresql.auto.conf', 'recovery.signal', 'standby.signal'];
const isIgnored = (file: string) => IGNORED.some((ignored) => file === ignored || file.startsWith(`${ignored}/`));

/** Node's name for each checksum algorithm a manifest may name; CRC32C has none, and the agent always asks for SHA-256. */
const HASHES: Record<string, string> = { SHA224: 'sha224', SHA256: 'sha256', SHA384: 'sha384', SHA512: 'sha512' };

/**
 * The manifest, once its own checksum holds: SHA-256 of every byte before the line that holds it
 * (the manifest ends `"Manifest-Checksum": "<hex>"}` and a newline).
 */
export function readManifest(text: string): PgBackupManifest {
  const line = text.lastIndexOf('\n"Manifest-Checksum"');
  if (line < 0) throw new Error('backup_manifest has no "Manifest-Checksum" line: it is incomplete');
  const manifest = JSON.parse(text) as PgBackupManifest;
  const actual = createHash('sha256').update(text.slice(0, line + 1)).digest('hex');
  if (actual !== manifest['Manifest-Checksum']) throw new Error(`backup_manifest's checksum is ${actual}, but it says ${manifest['Manifest-Checksum']}: the manifest is damaged`);
  return manifest;
}

const manifestPath = (file: ManifestFile) => file.Path ?? Buffer.from(file['Encoded-Path'] ?? '', 'hex').toString('utf8');

/**
 * Compares a data directory's tar stream with the manifest: every problem found, in the order
 * pg_verifybackup reports them (files with a wrong size or checksum, then missing, then extra).
 */
export async function compareTarWithManifest(tar: Readable, manifest: PgBackupManifest): Promise<string[]> {
  const expected = new Map(manifest.Files.map((file) => [manifestPath(file), file]));
  const problems: string[] = [];
  const seen = new Set<string>();
  const entries = extract();
  tar.on('error', (error) => entries.destroy(error));
  tar.pipe(entries);
  for await (const entry of entries) {
    const name = entry.header.name.replace(/^\.\//, '');
    if (entry.header.type !== 'file') {
      entry.resume();
      continue;
    }
    seen.add(name);
    const file = expected.get(name);
    const algorithm = file?.['Checksum-Algorithm'];
    const hash = algorithm === undefined ? undefined : HASHES[algorithm];
    if (algorithm !== undefined && hash === undefined) throw new Error(`backup_manifest uses checksum ${algorithm}, which this check does not compute (the agent asks pg_basebackup for SHA256)`);
    const digest = hash === undefined ? undefined : createHash(hash);
    let size = 0;
    for await (const chunk of entry as AsyncIterable<Buffer>) {
      size += chunk.length;
      digest?.update(chunk);
    }
    if (file === undefined) {
      if (!isIgnored(name)) problems.push(`"${name}" is in the backup but not in its manifest`);
      continue;
    }
    if (size !== file.Size) problems.push(`"${name}" has size ${size} in the backup, ${file.Size} in the manifest`);
    else if (digest !== undefined && digest.digest('hex') !== file.Checksum) problems.push(`"${name}" does not match its ${algorithm} checksum in the manifest`);
  }
  for (const name of expected.keys()) if (!seen.has(name) && !isIgnored(name)) problems.push(`"${name}" is in the manifest but not in the backup`);
  return problems;
}

/** Streams a tar, decompressed when its name says how. */
export function readTar<T>(file: string, consume: (tar: Readable) => Promise<T>, signal?: AbortSignal): Promise<T> {
  const decompressor = file.endsWith('.zst') ? 'zstd' : file.endsWith('.lz4') ? 'lz4' : file.endsWith('.gz') ? 'gzip' : undefined;
  if (decompressor === undefined) return consume(fs.createReadStream(file));
  return readToolStream(decompressor, ['-dc', file], consume, { signal });
}

export interface BaseBackupFiles {
  /** The folder pg_basebackup wrote: backup_manifest and the tars. */
  readonly dir: string;
  readonly baseTar: string;
  readonly walTar: string;
  /** PATH with pg_waldump of the backup's major version. */
  readonly PATH: string;
  readonly signal?: AbortSignal;
}

/** Checks a tar-format base backup (see the top of this file); throws with every problem found. */
export async function checkBaseBackup(backup: BaseBackupFiles): Promise<PgBackupManifest> {
  const manifest = readManifest(await fs.promises.readFile(path.join(backup.dir, BACKUP_MANIFEST), 'utf8'));
  const walScratch = path.join(`${backup.dir}.tmp-check`, 'pg_wal');
  await fs.promises.rm(path.dirname(walScratch), { recursive: true, force: true });
  await fs.promises.mkdir(walScratch, { recursive: true });
  try {
    const [problems] = await Promise.all([
      readTar(path.join(backup.dir, backup.baseTar), (tar) => compareTarWithManifest(tar, manifest), backup.signal),
      runTool('tar', ['-xf', path.join(backup.dir, backup.walTar), '-C', walScratch], { signal: backup.signal }),
    ]);
    if (problems.length > 0) throw new Error(`the base backup does not match its manifest: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (and ${problems.length - 5} more)` : ''}`);
    for (const range of manifest['WAL-Ranges']) {
      const args = ['--quiet', `--path=${walScratch}`, `--timeline=${range.Timeline}`, `--start=${range['Start-LSN']}`, `--end=${range['End-LSN']}`];
      await runTool('pg_waldump', args, { env: { PATH: backup.PATH, LC_ALL: 'C' }, signal: backup.signal }).catch((error: Error) => {
        throw new Error(`the WAL of the base backup's span (${range['Start-LSN']}..${range['End-LSN']}, timeline ${range.Timeline}) does not parse: ${error.message}`);
      });
    }
    return manifest;
  } finally {
    await fs.promises.rm(path.dirname(walScratch), { recursive: true, force: true });
  }
}

/**
 * The check of a base backup before it is promoted, without extracting it: pg_verifybackup's
 * checks, read from the tars as they stream. PostgreSQL 15-17's pg_verifybackup reads only a
 * plain data directory, so checking a tar backup with it means writing the whole uncompressed
 * database to disk first (as much free space again as the database, and most of the job's time:
 * docs/benchmarks.md). Here the compressed data directory's tar is decompressed by zstd into a
 * stream, every file's size and checksum compared with backup_manifest as it passes, and nothing
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
import { Readable } from 'stream';
import { extract } from 'tar-stream';
import { readToolStream, runTool } from '../exec';

/**
 * The per-file checksums the check computes. The agent asks pg_basebackup for CRC32C, PostgreSQL's
 * own default: a SHA-256 of every file costs the server 0.5 s of a 1.5 s base backup of 1.1 GB and
 * the check 0.6 s of a core, CRC32C 0.15 s (docs/benchmarks.md), and it is there to catch damage
 * between the server and the disk, which CRC32C does; the store's manifest.json keeps a SHA-256 of
 * each file of the backup (base.tar.zst whole) as for every job. SHA256 where CRC32C cannot load
 * (@node-rs/crc32 has no build for the platform).
 */
export type ManifestChecksum = 'CRC32C' | 'SHA256';

type Crc32c = (input: Buffer, initial?: number) => number;
let crc32cModule: Crc32c | null | undefined;

/** @node-rs/crc32's crc32c, or null when its native part does not load here. */
function crc32c(): Crc32c | null {
  if (crc32cModule === undefined) {
    try {
      crc32cModule = (require('@node-rs/crc32') as { crc32c: Crc32c }).crc32c;
    } catch {
      crc32cModule = null;
    }
  }
  return crc32cModule;
}

/** The checksum the agent asks pg_basebackup for: CRC32C where it can compute it. */
export const manifestChecksum = (): ManifestChecksum => (crc32c() ? 'CRC32C' : 'SHA256');

interface FileDigest {
  update(chunk: Buffer): void;
  /** As backup_manifest writes it: SHA-256 in hex; CRC32C as the hex of its four bytes in the server's (little-endian) order. */
  hex(): string;
}

function fileDigest(algorithm: ManifestChecksum): FileDigest {
  if (algorithm === 'SHA256') {
    const hash = createHash('sha256');
    return { update: (chunk) => hash.update(chunk), hex: () => hash.digest('hex') };
  }
  const compute = crc32c();
  if (compute === null) throw new Error('CRC32C is not available here (@node-rs/crc32 did not load)');
  let crc = 0;
  return {
    update: (chunk) => (crc = compute(chunk, crc)),
    hex: () => {
      const bytes = Buffer.alloc(4);
      bytes.writeUInt32LE(crc >>> 0);
      return bytes.toString('hex');
    },
  };
}

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

/** The algorithm a manifest's files were checksummed with (SHA256 when it names another or none: such a manifest is refused in the comparison). */
export function checksumOf(manifest: PgBackupManifest): ManifestChecksum {
  const named = manifest.Files.find((file) => file['Checksum-Algorithm'] !== undefined)?.['Checksum-Algorithm'];
  return named === 'CRC32C' ? 'CRC32C' : 'SHA256';
}

const manifestPath = (file: ManifestFile) => file.Path ?? Buffer.from(file['Encoded-Path'] ?? '', 'hex').toString('utf8');

/** What a data directory's tar holds: each regular file's size and checksum, by path. */
export interface TarContents {
  readonly algorithm: ManifestChecksum;
  readonly files: ReadonlyMap<string, { readonly size: number; readonly checksum: string }>;
}

/** Reads a tar stream to its end, checksumming every regular file with `algorithm`. */
async function hashTar(tar: Readable, algorithm: ManifestChecksum): Promise<TarContents> {
  const files = new Map<string, { size: number; checksum: string }>();
  const entries = extract();
  tar.on('error', (error) => entries.destroy(error));
  tar.pipe(entries);
  for await (const entry of entries) {
    if (entry.header.type !== 'file') {
      entry.resume();
      continue;
    }
    const digest = fileDigest(algorithm);
    let size = 0;
    for await (const chunk of entry as AsyncIterable<Buffer>) {
      size += chunk.length;
      digest.update(chunk);
    }
    files.set(entry.header.name.replace(/^\.\//, ''), { size, checksum: digest.hex() });
  }
  return { algorithm, files };
}

/**
 * Every difference between a data directory's tar and the manifest, in the order
 * pg_verifybackup reports them (a wrong size or checksum, then missing files, then extra ones).
 */
function compareWithManifest(contents: TarContents, manifest: PgBackupManifest): string[] {
  const problems: string[] = [];
  const listed = new Set<string>();
  for (const file of manifest.Files) {
    const name = manifestPath(file);
    listed.add(name);
    const found = contents.files.get(name);
    if (found === undefined) continue;
    const algorithm = file['Checksum-Algorithm'];
    if (algorithm !== undefined && algorithm !== contents.algorithm) throw new Error(`backup_manifest uses checksum ${algorithm}; the check computed ${contents.algorithm}, which the agent asked pg_basebackup for`);
    if (found.size !== file.Size) problems.push(`"${name}" has size ${found.size} in the backup, ${file.Size} in the manifest`);
    else if (algorithm !== undefined && found.checksum !== file.Checksum) problems.push(`"${name}" does not match its ${algorithm} checksum in the manifest`);
  }
  for (const name of listed) if (!contents.files.has(name) && !isIgnored(name)) problems.push(`"${name}" is in the manifest but not in the backup`);
  for (const name of contents.files.keys()) if (!listed.has(name) && !isIgnored(name)) problems.push(`"${name}" is in the backup but not in its manifest`);
  return problems;
}

/** The tool that decompresses a tar, by its name's ending; undefined for a plain tar. */
export function decompressorFor(file: string): string | undefined {
  return file.endsWith('.zst') ? 'zstd' : file.endsWith('.lz4') ? 'lz4' : file.endsWith('.gz') ? 'gzip' : undefined;
}

/** Checksums a tar's files; `compressed` (the file's bytes) is read from the file itself unless given. */
export function hashTarFile(file: string, algorithm: ManifestChecksum, signal?: AbortSignal, compressed?: Readable): Promise<TarContents> {
  const decompressor = decompressorFor(file);
  if (decompressor === undefined) return hashTar(compressed ?? fs.createReadStream(file), algorithm);
  return readToolStream(decompressor, compressed ? ['-dc'] : ['-dc', file], (tar) => hashTar(tar, algorithm), { signal, stdin: compressed });
}

/** How often a file being written is looked at again once its reader has caught up. */
const FOLLOW_POLL_MS = 20;
const FOLLOW_CHUNK = 1024 * 1024;

/**
 * The bytes of `file` as another process writes it (created late, appended only), ending once
 * `finished` has settled and everything written has been read: a check can hash a backup while
 * pg_basebackup is still writing it, instead of reading it back afterwards.
 */
export function followFile(file: string, finished: Promise<unknown>, signal?: AbortSignal): Readable {
  let settled = false;
  void finished.then(
    () => (settled = true),
    () => (settled = true),
  );
  const wait = () => Promise.race([new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS)), finished.catch(() => undefined)]);
  async function* chunks(): AsyncGenerator<Buffer> {
    let handle: fs.promises.FileHandle | undefined;
    while (handle === undefined) {
      if (signal?.aborted) throw new Error(`stopped: the agent received ${String(signal.reason)}`);
      const wasSettled = settled;
      handle = await fs.promises.open(file, 'r').catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
        return undefined;
      });
      if (handle === undefined && wasSettled) throw new Error(`${path.basename(file)} was never written`);
      if (handle === undefined) await wait();
    }
    try {
      let position = 0;
      for (;;) {
        if (signal?.aborted) throw new Error(`stopped: the agent received ${String(signal.reason)}`);
        // Read after noting whether the writer had finished: then an empty read means the end.
        const wasSettled = settled;
        const { bytesRead, buffer } = await handle.read(Buffer.allocUnsafe(FOLLOW_CHUNK), 0, FOLLOW_CHUNK, position);
        if (bytesRead > 0) {
          position += bytesRead;
          yield buffer.subarray(0, bytesRead);
        } else if (wasSettled) return;
        else await wait();
      }
    } finally {
      await handle.close();
    }
  }
  return Readable.from(chunks(), { objectMode: false });
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

/**
 * Checks a tar-format base backup (see the top of this file); throws with every problem found.
 * `streamed`: the data directory's tar already hashed while it was written (followFile).
 */
export async function checkBaseBackup(backup: BaseBackupFiles, streamed?: Promise<TarContents>): Promise<PgBackupManifest> {
  const manifest = readManifest(await fs.promises.readFile(path.join(backup.dir, BACKUP_MANIFEST), 'utf8'));
  const walScratch = path.join(`${backup.dir}.tmp-check`, 'pg_wal');
  await fs.promises.rm(path.dirname(walScratch), { recursive: true, force: true });
  await fs.promises.mkdir(walScratch, { recursive: true });
  try {
    const [contents] = await Promise.all([
      streamed ?? hashTarFile(path.join(backup.dir, backup.baseTar), checksumOf(manifest), backup.signal),
      runTool('tar', ['-xf', path.join(backup.dir, backup.walTar), '-C', walScratch], { signal: backup.signal }),
    ]);
    const problems = compareWithManifest(contents, manifest);
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

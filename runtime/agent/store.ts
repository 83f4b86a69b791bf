/**
 * The backups of one job on the local volume:
 *
 *   <backupDir>/<job>/<id>/             a finished backup: data files + manifest.json (status ok)
 *   <backupDir>/<job>/<id>.partial/     a run in progress, or debris of an interrupted one
 *   <backupDir>/<job>/<id>.failed.json  the manifest of a failed run (a record, no data)
 *   <backupDir>/<job>/.lock             held while a run or verification is in progress
 *   <backupDir>/<job>/wal/, restores/   a postgres-pitr job's WAL archive and prepared restores
 *                                       (runtime/agent/pitr/): never read as backups
 *
 * Only a directory without a suffix is ever read as a backup, and it only gets its final name by
 * a rename after every file in it has been fsynced, so nothing partial can look finished.
 */
import * as fs from 'fs';
import * as path from 'path';
import { fsyncPath, promoteDirectory, writeFileAtomic } from './durable';
import { isLockHeld } from './lock';
import { Manifest, MANIFEST_FILE, parseManifest, readManifest, renderManifest } from './manifest';
import { PITR_FOLDERS } from './pitr/layout';

const PARTIAL = '.partial';
/** What `list` says of a good backup whose manifest predates manifest checksums. */
const UNCHECKSUMMED = 'manifest without checksum (written before manifests had one); its data files are still checked against their sha256';
const FAILED = '.failed.json';
/** The WAL archive and prepared restores of a postgres-pitr job (pitr/layout.ts) are not backups. */
const NOT_BACKUPS: ReadonlySet<string> = new Set(Object.values(PITR_FOLDERS));

/** `damaged`: a finished backup whose manifest cannot be read or fails its own checksum. */
export type EntryState = 'ok' | 'failed' | 'running' | 'interrupted' | 'damaged';

export interface BackupEntry {
  readonly id: string;
  readonly job: string;
  readonly state: EntryState;
  readonly startedAt: Date;
  /** Absent for unfinished runs, and for a backup whose manifest cannot be read (state damaged). */
  readonly manifest?: Manifest;
  /** Why the entry is not usable, when it is not. */
  readonly problem?: string;
  /**
   * A finished backup directory whose manifest cannot be read (damaged, or written by a newer
   * agent in a format this one does not know): retention never removes it.
   */
  readonly unreadable?: boolean;
}

/** `pg-20250630T021500.123Z`: sortable, readable, unique per job (one run at a time). */
export function newBackupId(job: string, at: Date): string {
  return `${job}-${at.toISOString().replace(/[-:]/g, '')}`;
}

/** The start time encoded in an id, for entries without a manifest. */
export function startedAtFromId(id: string): Date {
  const match = /(\d{8}T\d{6}\.\d{3}Z)$/.exec(id);
  if (!match) return new Date(0);
  const s = match[1];
  return new Date(`${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13)}`);
}

export class BackupStore {
  readonly dir: string;
  readonly lockFile: string;

  constructor(backupDir: string, readonly job: string) {
    this.dir = path.join(backupDir, job);
    this.lockFile = path.join(this.dir, '.lock');
  }

  async ensureDir(): Promise<void> {
    await fs.promises.mkdir(this.dir, { recursive: true });
  }

  backupDir(id: string): string {
    return path.join(this.dir, id);
  }

  partialDir(id: string): string {
    return path.join(this.dir, `${id}${PARTIAL}`);
  }

  async createPartial(id: string): Promise<string> {
    const dir = this.partialDir(id);
    await fs.promises.mkdir(dir);
    return dir;
  }

  /**
   * Removes the debris of interrupted runs. Call it holding the job's lock: then no partial
   * directory can belong to a live run.
   */
  async removeInterrupted(): Promise<string[]> {
    const removed: string[] = [];
    for (const name of await this.names()) {
      if (name.endsWith(PARTIAL) || name.includes('.tmp-')) {
        await fs.promises.rm(path.join(this.dir, name), { recursive: true, force: true });
        removed.push(name);
      }
    }
    return removed;
  }

  /** Writes the manifest into the partial directory and gives the backup its final name. */
  async promote(manifest: Manifest): Promise<void> {
    const partial = this.partialDir(manifest.id);
    await fs.promises.writeFile(path.join(partial, MANIFEST_FILE), renderManifest(manifest));
    await promoteDirectory(partial, this.backupDir(manifest.id));
  }

  /** Records a failed run; a record that cannot be written (full disk) must not hide the failure. */
  async recordFailure(manifest: Manifest): Promise<void> {
    await fs.promises.rm(this.partialDir(manifest.id), { recursive: true, force: true });
    await writeFileAtomic(path.join(this.dir, `${manifest.id}${FAILED}`), renderManifest(manifest));
  }

  async updateManifest(manifest: Manifest): Promise<void> {
    await writeFileAtomic(path.join(this.backupDir(manifest.id), MANIFEST_FILE), renderManifest(manifest));
  }

  async read(id: string): Promise<Manifest> {
    const file = path.join(this.backupDir(id), MANIFEST_FILE);
    return parseManifest(await fs.promises.readFile(file, 'utf8'), file);
  }

  /** Whether a finished backup of this id is here. */
  exists(id: string): boolean {
    return fs.existsSync(path.join(this.backupDir(id), MANIFEST_FILE));
  }

  async remove(id: string): Promise<void> {
    await fs.promises.rm(this.backupDir(id), { recursive: true, force: true });
    await fs.promises.rm(this.partialDir(id), { recursive: true, force: true });
    await fs.promises.rm(path.join(this.dir, `${id}${FAILED}`), { force: true });
    await fsyncPath(this.dir);
  }

  /** Every entry, oldest first. */
  async list(): Promise<BackupEntry[]> {
    const running = isLockHeld(this.lockFile);
    const entries: BackupEntry[] = [];
    for (const name of await this.names()) {
      if (name.startsWith('.') || name.includes('.tmp-') || NOT_BACKUPS.has(name)) continue;
      if (name.endsWith(PARTIAL)) {
        const id = name.slice(0, -PARTIAL.length);
        const state = running ? 'running' : 'interrupted';
        entries.push({ id, job: this.job, state, startedAt: startedAtFromId(id), problem: state === 'interrupted' ? 'interrupted run (removed at the next run)' : undefined });
      } else {
        entries.push(await this.readEntry(name));
      }
    }
    return entries.sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime());
  }

  private async readEntry(name: string): Promise<BackupEntry> {
    const isRecord = name.endsWith(FAILED);
    const id = isRecord ? name.slice(0, -FAILED.length) : name;
    const file = isRecord ? path.join(this.dir, name) : path.join(this.dir, name, MANIFEST_FILE);
    try {
      const { manifest, integrity } = readManifest(await fs.promises.readFile(file, 'utf8'), file);
      const state = !isRecord && manifest.status === 'ok' ? 'ok' : 'failed';
      const problem = manifest.error ?? (state === 'ok' && integrity === 'absent' ? UNCHECKSUMMED : undefined);
      return { id, job: this.job, state, startedAt: new Date(manifest.startedAt), manifest, problem };
    } catch (e) {
      return { id, job: this.job, state: isRecord ? 'failed' : 'damaged', startedAt: startedAtFromId(id), problem: `unreadable manifest: ${(e as Error).message}`, unreadable: !isRecord };
    }
  }

  private async names(): Promise<string[]> {
    try {
      return await fs.promises.readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }
}

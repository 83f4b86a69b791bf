/**
 * Restore to a point, step 1 of pitr-design.md: `tenantry-agent restore <job> --to-time T |
 * --to-lsn L | --to-name N | --latest` prepares a recovered data directory on the backup volume
 * and names it in `restores/pending`; the Postgres container's start wrapper swaps it in (step 2).
 *
 *   restores/<id>.partial/pgdata   while recovering (removed on failure, or by the next restore)
 *   restores/<id>/pgdata           recovered, promoted, cleanly shut down
 *   restores/<id>/READY.json       what it is: target, reached LSN and time, timeline, base backup, checks
 *   restores/pending               the id to apply, one line, written last and atomically
 *
 * Nothing is written before the base backup and an unbroken WAL run covering the target are
 * found; a failure at any later step removes its partial folder and leaves READY.json and
 * `pending` unwritten, so the server's own data directory is never touched.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { UserError } from '../errors';
import { isGood, Manifest } from '../manifest';
import { Agent, driverContext, withJobLock } from '../runner';
import { writeFileAtomic } from '../durable';
import { BaseBackupDetails, extractBaseBackup } from './base-backup';
import type { PitrJob } from './replication';
import { runTool } from '../exec';
import { describeTarget, recover, RecoveredPoint, RecoveryTarget, serverUser } from './recovery';
import { pathForMajor } from './server-binaries';
import { PITR_FOLDERS, PREPARED_RESTORE } from './layout';
import { archiveWrittenUntil } from './window';
import { firstGap, formatLsn, listWal, parseLsn, SegmentId, segmentName, segmentOf, WalContents, walFolder, withSegmentLinks } from './wal-archive';

const PARTIAL = '.partial';
const SCRATCH_LOG = 'tenantry-scratch-server.log';

export interface ReadyRestore extends RecoveredPoint {
  readonly id: string;
  readonly target: RecoveryTarget;
  readonly baseBackup: string;
  readonly createdAt: string;
}

/** A good base backup with its recorded details. */
export interface BaseBackup {
  readonly id: string;
  readonly details: BaseBackupDetails;
}

export function goodBaseBackups(manifests: readonly Manifest[]): BaseBackup[] {
  return manifests.filter(isGood).map((m) => ({ id: m.id, details: m.details as unknown as BaseBackupDetails }));
}

/**
 * The newest base backup that is consistent before the target (its end precedes it), oldest
 * first in `backups`. A restore point is placed by its LSN (`namedAt`). Refuses a target before
 * every base backup's end: no kept backup can reach it.
 */
export function chooseBaseBackup(backups: readonly BaseBackup[], target: RecoveryTarget, namedAt?: bigint): BaseBackup {
  const oldest = backups[0];
  if (oldest === undefined) throw new UserError('the job has no good base backup yet: run one (tenantry-agent run <job>) before a restore can start from it');
  const fits = (b: BaseBackup) => {
    if ('time' in target) return Date.parse(b.details.endTime) <= Date.parse(target.time);
    if ('lsn' in target) return parseLsn(b.details.endLsn) <= parseLsn(target.lsn);
    if ('name' in target) return namedAt !== undefined && parseLsn(b.details.endLsn) <= namedAt;
    return true;
  };
  const chosen = [...backups].reverse().find(fits);
  if (chosen === undefined) {
    throw new UserError(
      `${describeTarget(target)} lies before the restorable window: the oldest base backup kept, ${oldest.id}, is consistent from ${oldest.details.endTime} (LSN ${oldest.details.endLsn})`,
    );
  }
  return chosen;
}

/** The UTC stamp a restore is named by: 20261201T171500Z. */
export const restoreId = (at: Date) => at.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');

export interface PitrRestoreOptions {
  readonly target: RecoveryTarget;
  /** Recover into this folder instead of restores/<id> (a scratch server; nothing pending is written). */
  readonly targetDir?: string;
  /** With targetDir: start the recovered server on 127.0.0.1 at this port and leave it running. */
  readonly port?: number;
}

export function restoreToPoint(agent: Agent, job: PitrJob, options: PitrRestoreOptions): Promise<string> {
  return withJobLock(agent, job, async (store) => {
    const ctx = driverContext(agent, job);
    const backups = goodBaseBackups((await store.list()).flatMap((e) => (e.state === 'ok' && e.manifest ? [e.manifest] : [])));
    const newest = backups[backups.length - 1];
    const folder = newest && walFolder(agent.config.backupDir, job.name, newest.details.systemIdentifier);
    const PATH = newest ? await pathForMajor(newest.details.serverMajor, agent.env) : '';
    const namedAt = 'name' in options.target && folder ? await findRestorePoint(folder, options.target.name, backups[0].details, PATH) : undefined;
    const base = chooseBaseBackup(backups, options.target, namedAt);
    const wal = walFolder(agent.config.backupDir, job.name, base.details.systemIdentifier);
    const archiveEnd = await checkWalCovers(wal, base, options.target, namedAt);
    const { replay, note } = 'time' in options.target ? await replayToTime(wal, base, options.target.time, PATH) : { replay: options.target, note: undefined };

    const restores = path.join(store.dir, PITR_FOLDERS.restores);
    await fs.promises.mkdir(restores, { recursive: true });
    for (const name of await fs.promises.readdir(restores)) if (name.endsWith(PARTIAL)) await fs.promises.rm(path.join(restores, name), { recursive: true, force: true });
    let createdAt = new Date();
    // Ids are stamps to the second: a second restore within the same second waits for the next.
    while (fs.existsSync(path.join(restores, restoreId(createdAt)))) {
      await new Promise((resolve) => setTimeout(resolve, 1000 - (createdAt.getTime() % 1000)));
      createdAt = new Date();
    }
    const id = restoreId(createdAt);
    const work = options.targetDir ?? path.join(restores, `${id}${PARTIAL}`);
    if (options.targetDir !== undefined && fs.existsSync(options.targetDir) && (await fs.promises.readdir(options.targetDir)).length > 0) {
      throw new UserError(`--target-dir ${options.targetDir} is not empty: recover into an empty or new folder`);
    }
    const pgdata = options.targetDir ?? path.join(work, PREPARED_RESTORE.pgdata);
    try {
      ctx.log.info('restore to a point started', { id, target: describeTarget(options.target), baseBackup: base.id });
      await extractBaseBackup(store.backupDir(base.id), base.details, pgdata, agent.signal);
      const server = await recover({ pgdata, walFolder: wal, target: replay, PATH, probeRole: job.pitr.user, log: ctx.log, signal: agent.signal });
      // Postgres takes a damaged record for the end of the WAL and promotes there: short of the
      // archive's newest segment, "latest" lost what the damaged segment and those after it hold.
      const reachedSegment = segmentOf(parseLsn(server.point.reachedLsn), base.details.walSegmentBytes);
      if ('latest' in replay && reachedSegment < archiveEnd) {
        await server.abandon();
        throw new Error(
          `recovery stopped at ${server.point.reachedLsn}, in segment ${segmentName({ timeline: base.details.timeline, segno: reachedSegment }, base.details.walSegmentBytes)}, before the archive's newest segment: ` +
            'that segment or the next is damaged; restore to an LSN before it (--to-lsn)',
        );
      }
      const stopped = await server.stop();
      const point = { ...stopped, checks: note ? [...stopped.checks, note] : stopped.checks };
      const ready: ReadyRestore = { id, target: options.target, ...point, baseBackup: base.id, createdAt: createdAt.toISOString() };
      if (options.targetDir !== undefined) {
        const recovered = `recovered into ${options.targetDir} to ${describeTarget(options.target)}: LSN ${point.reachedLsn}, last transaction ${point.reachedTime ?? 'none'}, timeline ${point.timeline}`;
        if (options.port === undefined) return recovered;
        await startScratchServer(options.targetDir, options.port, PATH);
        return `${recovered}; it runs on 127.0.0.1:${options.port} with the source's roles and pg_hba.conf (stop it with: pg_ctl -D ${options.targetDir} stop)`;
      }
      await writeFileAtomic(path.join(work, PREPARED_RESTORE.ready), `${JSON.stringify(ready, null, 2)}\n`);
      await fs.promises.rename(work, path.join(restores, id));
      await writeFileAtomic(path.join(restores, PREPARED_RESTORE.pending), `${id}\n`);
      ctx.log.info('restore prepared', { id, reachedLsn: point.reachedLsn, reachedTime: point.reachedTime });
      return `${preparedLine(id, `${describeTarget(options.target)}: LSN ${point.reachedLsn}, last transaction ${point.reachedTime ?? 'none'}, timeline ${point.timeline}, from ${base.id}`)}; ${APPLY_HINT(id)}`;
    } catch (error) {
      if (options.targetDir === undefined) await fs.promises.rm(work, { recursive: true, force: true });
      throw error;
    }
  });
}

/**
 * Starts the recovered copy as a server of its own, outliving this command (pg_ctl detaches it):
 * TCP on 127.0.0.1 only, no socket folder to provide. Its output goes to a file in the data
 * directory, so that no pipe of this command's outlives it.
 */
async function startScratchServer(pgdata: string, port: number, PATH: string): Promise<void> {
  const options = `-c port=${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c archive_mode=off`;
  const log = path.join(pgdata, SCRATCH_LOG);
  await runTool('pg_ctl', ['--pgdata', pgdata, '--options', options, '--log', log, '--wait', '--silent', 'start'], { env: { PATH, LC_ALL: 'C' }, user: serverUser(pgdata) });
}

/**
 * The archive holds, unbroken, every segment from the base backup's end to the target (to its
 * newest segment for a time target and for latest, whose place in the WAL is not known before
 * replay). Refuses before anything is written when it does not; returns the newest segment.
 */
async function checkWalCovers(folder: string, base: BaseBackup, target: RecoveryTarget, namedAt: bigint | undefined): Promise<bigint> {
  const bytes = base.details.walSegmentBytes;
  const files = archivedFiles(await listWal(folder, bytes));
  const from = segmentOf(parseLsn(base.details.endLsn), bytes);
  const newest = files[files.length - 1];
  if (newest === undefined || newest.segno < from) {
    throw new UserError(`no WAL is archived after base backup ${base.id} (its end is ${base.details.endLsn}; ${folder} holds nothing from there): is the WAL receiver running?`);
  }
  const to = 'lsn' in target ? segmentOf(parseLsn(target.lsn), bytes) : namedAt !== undefined ? segmentOf(namedAt, bytes) : undefined;
  if (to !== undefined && to > newest.segno) throw new UserError(`${describeTarget(target)} lies after the end of the archive (its newest segment is ${newest.name})`);
  const gap = firstGap(files, from, to);
  if (gap !== undefined) {
    const missing = segmentName({ timeline: base.details.timeline, segno: gap }, bytes);
    throw new UserError(
      `WAL segment ${missing} is missing from the archive (${folder}): ${describeTarget(target)} lies across a gap; ` +
        `restore to an LSN before ${missing} begins, or from a base backup taken after the gap`,
    );
  }
  return newest.segno;
}

/** The first part of the result of a prepared restore; the operator CLI reads the id and what was reached from it (preparedRestore). */
const preparedLine = (id: string, reached: string) => `restore ${id} is ready (${reached})`;
const APPLY_HINT = (id: string) => `restart the Postgres container to apply it (its data directory is kept as pgdata.before-restore-${id})`;

/** The id and what was reached, from `tenantry-agent restore postgres-pitr`'s output; undefined if it prepared none. */
export function preparedRestore(output: string): { id: string; reached: string } | undefined {
  const found = /restore (\d{8}T\d{6}Z) is ready \((.*)\); restart the Postgres container/.exec(output);
  return found ? { id: found[1], reached: found[2] } : undefined;
}

/**
 * Postgres stops a time target at the first transaction that ended after it, and fails when the
 * WAL ends before one: so a time after the archive's last transaction (a quiet database) is
 * recovered to the archive's end, which is that moment's state, provided the receiver was still
 * writing the archive at that time (its newest file was written at or after it). Otherwise the
 * archive may lack transactions of that time, and the restore is refused with what it does hold.
 */
async function replayToTime(folder: string, base: BaseBackup, time: string, PATH: string): Promise<{ replay: RecoveryTarget; note?: string }> {
  const target: RecoveryTarget = { time };
  const bytes = base.details.walSegmentBytes;
  const contents = await listWal(folder, bytes);
  const segments = archivedFiles(contents);
  const first = segmentOf(parseLsn(base.details.endLsn), bytes);
  let lastEnded: Date | undefined;
  for (const file of [...segments].reverse()) {
    if (file.segno < first) break;
    const output = await dumpWal(folder, bytes, PATH, ['--rmgr', 'Transaction', '--timeline', String(file.timeline), '--start', formatLsn(file.segno * BigInt(bytes)), '--end', formatLsn((file.segno + 1n) * BigInt(bytes))]);
    const ends = [...output.matchAll(/desc: (?:COMMIT|ABORT) (\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?) UTC/g)].map((m) => new Date(`${m[1]}T${m[2]}Z`));
    if (ends.length > 0) {
      lastEnded = ends[ends.length - 1];
      break;
    }
  }
  if (lastEnded !== undefined && lastEnded.getTime() >= Date.parse(time)) return { replay: target };
  const written = (await archiveWrittenUntil(folder, contents)) ?? new Date(0);
  const last = lastEnded ? `the last transaction in it ended at ${lastEnded.toISOString()}` : 'it holds no transaction after the base backup';
  if (written.getTime() < Date.parse(time)) {
    throw new UserError(
      `${describeTarget(target)} is after the end of the archive: its newest WAL was written at ${written.toISOString()} and ${last}. ` +
        'Transactions of that time may be missing (is the WAL receiver running?); restore --latest to recover everything archived',
    );
  }
  return { replay: { latest: true }, note: `no transaction in the archive ended between ${lastEnded?.toISOString() ?? 'the base backup'} and the target; the archive was written until ${written.toISOString()}, so it was recovered to its end` };
}

/**
 * The LSN of restore point `name` (pg_create_restore_point), scanning the archive from the oldest
 * base backup's start, the receiver's `.partial` included. A name used twice is refused: recovery
 * would stop at whichever comes first after the chosen base backup.
 */
async function findRestorePoint(folder: string, name: string, oldest: BaseBackupDetails, PATH: string): Promise<bigint> {
  const output = await dumpWal(folder, oldest.walSegmentBytes, PATH, ['--rmgr', 'XLOG', '--start', oldest.startLsn, '--timeline', String(oldest.timeline)]);
  const found = [...output.matchAll(/lsn: ([0-9A-F]+\/[0-9A-F]+),.*desc: RESTORE_POINT (.*)$/gm)].filter((m) => m[2] === name).map((m) => m[1]);
  if (found.length === 0) throw new UserError(`the archive has no restore point named "${name}" after the oldest base backup kept (from ${oldest.startLsn})`);
  if (found.length > 1) throw new UserError(`the archive has ${found.length} restore points named "${name}" (at ${found.join(', ')}): restore with --to-lsn <one of them>`);
  return parseLsn(found[0]);
}

/** Completed segments and the receiver's `.partial`, by segment number then timeline. */
function archivedFiles(contents: WalContents): (SegmentId & { readonly name: string })[] {
  return [...contents.segments, ...contents.partials].sort((a, b) => (a.segno === b.segno ? a.timeline - b.timeline : a.segno < b.segno ? -1 : 1));
}

/**
 * pg_waldump over the archive, the receiver's `.partial` read under its segment's name (through a
 * scratch folder of links beside the archive), timestamps in UTC.
 */
async function dumpWal(folder: string, segmentBytes: number, PATH: string, args: string[]): Promise<string> {
  const names = archivedFiles(await listWal(folder, segmentBytes)).map((file) => file.name);
  return withSegmentLinks(folder, names, path.dirname(folder), (linked) => walDump(PATH, ['--path', linked, ...args]));
}

/**
 * pg_waldump's output up to the end of the WAL it can read: it ends with an error at the first
 * invalid record (the unwritten rest of the newest segment), which is not a failure here.
 */
function walDump(PATH: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('pg_waldump', args, { env: { PATH, LC_ALL: 'C', TZ: 'UTC' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.resume();
    child.once('error', reject);
    child.once('close', () => resolve(stdout));
  });
}

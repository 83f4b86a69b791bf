/**
 * Continuous WAL archiving of a postgres-pitr job while `serve` runs: pg_receivewal of the
 * server's major version, `--synchronous` (each write flushed and confirmed at once, so a crash of
 * the server loses under a second of commits, where archive_command loses up to archive_timeout),
 * on a replication slot that keeps WAL on the server while the receiver is down.
 *
 * Two loops per job. The supervisor identifies the server (IDENTIFY_SYSTEM over a replication
 * connection) before pg_receivewal writes anything, so another server's WAL goes to another folder;
 * creates the slot when absent; runs pg_receivewal (in its own process group, see exec.ts: it never
 * outlives the agent); restarts it with backoff. The monitor polls the server once per `pollMs`
 * over its own replication connection for the lag and the slot's retained WAL, seals completed
 * segments, checks continuity, copies segments off-site, and alerts.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Client } from 'pg';
import { secretFromEnv } from '../config';
import { errorMessage } from '../errors';
import { GuardedChild, runTool, spawnGuarded } from '../exec';
// The tool-directory choice still lives in the logical Postgres driver in this worktree; another
// helper of issue 12 is moving it into a tools module (the integrator updates this import).
import { clientToolDir } from '../jobs/postgres/tools';
import type { Logger } from '../log';
import { openOffsite } from '../offsite-client';
import type { Agent } from '../runner';
import { ArchiveStatus } from './archive-status';
import { IdentifiedServer, identifyJobServer, identifyServer, PitrJob, replicationConnection } from './replication';
import {
  abandonedFiles,
  archivedSystems,
  checkContinuity,
  formatLsn,
  listWal,
  markOffsite,
  parseLsn,
  pendingOffsite,
  readServerFile,
  sealCompleted,
  segmentStart,
  setAsideAbandoned,
  WalContents,
  walFolder,
  writeServerFile,
} from './wal-archive';

export interface ReceiverTiming {
  /** How often the monitor polls the server and the folder. @default 1000 */
  readonly pollMs: number;
  /** First restart delay after pg_receivewal exits, doubling per failure in a row. @default 1000 */
  readonly restartDelayMs: number;
  /** @default 30000 */
  readonly maxRestartDelayMs: number;
  /** A receiver that ran this long before exiting restarts after the first delay again. @default 60000 */
  readonly stableAfterMs: number;
  /** How often the whole chain is checked for gaps even when no segment was completed. @default 60000 */
  readonly continuityEveryMs: number;
}

export const RECEIVER_TIMING: ReceiverTiming = { pollMs: 1000, restartDelayMs: 1000, maxRestartDelayMs: 30_000, stableAfterMs: 60_000, continuityEveryMs: 60_000 };

/** Percentages of maxSlotWalKeepMb at which the webhook hears of the slot's retained WAL. */
export const SLOT_ALERT_PERCENTS = [50, 80] as const;

const MB = 1024 * 1024;

/** The slot's restart_lsn: what the receiver has confirmed flushed (undefined: absent, or never streamed). */
async function slotRestartLsn(client: Client, slot: string): Promise<bigint | undefined> {
  const row = (await client.query<{ restart_lsn: string | null }>(`READ_REPLICATION_SLOT ${slot}`)).rows[0];
  return row?.restart_lsn ? parseLsn(row.restart_lsn) : undefined;
}

/**
 * What the archive holds of the server's WAL: the slot's confirmed position, but never past the
 * end of the newest file the folder holds on the server's timeline. A slot created anew (after a
 * restore replaced the data directory, which drops pg_replslot) starts at the server's current
 * position although nothing of it is archived yet: until pg_receivewal has written that
 * segment, the archive is behind, and /metrics and /health say so.
 */
export function archivedPosition(confirmed: bigint | undefined, contents: WalContents | undefined, timeline: number): bigint | undefined {
  if (confirmed === undefined || contents === undefined) return undefined;
  const files = [...contents.segments, ...contents.partials].filter((f) => f.timeline === timeline);
  if (files.length === 0) return undefined;
  const newest = files.reduce((a, b) => (b.segno > a.segno ? b : a));
  const end = segmentStart(newest.segno + 1n, contents.segmentSize);
  return confirmed < end ? confirmed : end;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

export class WalReceiver {
  private readonly stop$ = new AbortController();
  private readonly log: Logger;
  private child?: GuardedChild;
  private loops: Promise<void>[] = [];
  /** The folder pg_receivewal writes into, once the server is identified. */
  private folder?: string;
  /** (time, server flush LSN) samples not yet known to be archived, oldest first. */
  private samples: { at: Date; lsn: bigint }[] = [];
  private monitor?: Client;
  private slotAlerted = 0;
  private stuckAlerted = false;
  private knownGaps = new Set<string>();
  private lastContinuityAt = 0;
  /** The off-site copy in progress, if any: one at a time, awaited on stop. */
  private upload?: Promise<void>;
  private offsiteFailing = false;

  constructor(
    private readonly agent: Agent,
    private readonly job: PitrJob,
    readonly status: ArchiveStatus,
    private readonly timing: ReceiverTiming = RECEIVER_TIMING,
  ) {
    this.log = agent.log.forJob(job.name);
  }

  /** The running pg_receivewal's PID (for an operator's `ps`, and fault tests). */
  get receiverPid(): number | undefined {
    return this.child?.child.pid;
  }

  start(): void {
    this.loops = [this.supervise(), this.watch()];
  }

  /** Stops pg_receivewal (SIGTERM to its group, SIGKILL after the grace) and both loops. */
  async stop(): Promise<void> {
    this.stop$.abort();
    this.child?.stop();
    await Promise.allSettled(this.loops);
    await this.upload;
    await this.monitor?.end().catch(() => undefined);
  }

  private get stopped(): boolean {
    return this.stop$.signal.aborted || this.agent.signal.aborted;
  }

  // ------------------------------------------------------------------------------ supervisor

  private async supervise(): Promise<void> {
    let failuresInARow = 0;
    while (!this.stopped && this.status.halted === undefined) {
      const startedAt = Date.now();
      try {
        await this.receiveOnce();
      } catch (error) {
        this.status.lastError = errorMessage(error);
        this.log.warn('WAL receiver stopped', { error: this.status.lastError });
      }
      this.status.receiverUp = false;
      this.status.downSince ??= new Date();
      if (this.stopped || this.status.halted !== undefined) break;
      failuresInARow = Date.now() - startedAt >= this.timing.stableAfterMs ? 0 : failuresInARow + 1;
      await sleep(Math.min(this.timing.maxRestartDelayMs, this.timing.restartDelayMs * 2 ** Math.max(0, failuresInARow - 1)), this.stop$.signal);
    }
  }

  /** One identified run of pg_receivewal, until it exits. */
  private async receiveOnce(): Promise<void> {
    const server = await identifyJobServer(this.job, this.agent.env, 'receiver');
    const folder = await this.folderFor(server);
    await this.leaveAbandonedBranch(folder, server);
    const toolDir = clientToolDir(server.major);
    if (!toolDir) this.log.warn('no client tools installed for this server version; using pg_receivewal on PATH', { serverMajor: server.major });
    const env = {
      ...process.env,
      ...(toolDir ? { PATH: [toolDir, process.env.PATH].filter(Boolean).join(':') } : {}),
      PGHOST: this.job.pitr.host,
      PGPORT: String(this.job.pitr.port),
      PGUSER: this.job.pitr.user,
      PGPASSWORD: secretFromEnv(this.job.pitr.passwordEnv, this.agent.env),
      PGAPPNAME: `tenantry-agent ${this.job.name}`,
      PGCONNECT_TIMEOUT: '10',
    };
    await runTool('pg_receivewal', ['--slot', this.job.pitr.slot, '--create-slot', '--if-not-exists'], { env, signal: this.stop$.signal });
    if (this.stopped) return;
    // --no-loop: a lost connection ends the run, so that the server is identified again first.
    const child = spawnGuarded('pg_receivewal', ['--directory', folder, '--slot', this.job.pitr.slot, '--synchronous', '--no-loop', '--verbose'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    let tail = '';
    child.child.stderr?.on('data', (chunk: Buffer) => (tail = (tail + chunk.toString()).slice(-2000)));
    const exit = new Promise<string>((resolve) => {
      child.child.once('error', (error) => resolve(error.message));
      child.child.once('close', (code, signal) => resolve(signal ? `killed by ${signal}` : `exited with ${code}`));
    });
    this.status.receiverUp = true;
    this.status.downSince = undefined;
    this.status.lastError = undefined;
    this.log.info('WAL receiver started', { systemIdentifier: server.systemIdentifier, timeline: server.timeline, folder, pid: child.child.pid });
    const how = await exit;
    this.child = undefined;
    if (!this.stopped) throw new Error(`pg_receivewal ${how}${tail.trim() ? `: ${lastLines(tail)}` : ''}`);
  }

  /**
   * The folder of this server's system identifier; a server the job has not archived before (a
   * re-initialised one) gets a new folder and an alert, never another server's folder.
   */
  private async folderFor(server: IdentifiedServer): Promise<string> {
    const folder = walFolder(this.agent.config.backupDir, this.job.name, server.systemIdentifier);
    const recorded = await readServerFile(folder).catch(() => undefined);
    if (recorded === undefined) {
      const others = (await archivedSystems(this.agent.config.backupDir, this.job.name)).filter((s) => s !== server.systemIdentifier);
      await fs.promises.mkdir(folder, { recursive: true });
      await writeServerFile(folder, { systemIdentifier: server.systemIdentifier, walSegmentSize: server.walSegmentSize, serverMajor: server.major, firstSeenAt: new Date().toISOString() });
      if (others.length) {
        const text = `WAL archive of ${this.job.name}: the server at ${this.job.pitr.host}:${this.job.pitr.port} is a different cluster (system identifier ${server.systemIdentifier}, archived before: ${others.join(', ')}); its WAL goes to a new folder and restores need a base backup of it`;
        this.log.warn(text);
        await this.agent.notify(text);
      }
    } else if (recorded.walSegmentSize !== server.walSegmentSize) {
      throw new Error(`the server's wal_segment_size is ${server.walSegmentSize} bytes, ${folder} holds segments of ${recorded.walSegmentSize}`);
    }
    if (this.folder !== folder) {
      this.folder = folder;
      this.knownGaps.clear();
      this.lastContinuityAt = 0;
    }
    this.status.systemIdentifier = server.systemIdentifier;
    this.status.timeline = server.timeline;
    return folder;
  }

  /**
   * After a restore the server runs on a timeline forked from the archived one: the archive's
   * segments past the fork are set aside (pg_receivewal would otherwise resume after them, at a
   * place the server's history does not have) and the new timeline is streamed from the fork on.
   */
  private async leaveAbandonedBranch(folder: string, server: IdentifiedServer): Promise<void> {
    const abandoned = await abandonedFiles(folder, await listWal(folder, server.walSegmentSize), server.timeline, server.history);
    if (!abandoned.length) return;
    const moved = await setAsideAbandoned(folder, abandoned);
    const forks = server.history.map((entry) => `timeline ${entry.parent} at ${formatLsn(entry.switchpoint)}`).join(', ');
    const text =
      `WAL archive of ${this.job.name}: the server runs on timeline ${server.timeline} (left ${forks || 'no earlier timeline'}, e.g. after a restore); ` +
      `${moved.length} archived WAL files of the abandoned branch are kept in ${[...new Set(moved.map((m) => path.join(folder, path.dirname(m))))].join(', ')} (${abandoned.join(', ')}), and archiving resumes on timeline ${server.timeline}`;
    this.log.warn(text);
    await this.agent.notify(text);
  }

  // -------------------------------------------------------------------------------- monitor

  private async watch(): Promise<void> {
    while (!this.stopped) {
      const tick = new Date();
      await this.poll(tick).catch(async (error) => {
        this.log.warn('WAL archive monitor could not reach the server', { error: errorMessage(error) });
        await this.monitor?.end().catch(() => undefined);
        this.monitor = undefined;
      });
      await this.inspectFolder(tick).catch((error) => this.log.error('WAL archive folder check failed', { error: errorMessage(error) }));
      await this.alertWhenStuck(new Date());
      await sleep(this.timing.pollMs, this.stop$.signal);
    }
  }

  /** Server position, slot position and lag, with the retained-WAL alerts. */
  private async poll(at: Date): Promise<void> {
    this.monitor ??= await replicationConnection(this.job, this.agent.env, 'monitor');
    const server = await identifyServer(this.monitor);
    const flushed = await slotRestartLsn(this.monitor, this.job.pitr.slot);
    const status = this.status;
    status.serverLsn = server.flushLsn;
    status.timeline = server.timeline;
    status.lastArchivedLsn = archivedPosition(flushed, this.folder === undefined ? undefined : await listWal(this.folder), server.timeline);
    this.samples.push({ at, lsn: server.flushLsn });
    // The newest sample whose position is archived is the moment the archive covers.
    const archived = status.lastArchivedLsn ?? -1n;
    let covered: Date | undefined;
    while (this.samples.length && this.samples[0].lsn <= archived) covered = this.samples.shift()!.at;
    if (covered) status.archivedUntil = covered;
    status.slotRetainedBytes = flushed === undefined ? 0 : Math.max(0, Number(server.flushLsn - flushed));
    await this.alertSlotRetention();
  }

  private async alertSlotRetention(): Promise<void> {
    const limit = this.job.pitr.maxSlotWalKeepMb * MB;
    const percent = (this.status.slotRetainedBytes / limit) * 100;
    const crossed = SLOT_ALERT_PERCENTS.filter((p) => percent >= p).pop() ?? 0;
    if (crossed > this.slotAlerted) {
      const text = `WAL archive of ${this.job.name}: slot ${this.job.pitr.slot} keeps ${Math.round(this.status.slotRetainedBytes / MB)} MB of WAL on the server, ${crossed} % of max_slot_wal_keep_size (${this.job.pitr.maxSlotWalKeepMb} MB); beyond it the slot is invalidated and the archive gets a gap. Is the receiver running?`;
      this.log.warn(text);
      await this.agent.notify(text);
    }
    // Re-armed once the slot is back under the lowest threshold.
    this.slotAlerted = crossed === 0 ? 0 : Math.max(this.slotAlerted, crossed);
  }

  private async alertWhenStuck(now: Date): Promise<void> {
    const problem = this.status.problem(now, this.job.pitr.maxLagSeconds);
    if (problem !== undefined && !this.stuckAlerted) {
      this.stuckAlerted = true;
      this.log.error('WAL archiving is stuck', { problem });
      await this.agent.notify(`WAL archive of ${this.job.name} is stuck: ${problem}`);
    } else if (problem === undefined && this.stuckAlerted) {
      this.stuckAlerted = false;
      this.log.info('WAL archiving caught up');
      await this.agent.notify(`WAL archive of ${this.job.name} has caught up again`);
    }
  }

  /** Seals new segments (refusing replaced ones), checks the chain, copies segments off-site. */
  private async inspectFolder(now: Date): Promise<void> {
    const folder = this.folder;
    if (folder === undefined) return;
    const seal = await sealCompleted(folder, now);
    for (const refused of seal.refused) {
      const text = `WAL archive of ${this.job.name}: segment ${refused.name} was about to be replaced by different bytes; the archived segment is kept, the other one is in ${path.join(folder, refused.keptAs)}, and the receiver is halted until an operator looks (restart the agent to resume)`;
      this.status.halted = `segment ${refused.name} offered with different bytes`;
      this.child?.stop();
      this.log.error(text);
      await this.agent.notify(text);
    }
    if (seal.sealed.length || now.getTime() - this.lastContinuityAt >= this.timing.continuityEveryMs) {
      this.lastContinuityAt = now.getTime();
      const chain = checkContinuity(await listWal(folder));
      this.status.gaps = chain.gaps.length;
      for (const gap of chain.gaps) {
        if (this.knownGaps.has(gap.first)) continue;
        this.knownGaps.add(gap.first);
        const text = `WAL archive of ${this.job.name}: segments ${gap.first}${gap.last === gap.first ? '' : `..${gap.last}`} are missing (WAL ${gap.fromLsn} to ${gap.toLsn}); no restore can pass that point: take a base backup (tenantry-agent run ${this.job.name})`;
        this.log.error(text);
        await this.agent.notify(text);
      }
      for (const problem of chain.problems) this.log.warn('WAL archive problem', { problem });
    }
    if (this.job.offsite && this.upload === undefined) {
      this.upload = this.shipOffsite(folder).finally(() => (this.upload = undefined));
    }
  }

  /** Completed segments to the off-site bucket, each once; a failure is retried at the next poll. */
  private async shipOffsite(folder: string): Promise<void> {
    const pending = await pendingOffsite(folder);
    if (!pending.length || this.agent.config.offsite === undefined) return;
    const offsite = await openOffsite(this.agent.config.offsite, this.agent.env, this.log);
    const system = path.basename(folder);
    try {
      for (const name of pending) {
        if (this.stopped) return;
        await offsite.uploadWalFile(this.job.name, system, path.join(folder, name), name);
        await markOffsite(folder, name);
      }
      this.offsiteFailing = false;
    } catch (error) {
      this.agent.state.countersOf(this.job.name).offsiteFailures++;
      this.log.error('off-site copy of WAL failed; retried at the next poll', { error: errorMessage(error) });
      // Once per outage: each attempt already waited out its retries.
      if (!this.offsiteFailing) await this.agent.notify(`off-site copy of ${this.job.name}'s WAL failed (local copy kept, retried): ${errorMessage(error)}`);
      this.offsiteFailing = true;
    } finally {
      offsite.close();
    }
  }
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' | ');
}

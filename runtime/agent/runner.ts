/**
 * One backup run, verification or restore of one job, with everything that makes it safe:
 * the job lock, a partial directory promoted only after its check passed, checksums in the
 * manifest, a failure record instead of a half backup, then off-site upload and retention.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { AgentConfig, JobConfig } from './config';
import { listFiles, sha256File } from './durable';
import { errorMessage, UserError } from './errors';
import { driverFor } from './jobs';
import type { DriverContext } from './jobs/driver';
import { acquireLock } from './lock';
import type { Logger } from './log';
import { CheckResult, isGood, isIntact, Manifest, MANIFEST_FILE, ManifestFile, Trigger } from './manifest';
import { openOffsite } from './offsite-client';
import type { BaseBackupDetails } from './pitr/base-backup';
import type { PitrJob } from './pitr/replication';
import { selectPitrRetained } from './pitr/retention';
import { parseLsn, pruneWalBefore, walFolder } from './pitr/wal-archive';
import type { PhaseListener } from './progress';
import { RetentionCandidate, selectRetained } from './retention';
import type { AgentState } from './status';
import { BackupEntry, BackupStore, newBackupId } from './store';
import type { Notify } from './webhook';
import { version as agentVersion } from '../../package.json';

/** Everything a run needs from the agent around it. */
export interface Agent {
  readonly config: AgentConfig;
  readonly state: AgentState;
  readonly log: Logger;
  readonly env: NodeJS.ProcessEnv;
  readonly notify: Notify;
  /** Aborted on shutdown: running tools are stopped and the run fails cleanly. */
  readonly signal: AbortSignal;
  /** Told each phase of a backup run (`run --progress=json`). @default nobody watches */
  readonly onPhase?: PhaseListener;
}

export function driverContext(agent: Agent, job: JobConfig): DriverContext {
  return { log: agent.log.forJob(job.name), signal: agent.signal, env: agent.env };
}

/** Holds the job's lock (and its `running` gauge) while `work` runs. */
export async function withJobLock<T>(agent: Agent, job: JobConfig, work: (store: BackupStore) => Promise<T>): Promise<T> {
  const store = new BackupStore(agent.config.backupDir, job.name);
  await store.ensureDir();
  const lock = acquireLock(store.lockFile, `job ${job.name}`);
  const counters = agent.state.countersOf(job.name);
  counters.running = true;
  try {
    return await work(store);
  } finally {
    counters.running = false;
    lock.release();
  }
}

/**
 * Runs a backup now. Resolves with its manifest, whose status says whether it succeeded; only a
 * caller's mistake (the job is already running) rejects. A failure outside the job's driver (a
 * full disk refusing the lock or the folder, a crash in off-site upload or retention) counts,
 * alerts and turns /health unhealthy exactly like a failed dump. `trigger` says who asked: retention
 * treats manual backups apart (retention.ts).
 */
export async function runBackup(agent: Agent, job: JobConfig, trigger: Trigger = 'schedule'): Promise<Manifest> {
  const startedAt = new Date();
  const base = failedManifest(agent, job, startedAt, trigger);
  let store: BackupStore | undefined;
  try {
    return await withJobLock(agent, job, async (locked) => {
      store = locked;
      const log = agent.log.forJob(job.name);
      for (const debris of await locked.removeInterrupted()) log.warn('removed the leftovers of an interrupted run', { path: debris });
      const manifest = await backUp(agent, job, locked, base);
      if (manifest.status !== 'ok') return manifest;
      agent.state.countersOf(job.name).lastFailure = undefined;
      // Stopping: the off-site copy is retried at the next run, and retention can wait for it.
      if (agent.signal.aborted) return manifest;
      const run = { id: manifest.id, dir: locked.backupDir(manifest.id), sizeBytes: manifest.sizeBytes };
      if (job.offsite) {
        agent.onPhase?.('offsite', run);
        await shipOffsite(agent, job, locked);
      }
      agent.onPhase?.('retention', run);
      await applyRetention(agent, job, locked);
      return job.offsite ? locked.read(manifest.id) : manifest;
    });
  } catch (error) {
    if (error instanceof UserError) throw error;
    const failed: Manifest = { ...base, endedAt: new Date().toISOString(), error: errorMessage(error) };
    // A backup promoted before the failure stays as it is; only a run that left none gets a record.
    await reportFailure(agent, job, store?.exists(base.id) ? undefined : (store ?? new BackupStore(agent.config.backupDir, job.name)), failed);
    return failed;
  }
}

/** What a run is before it has produced anything: its failure record, should it fail. */
function failedManifest(agent: Agent, job: JobConfig, startedAt: Date, trigger: Trigger): Manifest {
  return {
    formatVersion: 1,
    tenant: agent.config.tenant,
    environment: agent.config.environment,
    job: job.name,
    kind: job.kind,
    id: newBackupId(job.name, startedAt),
    trigger,
    status: 'failed',
    startedAt: startedAt.toISOString(),
    endedAt: startedAt.toISOString(),
    sizeBytes: 0,
    files: [],
    source: { version: 'unknown' },
    tools: { 'tenantry-agent': agentVersion, node: process.version },
    details: {},
  };
}

async function backUp(agent: Agent, job: JobConfig, store: BackupStore, base: Manifest): Promise<Manifest> {
  const log = agent.log.forJob(job.name);
  const id = base.id;
  log.info('backup started', { id });
  try {
    const driver = driverFor(job);
    const ctx = driverContext(agent, job);
    const dir = await store.createPartial(id);
    agent.onPhase?.('backup', { id, dir });
    const outcome = await driver.backup(dir, ctx);
    agent.onPhase?.('check', { id, dir });
    const check = await driver.check(dir, outcome.details, ctx);
    const files = await describeFiles(dir, agent.signal);
    const manifest: Manifest = {
      ...base,
      formatVersion: outcome.formatVersion ?? 1,
      status: 'ok',
      endedAt: new Date().toISOString(),
      sizeBytes: files.reduce((sum, f) => sum + f.size, 0),
      files,
      source: outcome.source,
      tools: { ...outcome.tools, ...base.tools },
      check: { at: new Date().toISOString(), method: checkMethod(job), result: 'passed', details: check },
      offsite: job.offsite ? { status: 'pending' } : undefined,
      details: outcome.details,
    };
    await store.promote(manifest);
    log.info('backup finished', { id, sizeBytes: manifest.sizeBytes, files: files.length, check });
    return manifest;
  } catch (error) {
    const failed: Manifest = { ...base, endedAt: new Date().toISOString(), error: runError(agent, error) };
    await reportFailure(agent, job, store, failed);
    return failed;
  }
}

/** A tool killed because the agent is stopping says so, rather than only "killed by SIGTERM". */
function runError(agent: Agent, error: unknown): string {
  return agent.signal.aborted ? `interrupted: the agent received ${String(agent.signal.reason)} and stopped the run (${errorMessage(error)})` : errorMessage(error);
}

/** Records a failed run: its partial directory removed, its failure record written, then alerts. */
async function reportFailure(agent: Agent, job: JobConfig, store: BackupStore | undefined, failed: Manifest): Promise<void> {
  if (store !== undefined) {
    try {
      await store.recordFailure(failed);
    } catch (error) {
      // A full disk can refuse even the record; the metrics, /health and the webhook still tell.
      agent.log.forJob(job.name).error('could not write the failure record', { id: failed.id, error: errorMessage(error) });
    }
  }
  await alertFailure(agent, job, failed.error ?? 'unknown', { id: failed.id });
}

/**
 * Every failure of a job, whatever its cause, goes through here: counted in
 * tenantry_backup_failures_total, remembered for /health until a run succeeds, logged, and sent
 * to the webhook.
 */
export async function alertFailure(agent: Agent, job: JobConfig, error: string, fields: { id?: string } = {}): Promise<void> {
  const counters = agent.state.countersOf(job.name);
  counters.failures++;
  counters.lastFailure = { at: new Date().toISOString(), error };
  agent.log.forJob(job.name).error('backup failed', { ...fields, error });
  await agent.notify(`backup ${job.name} failed: ${error}`);
}

function checkMethod(job: JobConfig): string {
  return { postgres: 'pg_restore --list', 'postgres-pitr': 'backup_manifest checksum of every file in the streamed tar, WAL span parsed', redis: 'redis-check-rdb', qdrant: 'sha256 against Qdrant snapshot checksum', minio: 'object count and ETag' }[job.kind];
}

/** Hashing a large backup takes longer than a stopping agent may: a stop request ends it. */
export async function describeFiles(dir: string, stop: AbortSignal): Promise<ManifestFile[]> {
  const files: ManifestFile[] = [];
  for (const relative of await listFiles(dir)) {
    if (stop.aborted) throw new Error('stopped before every file was checksummed');
    if (relative === MANIFEST_FILE) continue;
    const file = path.join(dir, relative);
    const { size } = await fs.promises.stat(file);
    files.push({ path: relative, size, sha256: await sha256File(file) });
  }
  return files;
}

/** Every file still has the size and sha256 the manifest recorded. */
async function checkFiles(dir: string, manifest: Manifest): Promise<void> {
  for (const file of manifest.files) {
    const actual = await sha256File(path.join(dir, file.path)).catch((error: Error) => `unreadable (${error.message})`);
    if (actual !== file.sha256) throw new Error(`${file.path}: sha256 ${actual}, the manifest recorded ${file.sha256}`);
  }
}

/**
 * Uploads every good backup that has no off-site copy yet, newest first, so pending uploads of
 * earlier failed attempts are retried. Stops at the first failure: the others would meet the
 * same outage, each after its full retry budget.
 */
async function shipOffsite(agent: Agent, job: JobConfig, store: BackupStore): Promise<void> {
  if (agent.config.offsite === undefined) return;
  const log = agent.log.forJob(job.name);
  const pending = (await store.list()).flatMap((e) => (e.state === 'ok' && e.manifest && isGood(e.manifest) && e.manifest.offsite?.status !== 'uploaded' ? [e.manifest] : [])).reverse();
  const offsite = await openOffsite(agent.config.offsite, agent.env, log);
  try {
    for (const manifest of pending) {
      const at = new Date().toISOString();
      const uploaded: Manifest = { ...manifest, offsite: { status: 'uploaded', at, location: offsite.location(job.name, manifest.id) } };
      try {
        await offsite.upload(store.backupDir(manifest.id), uploaded);
        await store.updateManifest(uploaded);
        log.info('off-site copy uploaded', { id: manifest.id, location: uploaded.offsite?.location });
      } catch (error) {
        const message = errorMessage(error);
        await store.updateManifest({ ...manifest, offsite: { status: 'failed', at, error: message } });
        agent.state.countersOf(job.name).offsiteFailures++;
        log.error('off-site upload failed; the local copy is kept and the upload is retried at the next run', { id: manifest.id, error: message });
        await agent.notify(`off-site upload of ${manifest.id} failed (local copy kept, retried at the next run): ${message}`);
        return;
      }
    }
  } finally {
    offsite.close();
  }
}

async function applyRetention(agent: Agent, job: JobConfig, store: BackupStore): Promise<void> {
  const log = agent.log.forJob(job.name);
  const all = await store.list();
  // A backup this agent cannot read may still be good (a newer agent's format, a repairable
  // manifest): it is left alone, never counted as a failed run to clean up.
  for (const e of all.filter((entry) => entry.unreadable)) log.warn('kept a backup whose manifest cannot be read', { id: e.id, problem: e.problem });
  const entries = all.filter((entry) => !entry.unreadable);
  const candidates = entries.map((e) => ({
    id: e.id,
    startedAt: e.startedAt,
    good: e.state === 'ok' && e.manifest !== undefined && isIntact(e.manifest),
    verified: e.manifest?.verified?.result === 'passed',
    running: e.state === 'running',
    manual: e.manifest?.trigger === 'manual',
  }));
  if (job.kind === 'postgres-pitr') return applyPitrRetention(agent, job, store, entries, candidates);
  const decision = selectRetained(candidates, job.retention, new Date(), agent.config.timeZone);
  for (const id of decision.remove) {
    await store.remove(id);
    log.info('retention removed a backup', { id });
  }
}

/** GFS plus the restorable window over base backups, then the WAL no kept base backup needs. */
async function applyPitrRetention(agent: Agent, job: PitrJob, store: BackupStore, entries: readonly BackupEntry[], candidates: readonly RetentionCandidate[]): Promise<void> {
  const log = agent.log.forJob(job.name);
  const details = new Map(entries.flatMap((e) => (e.state === 'ok' && e.manifest ? [[e.id, e.manifest.details as unknown as BaseBackupDetails] as const] : [])));
  const decision = selectPitrRetained(
    candidates.map((c) => {
      const d = details.get(c.id);
      return d ? { ...c, consistentAt: new Date(d.endTime), startLsn: parseLsn(d.startLsn), systemIdentifier: d.systemIdentifier } : c;
    }),
    job.retention,
    job.pitr.windowDays,
    new Date(),
    agent.config.timeZone,
  );
  for (const id of decision.remove) {
    await store.remove(id);
    log.info('retention removed a base backup', { id });
  }
  for (const [systemIdentifier, before] of decision.pruneWalBefore) {
    const segmentBytes = [...details.values()].find((d) => d.systemIdentifier === systemIdentifier)!.walSegmentBytes;
    const removed = await pruneWalBefore(walFolder(agent.config.backupDir, job.name, systemIdentifier), before, segmentBytes);
    if (removed.length > 0) log.info('retention removed WAL no kept base backup needs', { systemIdentifier, segments: removed.length, first: removed[0], last: removed[removed.length - 1] });
  }
}

/** The newest good backup of a job, for `--from latest` and scheduled verification. */
async function newestGood(store: BackupStore): Promise<Manifest> {
  const good = (await store.list()).flatMap((e) => (e.state === 'ok' && e.manifest && isGood(e.manifest) ? [e.manifest] : []));
  const newest = good[good.length - 1];
  if (newest === undefined) throw new UserError(`job ${store.job} has no good backup yet`);
  return newest;
}

async function readBackup(store: BackupStore, id: string): Promise<Manifest> {
  if (!store.exists(id)) throw new UserError(`job ${store.job} has no finished backup "${id}"; \`tenantry-agent list ${store.job}\` shows them`);
  try {
    return await store.read(id);
  } catch (error) {
    throw new Error(`backup ${id} is refused, nothing was touched: ${errorMessage(error)}. Use another backup (\`tenantry-agent list ${store.job}\`) or its off-site copy`);
  }
}

/** The job a backup id belongs to (ids start with their job's name, but names may share prefixes). */
export async function jobOfBackup(config: AgentConfig, id: string): Promise<JobConfig> {
  for (const job of config.jobs) {
    if (new BackupStore(config.backupDir, job.name).exists(id)) return job;
  }
  throw new UserError(`no job has a finished backup "${id}"; \`tenantry-agent list\` shows them`);
}

/**
 * Checks a finished backup deeper than its run did: every file against its sha256, then the
 * kind's verification (a test restore for Postgres) or its check again. The result is stored in
 * the manifest, as retention protects the newest verified backup.
 */
export function verifyBackup(agent: Agent, job: JobConfig, id: string | 'latest'): Promise<Manifest> {
  return withJobLock(agent, job, async (store) => {
    const log = agent.log.forJob(job.name);
    const manifest = id === 'latest' ? await newestGood(store) : await readBackup(store, id);
    if (manifest.status !== 'ok') throw new UserError(`backup ${manifest.id} did not finish (status ${manifest.status}); there is nothing to verify`);
    const driver = driverFor(job);
    const ctx = driverContext(agent, job);
    const dir = store.backupDir(manifest.id);
    const method = driver.verify ? 'sha256 + test restore with row counts' : `sha256 + ${checkMethod(job)}`;
    let verified: CheckResult;
    log.info('verification started', { id: manifest.id, method });
    try {
      await checkFiles(dir, manifest);
      const details = driver.verify ? await driver.verify(dir, manifest, ctx) : await driver.check(dir, manifest.details, ctx);
      verified = { at: new Date().toISOString(), method, result: 'passed', details };
      log.info('verification passed', { id: manifest.id, details });
    } catch (error) {
      if (error instanceof UserError) throw error;
      verified = { at: new Date().toISOString(), method, result: 'failed', details: errorMessage(error) };
      agent.state.countersOf(job.name).verifyFailures++;
      log.error('verification failed', { id: manifest.id, error: verified.details });
      await agent.notify(`verification of ${manifest.id} failed: ${verified.details}`);
    }
    const updated: Manifest = { ...manifest, verified };
    await store.updateManifest(updated);
    return updated;
  });
}

export interface RestoreOptions {
  /** A backup id or "latest". */
  readonly from: string;
  readonly target?: string;
  readonly only?: string;
  readonly force: boolean;
  readonly withGlobals: boolean;
  /** Restore a backup whose files are intact although its verification failed. */
  readonly ignoreVerification: boolean;
  /** Fetch the backup from the off-site bucket first (when it is not here). */
  readonly fromOffsite: boolean;
}

export function restoreBackup(agent: Agent, job: JobConfig, options: RestoreOptions): Promise<string> {
  const driver = driverFor(job);
  const commandLine = restoreCommandLine(job, options);
  driver.beforeRestore?.({ commandLine, target: options.target }, driverContext(agent, job));
  return withJobLock(agent, job, async (store) => {
    const log = agent.log.forJob(job.name);
    const manifest = options.fromOffsite ? await fetchFromOffsite(agent, job, store, options.from) : options.from === 'latest' ? await newestGood(store) : await readBackup(store, options.from);
    if (!isIntact(manifest)) throw new UserError(`backup ${manifest.id} is not a good backup (status ${manifest.status}, check ${manifest.check?.result ?? 'none'}, verification ${manifest.verified?.result ?? 'none'})`);
    if (!isGood(manifest) && !options.ignoreVerification) {
      throw new UserError(
        `backup ${manifest.id} failed its verification (${manifest.verified?.details ?? 'no details'}); its files are intact: ` +
          `to restore it all the same, run \`tenantry-agent ${restoreCommandLine(job, { ...options, from: manifest.id, ignoreVerification: true })}\``,
      );
    }
    const dir = store.backupDir(manifest.id);
    await checkFiles(dir, manifest);
    const summary = await driver.restore({ dir, manifest, target: options.target, only: options.only, force: options.force, withGlobals: options.withGlobals, commandLine }, driverContext(agent, job));
    log.info('restore finished', { id: manifest.id, summary });
    return `${manifest.id}: ${summary}`;
  });
}

/** `restore <job> --from <id> …`, as the operator would type it again. */
function restoreCommandLine(job: JobConfig, options: RestoreOptions): string {
  const values = (['target', 'only'] as const).flatMap((name) => (options[name] === undefined ? [] : [`--${name}`, options[name]!]));
  const switches = [options.force && '--force', options.fromOffsite && '--from-offsite', options.withGlobals && '--with-globals', options.ignoreVerification && '--ignore-verification'].filter((s): s is string => Boolean(s));
  return ['restore', job.name, '--from', options.from, ...values, ...switches].join(' ');
}

async function fetchFromOffsite(agent: Agent, job: JobConfig, store: BackupStore, from: string): Promise<Manifest> {
  if (agent.config.offsite === undefined) throw new UserError('--from-offsite needs an "offsite" section in the agent config');
  const offsite = await openOffsite(agent.config.offsite, agent.env, agent.log.forJob(job.name));
  try {
    const remote = await offsite.listBackups(job.name);
    const id = from === 'latest' ? remote[remote.length - 1] : from;
    if (id === undefined || !remote.includes(id)) {
      throw new UserError(`the off-site bucket has no backup ${from === 'latest' ? 'at all' : `"${from}"`} for job ${job.name}${remote.length ? ` (newest: ${remote[remote.length - 1]})` : ''}`);
    }
    if (store.exists(id)) return store.read(id);
    agent.log.forJob(job.name).info('fetching the off-site copy', { id, location: offsite.location(job.name, id) });
    return await offsite.download(job.name, id, store);
  } finally {
    offsite.close();
  }
}

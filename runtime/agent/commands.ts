/**
 * The agent's commands. `main` returns the exit code: 0 success, 1 the job (or health) failed,
 * 2 a mistake of the caller (printed as one line, no stack trace), 128 + the signal's number
 * (143 SIGTERM, 130 SIGINT) when `run`, `verify` or `restore` was stopped by a signal, after its
 * orderly stop. `serve` stopped by a signal exits 0: that is how a daemon is meant to end.
 */
import * as http from 'http';
import { constants } from 'os';
import { parseArguments, ParsedArguments, USAGE } from './arguments';
import { AgentConfig, findJob, readAgentConfig } from './config';
import { errorMessage, UserError } from './errors';
import { stopEveryTool } from './exec';
import { startHttpServer } from './http';
import { describeEntry, describeOffsiteOnly, renderTable } from './listing';
import { acquireLock } from './lock';
import { createLogger, Logger } from './log';
import { openOffsite } from './offsite-client';
import { jsonProgress } from './progress';
import { agentStatus, renderStatus } from './report';
import { WalReceiver } from './pitr/receiver';
import { Agent, alertFailure, jobOfBackup, restoreBackup, runBackup, verifyBackup } from './runner';
import { RecoveryTarget } from './pitr/recovery';
import { restoreToPoint } from './pitr/restore';
import { DatabasesToPointOptions, restoreDatabasesToPoint } from './pitr/restore-databases';
import { verifyRecovery } from './pitr/verify';
import { formatLsn, parseLsn } from './pitr/wal-archive';
import { Scheduler } from './scheduler';
import { AgentState } from './status';
import { BackupStore } from './store';
import { createNotifier } from './webhook';

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  /** Resolves with the signal when the process is asked to stop (SIGTERM/SIGINT). */
  stopRequested: Promise<NodeJS.Signals>;
}

/**
 * A signalled agent has exited by then, whatever is still running: tools get TOOL_STOP_GRACE_MS
 * on SIGTERM before SIGKILL, then the failure is recorded and the webhook sent; 9 s stays under
 * Docker's default stop timeout of 10 s, after which Docker would SIGKILL without a record.
 */
export const STOP_DEADLINE_MS = 9000;

/** The exit code of a command stopped by `signal`, as a shell reports it. */
export const stoppedExitCode = (signal: NodeJS.Signals) => 128 + constants.signals[signal];

export async function main(argv: readonly string[], io: Io): Promise<number> {
  try {
    const args = parseArguments(argv, io.env);
    if (args.command === 'help') {
      io.stdout(USAGE);
      return 0;
    }
    const config = readAgentConfig(args.config, io.env);
    const shutdown = new AbortController();
    void io.stopRequested.then((signal) => {
      shutdown.abort(signal);
      // Tools started without the run's signal (a check, a version probe) are stopped as well.
      stopEveryTool();
    });
    const stopped = () => (shutdown.signal.aborted && args.command !== 'serve' ? stoppedExitCode(shutdown.signal.reason as NodeJS.Signals) : undefined);
    try {
      const code = await dispatch(args, config, io, shutdown.signal);
      return stopped() ?? code;
    } catch (error) {
      const code = stopped();
      if (code === undefined) throw error;
      io.stderr(`tenantry-agent: ${errorMessage(error)}\n`);
      return code;
    }
  } catch (error) {
    if (error instanceof UserError) {
      io.stderr(`tenantry-agent: ${error.message}\n`);
      return 2;
    }
    io.stderr(`tenantry-agent: ${errorMessage(error)}\n`);
    return 1;
  }
}

function createAgent(config: AgentConfig, io: Io, log: Logger, signal: AbortSignal): Agent {
  return { config, state: new AgentState(config), log, env: io.env, notify: createNotifier(config, io.env, log), signal };
}

async function dispatch(args: ParsedArguments, config: AgentConfig, io: Io, stop: AbortSignal): Promise<number> {
  const log = createLogger((line) => io.stderr(`${line}\n`));
  const agent = createAgent(config, io, log, stop);
  if (args.command !== 'serve') stop.addEventListener('abort', () => log.warn('stopping: the running tools are stopped and leave no partial backup behind', { signal: String(stop.reason) }), { once: true });
  switch (args.command) {
    case 'serve':
      return serve(agent, io);
    case 'run':
      return run(agent, args.positional[0], args.values.progress === 'json', io);
    case 'list':
      return list(agent, args, io);
    case 'status': {
      const status = await agentStatus(config, new Date());
      io.stdout(args.switches.has('json') ? `${JSON.stringify(status, null, 2)}\n` : renderStatus(status));
      return 0;
    }
    case 'verify': {
      const named = config.jobs.find((j) => j.name === args.positional[0]);
      if (named?.kind === 'postgres-pitr') {
        const manifest = await verifyRecovery(agent, named);
        io.stdout(`${named.name}: verification ${manifest.verified?.result} (${manifest.verified?.method}): ${manifest.verified?.details}\n`);
        return manifest.verified?.result === 'passed' ? 0 : 1;
      }
      const job = await jobOfBackup(config, args.positional[0]);
      const manifest = await verifyBackup(agent, job, args.positional[0]);
      io.stdout(`${manifest.id}: verification ${manifest.verified?.result} (${manifest.verified?.method}): ${manifest.verified?.details}\n`);
      return manifest.verified?.result === 'passed' ? 0 : 1;
    }
    case 'restore': {
      const job = findJob(config, args.positional[0]);
      if (job.kind === 'postgres-pitr') {
        const some = someDatabases(args);
        const result = some
          ? await restoreDatabasesToPoint(agent, job, { target: pitrTarget(args), ...some, commandLine: restoreCommandLine(job.name, args) })
          : await restoreToPoint(agent, job, { target: pitrTarget(args), ...scratchTarget(args) });
        io.stdout(`${result}\n`);
        return 0;
      }
      if (args.values.from === undefined) throw new UserError(`job ${job.name} is a ${job.kind} job: restore it with --from <backup-id|latest> (--to-time and the like are for postgres-pitr jobs)`);
      const summary = await restoreBackup(agent, job, {
        from: args.values.from,
        target: args.values.target,
        only: args.values.only,
        force: args.switches.has('force'),
        withGlobals: args.switches.has('with-globals'),
        fromOffsite: args.switches.has('from-offsite'),
        ignoreVerification: args.switches.has('ignore-verification'),
      });
      io.stdout(`${summary}\n`);
      return 0;
    }
    case 'health':
      return health(config, io);
    case 'help':
      io.stdout(USAGE);
      return 0;
  }
}

/** The target of a restore to a point, checked before anything is read. */
function pitrTarget(args: ParsedArguments): RecoveryTarget {
  if (args.values.from !== undefined) throw new UserError(`job ${args.positional[0]} is a postgres-pitr job: restore it to a point with --to-time, --to-lsn, --to-name or --latest, not --from`);
  if (args.switches.has('latest')) return { latest: true };
  if (args.values['to-lsn'] !== undefined) {
    try {
      return { lsn: formatLsn(parseLsn(args.values['to-lsn'])) };
    } catch (error) {
      throw new UserError(`--to-lsn: ${errorMessage(error)}`);
    }
  }
  if (args.values['to-name'] !== undefined) return { name: args.values['to-name'] };
  const time = args.values['to-time'];
  // A time without a zone would be read in whatever zone the container runs in.
  if (!/(Z|[+-]\d{2}:?\d{2})$/.test(time) || Number.isNaN(Date.parse(time))) {
    throw new UserError(`--to-time "${time}" is not an ISO 8601 time with a zone, e.g. 2026-12-01T17:15:00Z or 2026-12-01T18:15:00+01:00`);
  }
  return { time: new Date(time).toISOString() };
}

/**
 * --only-databases, --into and --port (the scratch server's) of a restore of some databases of a
 * shared server to a point; undefined for a whole-server restore.
 */
function someDatabases(args: ParsedArguments): Pick<DatabasesToPointOptions, 'databases' | 'into' | 'scratchPort'> | undefined {
  const only = args.values['only-databases'];
  const into = args.values.into;
  if (only === undefined && into === undefined) return undefined;
  if (only === undefined || into === undefined) throw new UserError('--only-databases <db,db> and --into <host:port> go together: the databases to bring back, and the live server they go into');
  if (args.values['target-dir'] !== undefined) throw new UserError('--only-databases recovers into a scratch folder of its own: leave out --target-dir');
  const address = /^([A-Za-z0-9.-]+):(\d{1,5})$/.exec(into);
  if (!address) throw new UserError(`--into "${into}" is not host:port, e.g. dev-shared-postgres:5432`);
  const port = args.values.port;
  if (port === undefined || !/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw new UserError('--only-databases needs --port <a free local TCP port> for the scratch server');
  const databases = only.split(',').map((d) => d.trim()).filter((d) => d !== '');
  return { databases, into: { host: address[1], port: Number(address[2]) }, scratchPort: Number(port) };
}

/** This restore's command line, for messages that tell an operator how to run it again. */
function restoreCommandLine(job: string, args: ParsedArguments): string {
  const values = Object.entries(args.values).flatMap(([name, value]) => (value === undefined ? [] : [`--${name} ${value}`]));
  return ['restore', job, ...values, ...[...args.switches].map((name) => `--${name}`)].join(' ');
}

/** --target-dir and --port of a restore to a point. */
function scratchTarget(args: ParsedArguments): { targetDir?: string; port?: number } {
  const targetDir = args.values['target-dir'];
  const port = args.values.port;
  if (port === undefined) return { targetDir };
  if (targetDir === undefined) throw new UserError('--port starts the recovered copy of --target-dir; give --target-dir <dir> too');
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw new UserError(`--port "${port}" is not a TCP port (1-65535)`);
  return { targetDir, port: Number(port) };
}

/**
 * Exit 1 when the backup failed, and also when only its off-site copy did: someone must look.
 * With progress lines, the outcome is the last line too (phase done or failed), then the summary.
 */
async function run(agent: Agent, jobName: string, progress: boolean, io: Io): Promise<number> {
  const job = findJob(agent.config, jobName);
  let watcher: ReturnType<typeof jsonProgress> | undefined;
  if (progress) {
    const previous = (await new BackupStore(agent.config.backupDir, job.name).list()).flatMap((e) => (e.state === 'ok' && e.manifest ? [e.manifest] : [])).pop();
    watcher = jsonProgress(job.name, previous?.sizeBytes, io.stdout);
  }
  let manifest;
  try {
    manifest = await runBackup({ ...agent, onPhase: watcher?.listener }, job, 'manual');
  } finally {
    watcher?.stop();
  }
  watcher?.listener(manifest.status === 'ok' ? 'done' : 'failed', { id: manifest.id, dir: '', sizeBytes: manifest.sizeBytes });
  watcher?.stop();
  if (manifest.status !== 'ok') {
    io.stdout(`${manifest.id}: FAILED: ${manifest.error}\n`);
    return 1;
  }
  const offsite = manifest.offsite?.status;
  const note = offsite === undefined ? '' : offsite === 'uploaded' ? ', off-site uploaded' : ', off-site failed (the local copy is kept; the upload is retried at the next run)';
  io.stdout(`${manifest.id}: ok, ${manifest.sizeBytes} bytes${note}\n`);
  return offsite === undefined || offsite === 'uploaded' ? 0 : 1;
}

async function list(agent: Agent, args: ParsedArguments, io: Io): Promise<number> {
  const config = agent.config;
  const jobs = args.positional.length ? [findJob(config, args.positional[0])] : config.jobs;
  const rows = [];
  for (const job of jobs) {
    const own = (await new BackupStore(config.backupDir, job.name).list()).map(describeEntry);
    if (args.switches.has('offsite') && job.offsite && config.offsite) {
      const offsite = await openOffsite(config.offsite, agent.env, agent.log.forJob(job.name));
      try {
        own.push(...(await offsite.listBackups(job.name)).filter((id) => !own.some((l) => l.id === id)).map((id) => describeOffsiteOnly(job.name, id)));
      } finally {
        offsite.close();
      }
      own.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
    }
    rows.push(...own);
  }
  io.stdout(args.switches.has('json') ? `${JSON.stringify(rows, null, 2)}\n` : renderTable(rows, config.timeZone));
  return 0;
}

/**
 * Removes what interrupted runs left, for every job no other process is running right now. A job
 * whose folder cannot be prepared (a full or read-only disk) is reported as a failed run, and
 * `serve` goes on: it must stay up to say so on /health, /metrics and the webhook.
 */
async function removeDebris(agent: Agent): Promise<void> {
  for (const job of agent.config.jobs) {
    const store = new BackupStore(agent.config.backupDir, job.name);
    let lock;
    try {
      await store.ensureDir();
      lock = acquireLock(store.lockFile, `job ${job.name}`);
    } catch (error) {
      if (error instanceof UserError) continue; // a `run` in progress: its partial directory is live
      await alertFailure(agent, job, `the backup folder is not usable (scheduled runs will try again): ${errorMessage(error)}`);
      continue;
    }
    try {
      for (const debris of await store.removeInterrupted()) agent.log.forJob(job.name).warn('removed the leftovers of an interrupted run', { path: debris });
    } catch (error) {
      await alertFailure(agent, job, `the backup folder is not usable (scheduled runs will try again): ${errorMessage(error)}`);
    } finally {
      lock.release();
    }
  }
}

async function serve(agent: Agent, io: Io): Promise<number> {
  await removeDebris(agent);
  const server = await startHttpServer(agent.state, agent.log, agent.config.http.host, agent.config.http.port);
  const scheduler = new Scheduler(agent);
  scheduler.start();
  // WAL streams the whole time `serve` runs, whatever the schedule of base backups.
  const receivers = agent.config.jobs.flatMap((job) => (job.kind === 'postgres-pitr' ? [new WalReceiver(agent, job, agent.state.archiveOf(job.name)!)] : []));
  for (const receiver of receivers) receiver.start();
  agent.log.info('agent serving', { tenant: agent.config.tenant, environment: agent.config.environment, jobs: agent.config.jobs.map((j) => j.name).join(',') });
  await io.stopRequested;
  agent.log.info('stopping: running jobs are stopped and leave no partial backup behind');
  await Promise.all([scheduler.stop(), ...receivers.map((receiver) => receiver.stop())]);
  await new Promise((resolve) => server.close(resolve));
  return 0;
}

/** For the container healthcheck: asks the running agent, on the same container. */
function health(config: AgentConfig, io: Io): Promise<number> {
  const host = config.http.host === '0.0.0.0' ? '127.0.0.1' : config.http.host;
  return new Promise((resolve) => {
    const request = http.get({ host, port: config.http.port, path: '/health', timeout: 5000 }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      response.on('end', () => {
        io.stdout(body);
        resolve(response.statusCode === 200 ? 0 : 1);
      });
    });
    request.on('timeout', () => request.destroy(new Error('no answer within 5 s')));
    request.on('error', (error) => {
      io.stderr(`tenantry-agent: the agent at ${host}:${config.http.port} did not answer: ${error.message}\n`);
      resolve(1);
    });
  });
}

/**
 * The agent's commands. `main` returns the exit code: 0 success, 1 the job (or health) failed,
 * 2 a mistake of the caller (printed as one line, no stack trace).
 */
import * as http from 'http';
import { parseArguments, ParsedArguments, USAGE } from './arguments';
import { AgentConfig, findJob, readAgentConfig } from './config';
import { errorMessage, UserError } from './errors';
import { startHttpServer } from './http';
import { describeEntry, renderTable } from './listing';
import { acquireLock } from './lock';
import { createLogger, Logger } from './log';
import { Agent, jobOfBackup, restoreBackup, runBackup, verifyBackup } from './runner';
import { Scheduler } from './scheduler';
import { AgentState } from './status';
import { BackupStore } from './store';
import { createNotifier } from './webhook';

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  /** Resolves when the process is asked to stop (SIGTERM/SIGINT); used by `serve`. */
  stopRequested: Promise<void>;
}

export async function main(argv: readonly string[], io: Io): Promise<number> {
  try {
    const args = parseArguments(argv, io.env);
    if (args.command === 'help') {
      io.stdout(USAGE);
      return 0;
    }
    const config = readAgentConfig(args.config, io.env);
    return await dispatch(args, config, io);
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

async function dispatch(args: ParsedArguments, config: AgentConfig, io: Io): Promise<number> {
  const log = createLogger((line) => io.stderr(`${line}\n`));
  const shutdown = new AbortController();
  void io.stopRequested.then(() => shutdown.abort());
  const agent = createAgent(config, io, log, shutdown.signal);
  switch (args.command) {
    case 'serve':
      return serve(agent, io);
    case 'run':
      return run(agent, args.positional[0], io);
    case 'list':
      return list(config, args, io);
    case 'verify': {
      const job = await jobOfBackup(config, args.positional[0]);
      const manifest = await verifyBackup(agent, job, args.positional[0]);
      io.stdout(`${manifest.id}: verification ${manifest.verified?.result} (${manifest.verified?.method}): ${manifest.verified?.details}\n`);
      return manifest.verified?.result === 'passed' ? 0 : 1;
    }
    case 'restore': {
      const summary = await restoreBackup(agent, findJob(config, args.positional[0]), {
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

/** Exit 1 when the backup failed, and also when only its off-site copy did: someone must look. */
async function run(agent: Agent, jobName: string, io: Io): Promise<number> {
  const manifest = await runBackup(agent, findJob(agent.config, jobName));
  if (manifest.status !== 'ok') {
    io.stdout(`${manifest.id}: FAILED: ${manifest.error}\n`);
    return 1;
  }
  const offsite = manifest.offsite?.status;
  const note = offsite === undefined ? '' : offsite === 'uploaded' ? ', off-site uploaded' : ', off-site failed (the local copy is kept; the upload is retried at the next run)';
  io.stdout(`${manifest.id}: ok, ${manifest.sizeBytes} bytes${note}\n`);
  return offsite === undefined || offsite === 'uploaded' ? 0 : 1;
}

async function list(config: AgentConfig, args: ParsedArguments, io: Io): Promise<number> {
  const jobs = args.positional.length ? [findJob(config, args.positional[0])] : config.jobs;
  const rows = [];
  for (const job of jobs) rows.push(...(await new BackupStore(config.backupDir, job.name).list()).map(describeEntry));
  io.stdout(args.switches.has('json') ? `${JSON.stringify(rows, null, 2)}\n` : renderTable(rows, config.timeZone));
  return 0;
}

/** Removes what interrupted runs left, for every job no other process is running right now. */
async function removeDebris(agent: Agent): Promise<void> {
  for (const job of agent.config.jobs) {
    const store = new BackupStore(agent.config.backupDir, job.name);
    await store.ensureDir();
    let lock;
    try {
      lock = acquireLock(store.lockFile, `job ${job.name}`);
    } catch (error) {
      if (error instanceof UserError) continue; // a `run` in progress: its partial directory is live
      throw error;
    }
    try {
      for (const debris of await store.removeInterrupted()) agent.log.forJob(job.name).warn('removed the leftovers of an interrupted run', { path: debris });
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
  agent.log.info('agent serving', { tenant: agent.config.tenant, environment: agent.config.environment, jobs: agent.config.jobs.map((j) => j.name).join(',') });
  await io.stopRequested;
  agent.log.info('stopping: running jobs are stopped and leave no partial backup behind');
  await scheduler.stop();
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

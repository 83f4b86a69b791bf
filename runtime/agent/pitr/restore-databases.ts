/**
 * Restore some databases of a shared server to a point (pitr-design.md, "Shared server"): the
 * environment's archive is recovered into a scratch server (restoreToPoint with a target folder
 * and a port), and only the named databases are copied from it into the live server through the
 * logical path (the logical job's dump and its restore, swap and kept copy included), so the
 * server's other tenants are not rewound. The scratch server is stopped and removed in any case.
 *
 *   <backupDir>/<job>/restores/<id>.scratch/pgdata   the recovered copy, running on 127.0.0.1:<port>
 *   <backupDir>/<job>/restores/<id>.scratch/dump     the named databases' dumps
 *
 * The scratch copy has the live server's roles and passwords, so the operator's superuser
 * credential (TENANTRY_RESTORE_PGUSER/PASSWORD, for this command only) reads the one and writes the other.
 */
import * as fs from 'fs';
import * as path from 'path';
import { POSTGRES_DEFAULTS, RESTORE_CREDENTIAL_ENV } from '../config';
import { UserError } from '../errors';
import { runTool } from '../exec';
import type { Manifest } from '../manifest';
import { PostgresDriver } from '../jobs/postgres/driver';
import type { PostgresJob } from '../jobs/postgres/server';
import { Agent, describeFiles, driverContext } from '../runner';
import type { PitrJob } from './replication';
import { PITR_FOLDERS } from './layout';
import { describeTarget, RecoveryTarget, serverUser } from './recovery';
import { restoreId, restoreToPoint } from './restore';

export interface DatabasesToPointOptions {
  readonly target: RecoveryTarget;
  /** The databases to bring back to the target; every other database of the server is left as it is. */
  readonly databases: readonly string[];
  /** The live server they are restored into. */
  readonly into: { readonly host: string; readonly port: number };
  /** A free local port for the scratch server. */
  readonly scratchPort: number;
  /** The agent's command line, for messages that tell an operator how to run it again. */
  readonly commandLine: string;
}

export async function restoreDatabasesToPoint(agent: Agent, job: PitrJob, o: DatabasesToPointOptions): Promise<string> {
  const ctx = driverContext(agent, job);
  const operator = agent.env[RESTORE_CREDENTIAL_ENV.userEnv] ?? '';
  const live = new PostgresDriver(logicalJob(job, o.databases, operator, o.into.host, o.into.port));
  // Refused before anything is recovered when the operator's credential is missing.
  live.beforeRestore({ commandLine: o.commandLine }, ctx);
  const scratchJob = logicalJob(job, o.databases, operator, '127.0.0.1', o.scratchPort);

  const scratch = path.join(agent.config.backupDir, job.name, PITR_FOLDERS.restores, `${restoreId(new Date())}.scratch`);
  const pgdata = path.join(scratch, 'pgdata');
  const dump = path.join(scratch, 'dump');
  let started = false;
  try {
    await fs.promises.mkdir(dump, { recursive: true });
    const recovered = await restoreToPoint(agent, job, { target: o.target, targetDir: pgdata, port: o.scratchPort });
    started = true;
    ctx.log.info('scratch server recovered', { recovered });
    const outcome = await new PostgresDriver(scratchJob).backup(dump, ctx);
    // The logical restore reads what a logical run's manifest records of the dump; nothing else of one applies here.
    const files = await describeFiles(dump, agent.signal);
    const manifest = { id: path.basename(scratch), source: outcome.source, tools: outcome.tools, details: outcome.details, files } as unknown as Manifest;
    const done: string[] = [];
    for (const database of o.databases) {
      done.push(await live.restore({ dir: dump, manifest, only: database, force: true, withGlobals: false, commandLine: o.commandLine }, ctx));
    }
    return `${o.databases.join(', ')} restored to ${describeTarget(o.target)} on ${o.into.host}:${o.into.port} (every other database untouched): ${done.join('; ')}`;
  } finally {
    if (started) await runTool('pg_ctl', ['--pgdata', pgdata, '--mode', 'fast', '--wait', '--silent', 'stop'], { env: { PATH: agent.env.PATH ?? '', LC_ALL: 'C' }, user: serverUser(pgdata) }).catch(() => undefined);
    await fs.promises.rm(scratch, { recursive: true, force: true });
  }
}

/** The logical job that dumps or restores `databases` on host:port as the operator's superuser. */
function logicalJob(job: PitrJob, databases: readonly string[], user: string, host: string, port: number): PostgresJob {
  if (databases.length === 0) throw new UserError('--only-databases names no database: list the tenant\'s databases, e.g. --only-databases app,app_events');
  return {
    name: job.name,
    kind: 'postgres',
    schedule: job.schedule,
    retention: job.retention,
    offsite: false,
    postgres: {
      host,
      port,
      user,
      passwordEnv: RESTORE_CREDENTIAL_ENV.passwordEnv,
      databases: [...databases],
      parallelJobs: POSTGRES_DEFAULTS.parallelJobs,
      splitTablesLargerThanMb: POSTGRES_DEFAULTS.splitTablesLargerThanMb,
      restoreCredential: RESTORE_CREDENTIAL_ENV,
    },
  };
}

/**
 * The Postgres job's driver: each operation resolves the client tools once (tools.ts) and hands
 * them, with the server as the credential it runs as, to the module that does it: dump.ts,
 * verify.ts (check and verify), restore.ts.
 */
import { secretFromEnv } from '../../config';
import type { Manifest } from '../../manifest';
import type { BackupOutcome, DriverContext, JobDriver, RestoreRequest } from '../driver';
import { dumpServer } from './dump';
import { postgresDetails } from './layout';
import type { Loader } from './load';
import { checkTargetName, restoreBackup, restoreCredential, restoredDatabases } from './restore';
import { Credential, PostgresJob, PostgresServer, PostgresSettings } from './server';
import { archiveMajor, PostgresTools, resolveTools } from './tools';
import { checkBackup, verifyBackup } from './verify';

export class PostgresDriver implements JobDriver {
  private readonly pg: PostgresSettings;
  /** The tools for this server, once a backup or check has resolved them: a backup's check runs the tools of its dump. */
  private serverTools?: Promise<PostgresTools>;

  constructor(job: PostgresJob) {
    this.pg = job.postgres;
  }

  async backup(dir: string, ctx: DriverContext): Promise<BackupOutcome> {
    const server = this.server(this.backupCredential(ctx), ctx);
    return dumpServer(this.pg, server, await this.toolsForServer(server, ctx), dir, ctx);
  }

  async check(dir: string, details: Record<string, unknown>, ctx: DriverContext): Promise<string> {
    const tools = await this.toolsForServer(this.server(this.backupCredential(ctx), ctx), ctx);
    return checkBackup(dir, postgresDetails(details), tools);
  }

  async verify(dir: string, manifest: Manifest, ctx: DriverContext): Promise<string> {
    const loader = await this.loader(this.backupCredential(ctx), manifest, ctx);
    return verifyBackup(loader, dir, postgresDetails(manifest.details), ctx);
  }

  beforeRestore(request: Pick<RestoreRequest, 'commandLine' | 'target'>, ctx: DriverContext): void {
    if (request.target !== undefined) checkTargetName(request.target);
    restoreCredential(this.pg, request, ctx.env);
  }

  async restore(request: RestoreRequest, ctx: DriverContext): Promise<string> {
    const sources = restoredDatabases(request);
    const loader = await this.loader(restoreCredential(this.pg, request, ctx.env), request.manifest, ctx);
    return restoreBackup(loader, request, sources, ctx);
  }

  private backupCredential(ctx: DriverContext): Credential {
    return { user: this.pg.user, password: secretFromEnv(this.pg.passwordEnv, ctx.env) };
  }

  private server(credential: Credential, ctx: DriverContext): PostgresServer {
    return new PostgresServer(this.pg, credential, ctx.log);
  }

  private toolsForServer(server: PostgresServer, ctx: DriverContext): Promise<PostgresTools> {
    this.serverTools ??= server.withDatabase(this.pg.databases[0], (db) => resolveTools(db, ctx.log));
    return this.serverTools;
  }

  /** Verify and restore run the tools of the server that also read the backup's archive. */
  private async loader(credential: Credential, manifest: Manifest, ctx: DriverContext): Promise<Loader> {
    const server = this.server(credential, ctx);
    const tools = await server.withMaintenance((db) => resolveTools(db, ctx.log, archiveMajor(manifest)));
    return { server, tools, parallelJobs: this.pg.parallelJobs };
  }
}

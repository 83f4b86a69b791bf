/**
 * What each kind of job (Postgres, Redis, Qdrant, MinIO) provides to the runner. The runner owns
 * everything common: locking, the partial directory, checksums, the manifest, promotion,
 * off-site upload, retention, metrics. A driver only talks to its server and its tools.
 */
import { UserError } from '../errors';
import type { Logger } from '../log';
import type { Manifest } from '../manifest';

export interface DriverContext {
  readonly log: Logger;
  /** Aborted when the agent shuts down: drivers stop their tools. */
  readonly signal: AbortSignal;
  /** Where secrets are read from (the named variables of the config). */
  readonly env: NodeJS.ProcessEnv;
}

/** What a backup learned about its source, for the manifest. */
export interface BackupOutcome {
  readonly source: Manifest['source'];
  readonly tools: Record<string, string>;
  /** Facts the check, verification or restore need later (e.g. row counts at dump time). */
  readonly details: Record<string, unknown>;
  /** The manifest format the backup needs to be read correctly (see manifest.ts). @default 1 */
  readonly formatVersion?: 1 | 2;
}

export interface RestoreRequest {
  /** The finished backup's directory. */
  readonly dir: string;
  readonly manifest: Manifest;
  /** Kind-specific: database, host:port, collection or bucket. */
  readonly target?: string;
  /** Restore only this database / collection / bucket of the backup. */
  readonly only?: string;
  /** Overwrite a target that already holds data. */
  readonly force: boolean;
  /** Postgres: apply globals.sql (roles) first, for a fresh server. */
  readonly withGlobals: boolean;
  /** The agent's command line for this restore, for messages that tell an operator how to run it again. */
  readonly commandLine: string;
}

export interface JobDriver {
  /**
   * Throws a UserError when a restore cannot run as called (a credential it needs is missing),
   * before anything is fetched or touched. @default every restore may run
   */
  beforeRestore?(request: Pick<RestoreRequest, 'commandLine' | 'target'>, ctx: DriverContext): void;
  /** Writes the backup's files into `dir` (an empty partial directory). */
  backup(dir: string, ctx: DriverContext): Promise<BackupOutcome>;
  /**
   * The fast check every run does before a backup counts as finished (`pg_restore --list`,
   * `redis-check-rdb`, …). Throws when the files are not usable; returns a one-line summary.
   */
  check(dir: string, details: Record<string, unknown>, ctx: DriverContext): Promise<string>;
  /**
   * A deeper check than `check`, when the kind has one (Postgres: restore into a scratch database
   * and compare row counts). Returns a summary; throws when the backup does not restore faithfully.
   */
  verify?(dir: string, manifest: Manifest, ctx: DriverContext): Promise<string>;
  /** Restores the backup; returns a one-line summary for the operator. */
  restore(request: RestoreRequest, ctx: DriverContext): Promise<string>;
}

/** Picks the parts of a backup to restore from `--only`, with a helpful error. */
export function selectParts(available: readonly string[], only: string | undefined, what: string): string[] {
  if (only === undefined) return [...available];
  if (!available.includes(only)) {
    throw new UserError(`the backup has no ${what} "${only}" (it has: ${available.join(', ') || 'none'})`);
  }
  return [only];
}

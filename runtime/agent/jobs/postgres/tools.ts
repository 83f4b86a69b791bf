/**
 * Which PostgreSQL client tools a Postgres job runs, resolved once per operation from the server's
 * version (and, for a restore, the archive's) and passed to every step that runs one.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Client } from 'pg';
import { largeOutputBufferWorks } from '../../exec';
import type { Logger } from '../../log';
import type { Manifest } from '../../manifest';

/** Where a PostgreSQL major version's programs (client tools, and the server where installed) are: Alpine's layout, then Debian's. */
export const TOOL_DIRS = (major: number) => [`/usr/libexec/postgresql${major}`, `/usr/lib/postgresql/${major}/bin`];

/**
 * The client tools for a server of major version `serverMajor`: the oldest installed version not
 * older than the server. pg_dump refuses a newer server, and a newer pg_restore sets parameters an
 * older server does not know (pg_restore 17 sets transaction_timeout, which 16 and older reject).
 * undefined: none is installed in a known place, so the tools on PATH are used.
 */
export function pickToolDir(serverMajor: number, exists: (file: string) => boolean): string | undefined {
  for (let major = serverMajor; major <= serverMajor + 10; major++) {
    const dir = TOOL_DIRS(major).find((candidate) => exists(path.join(candidate, 'pg_dump')));
    if (dir) return dir;
  }
  return undefined;
}

/** The directory of this machine's client tools for a server of major version `serverMajor` (pickToolDir); undefined: those on PATH. */
export function clientToolDir(serverMajor: number): string | undefined {
  return pickToolDir(serverMajor, fs.existsSync);
}

/** The client tools one operation (backup, check, verify, restore) runs. */
export interface PostgresTools {
  /** The major version of the server the operation talks to. */
  readonly serverMajor: number;
  /** The version-matched tool directory; undefined: the tools on PATH. */
  readonly dir?: string;
  /** The environment that puts `dir` first on PATH (empty when `dir` is undefined). */
  readonly path: NodeJS.ProcessEnv;
  /** Whether stdbuf works with this PATH, so chunk copies get psql a larger stdout buffer (exec.ts). */
  readonly largeOutputBuffer: boolean;
}

/**
 * The tools for a server of major version `serverMajor` that also read an archive written by
 * pg_dump `archiveMajor` (pg_restore cannot read the archive format of a newer pg_dump).
 */
export function toolsFor(serverMajor: number, archiveMajor = 0): PostgresTools {
  const dir = clientToolDir(Math.max(serverMajor, archiveMajor));
  const toolPath: NodeJS.ProcessEnv = dir ? { PATH: [dir, process.env.PATH].filter(Boolean).join(':') } : {};
  return { serverMajor, ...(dir ? { dir } : {}), path: toolPath, largeOutputBuffer: largeOutputBufferWorks(toolPath) };
}

/** toolsFor the server `db` is connected to; says so when no version-matched tools are installed. */
export async function resolveTools(db: Client, log: Logger, archiveMajor = 0): Promise<PostgresTools> {
  const serverMajor = Math.floor(Number((await db.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0].v) / 10000);
  const tools = toolsFor(serverMajor, archiveMajor);
  if (!tools.dir) log.warn('no client tools installed for this server version; using those on PATH', { serverMajor, needed: Math.max(serverMajor, archiveMajor) });
  return tools;
}

/** The major version of the pg_dump that wrote a backup, from its manifest (0 when unknown). */
export function archiveMajor(manifest: Pick<Manifest, 'tools'>): number {
  const match = /\(PostgreSQL\) (\d+)/.exec(manifest.tools.pg_dump ?? '');
  return match ? Number(match[1]) : 0;
}

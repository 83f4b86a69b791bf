/**
 * A physical backup is only readable by the PostgreSQL major version that wrote it: pg_basebackup,
 * pg_verifybackup, pg_controldata and the recovery server must all be of the server's major
 * version, never merely "not older" as for pg_dump.
 */
import * as fs from 'fs';
import * as path from 'path';
import { UserError } from '../errors';
import { runTool } from '../exec';
import { TOOL_DIRS } from '../jobs/postgres/tools';

/**
 * The PATH that runs major version `major`'s binaries: its install directory first (Alpine's or
 * Debian's layout), else PATH as it is when its `postgres` is of that version (a test's, or a
 * hand-installed server). Refuses when neither holds one, naming what to install.
 */
export async function pathForMajor(major: number, env: NodeJS.ProcessEnv): Promise<string> {
  const searchPath = env.PATH ?? process.env.PATH ?? '';
  const installed = TOOL_DIRS(major).find((dir) => fs.existsSync(path.join(dir, 'postgres')));
  if (installed) return [installed, searchPath].filter(Boolean).join(':');
  const onPath = await runTool('postgres', ['--version'], { env: { PATH: searchPath } }).catch(() => '');
  if (new RegExp(`\\(PostgreSQL\\) ${major}[.\\s]`).test(`${onPath} `)) return searchPath;
  throw new UserError(
    `PostgreSQL ${major}'s server binaries are not installed (looked in ${TOOL_DIRS(major).join(', ')} and PATH${onPath ? `, which has ${onPath}` : ''}): ` +
      `a physical backup is recovered only by its own major version (Alpine: apk add postgresql${major}; Debian: apt-get install postgresql-${major})`,
  );
}

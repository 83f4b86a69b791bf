/**
 * The official Postgres image's docker-entrypoint.sh, step by step, for a translated container:
 *
 *   1. PGDATA created, mode 0700, owned by postgres;
 *   2. initdb with POSTGRES_USER and POSTGRES_PASSWORD (here with --auth=scram-sha-256: the image
 *      trusts its local socket, the drill does not), then `host all all all scram-sha-256` in
 *      pg_hba.conf, as the image adds for a password-protected server;
 *   3. a temporary server with the container's arguments plus `-c listen_addresses='' -p 5432`
 *      (socket only), POSTGRES_DB created unless it is `postgres`;
 *   4. every file in /docker-entrypoint-initdb.d, in name order, with the container's env plus
 *      POSTGRES_USER, POSTGRES_DB, PGDATA and PGPASSWORD exported as the image does: executable
 *      *.sh run, other *.sh sourced, *.sql fed to psql;
 *   5. the temporary server stopped (fast), then `postgres <arguments>` in the foreground.
 *
 * Where the translation moved something (paths, port, socket dir), the container's translated
 * values are used as they are; this file adds nothing to them.
 */
import * as fs from 'fs';
import * as path from 'path';
import { shQuote } from '../runtime/render/shell';
import { LongRunning, Owner, runToCompletion, startLongRunning } from './processes';
import type { LocalContainer } from './translation';

const STEP_TIMEOUT_MS = 120_000;

function must(result: { code: number; stdout: string; stderr: string }, what: string): void {
  if (result.code !== 0) throw new Error(`${what} failed (exit ${result.code}):\n${(result.stderr || result.stdout).slice(-3000)}`);
}

export async function startPostgresLikeImage(c: LocalContainer, owner: Owner, logDir: string): Promise<LongRunning> {
  const [program, ...args] = c.argv;
  if (program !== 'postgres') throw new Error(`${c.name}: the image's entrypoint initializes only for the postgres command (argv: ${c.argv.join(' ')})`);
  const env: NodeJS.ProcessEnv = { ...c.env };
  const pgdata = env.PGDATA;
  if (!pgdata) throw new Error(`${c.name}: PGDATA is not set; the drill needs the container to name its data directory`);
  const password = env.POSTGRES_PASSWORD;
  if (!password) throw new Error(`${c.name}: POSTGRES_PASSWORD is empty; the image refuses to initialize without it`);
  const user = env.POSTGRES_USER || 'postgres';
  const database = env.POSTGRES_DB || user;
  const asPostgres = (argv: string[], extraEnv: NodeJS.ProcessEnv = {}) => runToCompletion(argv, { env: { ...env, ...extraEnv }, owner, timeoutMs: STEP_TIMEOUT_MS });

  // 1. The data directory.
  fs.mkdirSync(pgdata, { recursive: true, mode: 0o700 });
  fs.chmodSync(pgdata, 0o700);
  fs.chownSync(pgdata, owner.uid, owner.gid);

  // 2. initdb with the superuser password (from a 0600 file, never argv).
  if (!fs.existsSync(path.join(pgdata, 'PG_VERSION'))) {
    const pwfile = path.join(logDir, `${c.name}.pwfile`);
    fs.writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    fs.chownSync(pwfile, owner.uid, owner.gid);
    try {
      const initdbArgs = (env.POSTGRES_INITDB_ARGS ?? '').split(/\s+/).filter(Boolean);
      must(await asPostgres(['initdb', `--username=${user}`, `--pwfile=${pwfile}`, '--auth=scram-sha-256', ...initdbArgs]), `${c.name}: initdb`);
    } finally {
      fs.rmSync(pwfile, { force: true });
    }
    fs.appendFileSync(path.join(pgdata, 'pg_hba.conf'), '\nhost all all all scram-sha-256\n');

    // 3. The temporary server: the container's arguments, then socket only on the default port.
    const tempLog = path.join(logDir, `${c.name}.init.log`);
    fs.writeFileSync(tempLog, '');
    fs.chownSync(tempLog, owner.uid, owner.gid);
    const options = [...args, '-c', 'listen_addresses=', '-p', '5432'].map(shQuote).join(' ');
    const initEnv = { POSTGRES_USER: user, POSTGRES_DB: database, PGDATA: pgdata, PGPASSWORD: env.PGPASSWORD || password };
    must(await asPostgres(['pg_ctl', '-D', pgdata, '-o', options, '-l', tempLog, '-w', 'start']), `${c.name}: temporary server start (log ${tempLog})`);
    try {
      if (database !== 'postgres') {
        must(await asPostgres(['psql', '-v', 'ON_ERROR_STOP=1', '--no-psqlrc', '--username', user, '--dbname', 'postgres', '-c', `CREATE DATABASE ${JSON.stringify(database)}`], initEnv), `${c.name}: CREATE DATABASE ${database}`);
      }
      // 4. The init scripts.
      const initDir = c.dirs.find((d) => d.endsWith('/docker-entrypoint-initdb.d'));
      const scripts = initDir ? fs.readdirSync(initDir).sort().map((name) => path.join(initDir, name)) : [];
      for (const script of scripts) {
        const what = `${c.name}: init script ${path.basename(script)}`;
        if (script.endsWith('.sh')) {
          const executable = (fs.statSync(script).mode & 0o111) !== 0;
          must(await asPostgres(executable ? [script] : ['/bin/sh', '-c', `. ${shQuote(script)}`], initEnv), what);
        } else if (script.endsWith('.sql')) {
          must(await asPostgres(['psql', '-v', 'ON_ERROR_STOP=1', '--no-psqlrc', '--username', user, '--dbname', database, '-f', script], initEnv), what);
        } else {
          throw new Error(`${what}: the drill runs *.sh and *.sql init files only`);
        }
      }
    } finally {
      // 5a. Stop the temporary server.
      must(await asPostgres(['pg_ctl', '-D', pgdata, '-m', 'fast', '-w', 'stop']), `${c.name}: temporary server stop`);
    }
  }

  // 5b. The server itself, in the foreground. The image's STOPSIGNAL is SIGINT (fast shutdown).
  const port = c.port;
  return startLongRunning(
    `${c.name} (postgres)`,
    c.argv,
    { env, owner, stopSignal: 'SIGINT', emergencySignal: 'SIGQUIT' },
    async () => (await runToCompletion(['pg_isready', '--quiet', '-h', '127.0.0.1', '-p', String(port)], { env, timeoutMs: 5000 })).code === 0,
  );
}

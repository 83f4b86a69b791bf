import { requireEnvLine, shQuote, shellScript } from './shell';
import { startScriptLaunch } from './start-script';
import type { ContainerLaunch } from './types';
import { checkOptions } from './validate';

export interface PgBouncerRenderOptions {
  /** Port clients connect to (6432 in containers). */
  listenPort: number;
  /**
   * Address to listen on.
   * @default '0.0.0.0' (every interface of the container)
   */
  listenAddr?: string;
  serverHost: string;
  serverPort: number;
  /** Databases routed to the server, each under its own name. */
  databases: string[];
  /** The app role; its password arrives in env PGBOUNCER_PASSWORD. */
  user: string;
  poolMode: 'session' | 'transaction' | 'statement';
  /** Server connections per database and user. */
  poolSize: number;
  maxClients: number;
  /**
   * Where the ini and the start script live (read-only is fine).
   * @default '/etc/pgbouncer'
   */
  configDir?: string;
  /**
   * Where the start script writes the auth file; must be writable by PgBouncer's user.
   * @default '/tmp/pgbouncer'
   */
  runDir?: string;
}

const RENDERER = 'renderPgBouncer';
const INI_NAME = 'pgbouncer.ini';
const AUTH_FILE_NAME = 'userlist.txt';

interface Resolved extends PgBouncerRenderOptions {
  listenAddr: string;
  configDir: string;
  runDir: string;
}

function resolve(o: PgBouncerRenderOptions): Resolved {
  const resolved = { ...o, listenAddr: o.listenAddr ?? '0.0.0.0', configDir: o.configDir ?? '/etc/pgbouncer', runDir: o.runDir ?? '/tmp/pgbouncer' };
  checkOptions(RENDERER, resolved, {
    ports: ['listenPort', 'serverPort'], hosts: ['listenAddr', 'serverHost'], identifierLists: ['databases'], identifiers: ['user'],
    atLeast: { poolSize: 1, maxClients: 1 }, paths: ['configDir', 'runDir'],
  });
  return resolved;
}

function iniText(o: Resolved): string {
  return [
    ';; Rendered by Tenantry. No password here: tenantry-start.sh writes the auth file from the',
    ';; environment when the container starts.',
    '[databases]',
    ...o.databases.map((database) => `${database} = host=${o.serverHost} port=${o.serverPort} dbname=${database}`),
    '',
    '[pgbouncer]',
    `listen_addr = ${o.listenAddr}`,
    `listen_port = ${o.listenPort}`,
    ';; TCP only: an image\'s default socket directory may not exist or not be writable.',
    'unix_socket_dir =',
    'auth_type = scram-sha-256',
    `auth_file = ${o.runDir}/${AUTH_FILE_NAME}`,
    `pool_mode = ${o.poolMode}`,
    `default_pool_size = ${o.poolSize}`,
    `max_client_conn = ${o.maxClients}`,
    ';; Used in session mode only: hands the next client a clean server connection.',
    'server_reset_query = DISCARD ALL',
    ';; JDBC sends extra_float_digits and some clients send options at startup; PgBouncer refuses',
    ';; unknown startup parameters unless told to ignore them.',
    'ignore_startup_parameters = extra_float_digits,options',
    ';; The app role may run the read-only SHOW commands (SHOW POOLS, SHOW STATS) on the "pgbouncer"',
    ';; console database, so pool saturation can be seen without a separate admin password.',
    `stats_users = ${o.user}`,
    '',
  ].join('\n');
}

export function renderPgBouncerIni(o: PgBouncerRenderOptions): string {
  return iniText(resolve(o));
}

/**
 * The auth file is written at start because its content is the password: uploads are visible in
 * Terraform state and `docker inspect`, env vars from a secret reference are not. umask 077 and a
 * rename make the file 0600 from its first byte, also when an older one exists.
 */
function startScript(o: Resolved): string {
  const authFile = `${o.runDir}/${AUTH_FILE_NAME}`;
  return shellScript(
    ['Tenantry: writes PgBouncer\'s auth file from PGBOUNCER_PASSWORD, then becomes pgbouncer.'],
    [
      requireEnvLine('PGBOUNCER_PASSWORD'),
      'umask 077',
      `mkdir -p ${shQuote(o.runDir)}`,
      '# Auth file fields are double-quoted; a double quote inside a field is written twice.',
      'password="$(printf \'%s\' "$PGBOUNCER_PASSWORD" | sed \'s/"/""/g\')"',
      `printf '"%s" "%s"\\n' ${shQuote(o.user)} "$password" > ${shQuote(`${authFile}.next`)}`,
      `mv -f ${shQuote(`${authFile}.next`)} ${shQuote(authFile)}`,
      `exec pgbouncer ${shQuote(`${o.configDir}/${INI_NAME}`)}`,
    ],
  );
}

/** The PgBouncer container: ini and start script uploaded, the script as entrypoint. */
export function renderPgBouncer(o: PgBouncerRenderOptions): ContainerLaunch {
  const resolved = resolve(o);
  return startScriptLaunch(resolved.configDir, { name: INI_NAME, content: iniText(resolved) }, startScript(resolved), ['PGBOUNCER_PASSWORD']);
}

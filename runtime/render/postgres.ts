import { renderRestoreOnStart, RESTORE_ON_START_SCRIPT } from './postgres-restore-on-start';
import { requireEnvLine, shellScript } from './shell';
import type { ContainerLaunch } from './types';
import { checkIdentifier, checkNonEmpty, checkPath } from './validate';

export interface PostgresRenderOptions {
  /** Databases to create, owned by `appRole`. */
  databases: string[];
  /** LOGIN role the application uses: owns its databases; no superuser, createdb or createrole. */
  appRole: string;
  /** LOGIN role with SELECT on every table (and sequence) in those databases, future ones included. */
  readonlyRole: string;
  /** LOGIN role the backup agent uses: reads everything in these databases (RLS and large objects included). */
  backupRole: string;
  /**
   * LOGIN role the backup agent's postgres-pitr job uses (see REPLICATION_ROLE_SQL), created and
   * given its rights only with `pitr`. Named either way: a tenant that turns PITR off keeps the
   * role and its CONNECT grants, which stay the tenant's own to the adoption check, while the role
   * loses LOGIN and REPLICATION.
   */
  replicationRole: string;
  /** Server parameters, passed as `-c key=value`. */
  parameters: Record<string, string | number | boolean>;
  /** Point-in-time recovery: WAL streamed to the tenant's backup agent. @default off */
  pitr?: PostgresPitrOptions;
  /**
   * Where the official image looks for init scripts.
   * @default '/docker-entrypoint-initdb.d'
   */
  initDir?: string;
}

export interface PostgresPitrOptions {
  /** max_slot_wal_keep_size in MiB: WAL the server keeps for a receiver that is down. */
  maxSlotWalKeepMb: number;
}

const RENDERER = 'renderPostgres';

/** Where the rendered pg_hba.conf goes (the server reads it through `-c hba_file=`). */
export const PITR_HBA_FILE = '/etc/tenantry/pg_hba.conf';

/**
 * Server parameters point-in-time recovery sets. wal_level, max_wal_senders and
 * max_replication_slots are PostgreSQL's defaults since 10, stated so that a tenant's parameters
 * cannot take them away unnoticed (the config refuses them while PITR is on). wal_keep_size 0: the
 * replication slot alone decides what WAL the server keeps, bounded by max_slot_wal_keep_size.
 * Senders and slots: pg_receivewal holds one of each, a base backup one or two senders more, and
 * a scratch verification none (it recovers from files).
 */
export function pitrServerParameters(pitr: Pick<PostgresPitrOptions, 'maxSlotWalKeepMb'>): Record<string, string | number> {
  return {
    wal_level: 'replica',
    max_wal_senders: 10,
    max_replication_slots: 10,
    max_slot_wal_keep_size: `${pitr.maxSlotWalKeepMb}MB`,
    wal_keep_size: 0,
  };
}

/** What a tenant's own `parameters` may not set while point-in-time recovery is on. */
export const PITR_PARAMETER_NAMES: readonly string[] = Object.keys(pitrServerParameters({ maxSlotWalKeepMb: 0 }));
const DEFAULT_INIT_DIR = '/docker-entrypoint-initdb.d';
const INIT_SCRIPT_NAME = '10-tenantry-init.sh';

function checkOptions(o: PostgresRenderOptions): void {
  checkNonEmpty(RENDERER, 'databases', o.databases);
  o.databases.forEach((database, i) => checkIdentifier(RENDERER, `databases[${i}]`, database));
  checkIdentifier(RENDERER, 'appRole', o.appRole);
  checkIdentifier(RENDERER, 'readonlyRole', o.readonlyRole);
  checkIdentifier(RENDERER, 'backupRole', o.backupRole);
  checkIdentifier(RENDERER, 'replicationRole', o.replicationRole);
  if (o.pitr) {
    if (!Number.isInteger(o.pitr.maxSlotWalKeepMb) || o.pitr.maxSlotWalKeepMb < 1) {
      throw new Error(`${RENDERER}: pitr.maxSlotWalKeepMb must be a positive whole number of MiB (value: ${o.pitr.maxSlotWalKeepMb})`);
    }
    const clash = PITR_PARAMETER_NAMES.filter((name) => Object.hasOwn(o.parameters, name));
    if (clash.length > 0) throw new Error(`${RENDERER}: parameters ${clash.join(', ')} are set by point-in-time recovery; remove them from parameters`);
  }
  const roles = [o.appRole, o.readonlyRole, o.backupRole, o.replicationRole];
  if (new Set(roles).size !== roles.length) {
    throw new Error(`${RENDERER}: appRole, readonlyRole, backupRole and replicationRole must differ (${roles.map((r) => JSON.stringify(r)).join(', ')})`);
  }
  if (o.initDir !== undefined) checkPath(RENDERER, 'initDir', o.initDir);
}

/** A session whose statements (passwords among them) reach no server log, nor notices the client. */
const QUIET_SESSION_SQL = `SET client_min_messages = warning;
SET log_statement = 'none';
SET log_min_duration_statement = -1;`;

/**
 * Roles first, in the maintenance database. The passwords come from the environment through
 * psql's `\getenv` (psql 15+), so they appear neither in this file nor in any process's argv.
 * Logging is switched off for this session because `ALTER ROLE … PASSWORD` is otherwise written
 * to the server log whenever log_statement or an error logs the statement.
 */
const ROLES_SQL = String.raw`
${QUIET_SESSION_SQL}
SET log_min_error_statement = 'panic';
\getenv app_password TENANTRY_APP_PASSWORD
\getenv readonly_password TENANTRY_READONLY_PASSWORD
\getenv backup_password TENANTRY_BACKUP_PASSWORD

SELECT format('CREATE ROLE %I', :'app_role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_role')
\gexec
SELECT format('CREATE ROLE %I', :'readonly_role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'readonly_role')
\gexec
SELECT format('CREATE ROLE %I', :'backup_role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'backup_role')
\gexec
-- Re-asserted on every run: a re-run rotates the passwords and undoes any privilege drift.
ALTER ROLE :"app_role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'app_password';
ALTER ROLE :"readonly_role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'readonly_password';
-- Belt and braces for the readonly role: even a privilege granted by mistake cannot write.
ALTER ROLE :"readonly_role" SET default_transaction_read_only = on;
-- The backup role reads every table (pg_read_all_data) past row-level security (BYPASSRLS, FORCE
-- included), and CONNECT on the tenant's own databases is its only way in: on a shared server it
-- cannot reach another tenant's. CREATEDB is for verification, which restores into a scratch
-- database it creates, owns and drops; it gives no access to any database it does not own. A
-- database it creates (or renames a scratch one to) under a name another tenant of a shared server
-- will get later stays its own: the per-database check below refuses to adopt it. On a dedicated
-- server there is no other tenant whose name it could take, and its own tenant's is refused alike.
ALTER ROLE :"backup_role" WITH LOGIN NOSUPERUSER CREATEDB NOCREATEROLE NOREPLICATION BYPASSRLS PASSWORD :'backup_password';
GRANT pg_read_all_data TO :"backup_role";
`;

/**
 * The role of the backup agent's postgres-pitr job, holding what it calls and nothing more:
 * - pg_receivewal and pg_basebackup: REPLICATION (the rendered pg_hba.conf lets exactly this role
 *   replicate; without PITR no rule lets anyone).
 * - verification, over a normal connection to each of the tenant's databases: CONNECT on those
 *   (granted per database below), row counts of every table as they are (pg_read_all_data, and
 *   BYPASSRLS: the recovered copy is counted by its superuser, so a policy that hid rows from the
 *   source's count would fail every verification), and pg_logical_emit_message, which REPLICATION
 *   allows, for a WAL record to recover to.
 * None of this is broader than REPLICATION alone: a base backup is a copy of every file of the
 * cluster, every row of every table past any policy. What is added only reads, and only what
 * that copy already holds: no write, no DDL, no role; no other database than the tenant's.
 */
const REPLICATION_ROLE_SQL = String.raw`
\getenv replication_password TENANTRY_REPLICATION_PASSWORD
SELECT format('CREATE ROLE %I', :'replication_role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'replication_role')
\gexec
ALTER ROLE :"replication_role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE REPLICATION BYPASSRLS PASSWORD :'replication_password';
GRANT pg_read_all_data TO :"replication_role";
`;

/** Without PITR: a role left from when it was on keeps its grants but can no longer log in or replicate. */
const RETIRED_REPLICATION_ROLE_SQL = String.raw`
SELECT format('ALTER ROLE %I WITH NOLOGIN NOREPLICATION', :'replication_role')
 WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = :'replication_role')
\gexec
`;

/** Per database, with PITR: verification's way in (REPLICATION_ROLE_SQL says why). */
const REPLICATION_DATABASE_SQL = String.raw`GRANT CONNECT ON DATABASE :"database" TO :"replication_role";`;

/**
 * pg_read_all_data does not cover large objects (pg_dump fails "permission denied for large
 * object"), and PostgreSQL before 18 has no default privileges for them. The least privilege that
 * reads them: a function owned by the app role (who owns the app's large objects), callable only
 * by the backup role, that grants the caller SELECT on each of them that it cannot read yet. The
 * agent calls it before each dump. The alternative, `lo_compat_privileges = on` for the backup
 * role, switches every large-object check off for it: it could then also write and unlink them.
 * The schema belongs to the superuser, so the app role cannot replace the function's body (it
 * could make it SECURITY INVOKER, after which it only fails: the backup role owns no large object).
 */
const LARGE_OBJECTS_SQL = String.raw`
CREATE SCHEMA IF NOT EXISTS tenantry;
REVOKE ALL ON SCHEMA tenantry FROM PUBLIC;
GRANT USAGE ON SCHEMA tenantry TO :"backup_role";
CREATE OR REPLACE FUNCTION tenantry.grant_large_objects_to_backup() RETURNS bigint
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  reader oid := (SELECT oid FROM pg_roles WHERE rolname = session_user);
  lo oid;
  granted bigint := 0;
BEGIN
  FOR lo IN
    SELECT m.oid FROM pg_largeobject_metadata m
     WHERE m.lomowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
       AND NOT EXISTS (SELECT FROM aclexplode(m.lomacl) a WHERE a.grantee = reader AND a.privilege_type = 'SELECT')
  LOOP
    EXECUTE format('GRANT SELECT ON LARGE OBJECT %s TO SESSION_USER', lo);
    granted := granted + 1;
  END LOOP;
  RETURN granted;
END
$fn$;
ALTER FUNCTION tenantry.grant_large_objects_to_backup() OWNER TO :"app_role";
REVOKE ALL ON FUNCTION tenantry.grant_large_objects_to_backup() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenantry.grant_large_objects_to_backup() TO :"backup_role";
`;

/**
 * The script never adopts a database it did not create for this tenant. On a shared server every
 * tenant's backup role has CREATEDB, so before tenant B is provisioned tenant A's could create B's
 * database (or rename a tenantry_verify_* scratch copy to its name), fill it and grant itself
 * CONNECT; ALTER OWNER would hand B a database in which A's objects and grants survive. A database
 * of the list must therefore be owned by the app role (only this script, or a superuser, can make it
 * so: the app role lacks CREATEDB, and no other role is a member of it) and mention no role but the
 * tenant's four (the replication role too, PITR on or off: turned off, it keeps its CONNECT) and
 * superusers, in its own owner and grants or as the owner of anything inside it (pg_shdepend
 * records both; the bootstrap superuser's are not recorded). A superuser-owned
 * database is refused too: the official image creates only "postgres" (POSTGRES_DB is not set), a
 * name the config refuses for a tenant. Checked after CREATE DATABASE, which copies template1, so a
 * foreign object planted there is caught as well. PUBLIC's default entries are allowed: a run
 * stopped between CREATE DATABASE and REVOKE leaves them, and this one revokes them.
 */
const ADOPTION_CHECK_SQL = String.raw`
SET tenantry.database = :'database';
SET tenantry.app_role = :'app_role';
SET tenantry.readonly_role = :'readonly_role';
SET tenantry.backup_role = :'backup_role';
SET tenantry.replication_role = :'replication_role';
DO $check$
DECLARE
  db name := current_setting('tenantry.database');
  app name := current_setting('tenantry.app_role');
  tenant_roles name[] := ARRAY[app, current_setting('tenantry.readonly_role'), current_setting('tenantry.backup_role'), current_setting('tenantry.replication_role')];
  db_oid oid;
  owner name;
  strangers text;
  inspect text;
BEGIN
  SELECT oid, pg_get_userbyid(datdba) INTO db_oid, owner FROM pg_database WHERE datname = db;
  inspect := format('Inspect it as the superuser: \l+ %s shows its owner and grants; connected to it, \dn+ and \dt+ *.* show what is inside and whose. '
    'If nothing in it belongs to another tenant, DROP DATABASE %s (or, if it holds this tenant''s data, ALTER DATABASE %s OWNER TO %s and remove the other roles'' grants and objects), then provision again.',
    db, db, db, app);
  IF owner <> app THEN
    RAISE EXCEPTION 'database "%" already exists, owned by "%" instead of this tenant''s app role "%": Tenantry does not adopt a database it did not create for this tenant (another tenant''s backup role, which has CREATEDB, may have created it to read this tenant''s data)', db, owner, app
      USING HINT = inspect;
  END IF;
  SELECT string_agg(DISTINCT format('"%s"', r.rolname), ', ') INTO strangers
    FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid
   WHERE d.refclassid = 'pg_authid'::regclass
     AND ((d.dbid = 0 AND d.classid = 'pg_database'::regclass AND d.objid = db_oid) OR (d.dbid = db_oid AND d.deptype = 'o'))
     AND NOT r.rolsuper AND r.rolname <> ALL (tenant_roles);
  IF strangers IS NOT NULL THEN
    RAISE EXCEPTION 'database "%" (owner "%") has grants to or objects owned by % outside this tenant''s roles: Tenantry does not adopt a database another role has a hold on', db, owner, strangers
      USING HINT = inspect;
  END IF;
END
$check$;
`;

/**
 * Run once per database (after \set database). CREATE DATABASE cannot run inside a DO block or
 * a transaction, hence \gexec. PUBLIC loses CONNECT and TEMPORARY, so only the tenant's two roles
 * get in. The public schema is given to the app role explicitly because its default owner and
 * grants differ between Postgres 14 and 15+, and a shared server may run either.
 */
const DATABASE_SQL = String.raw`
SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'app_role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database')
\gexec
${ADOPTION_CHECK_SQL.trim()}
ALTER DATABASE :"database" OWNER TO :"app_role";
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"database" TO :"readonly_role", :"backup_role";
\connect :database
SET client_min_messages = warning;
ALTER SCHEMA public OWNER TO :"app_role";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"readonly_role";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"readonly_role";
GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO :"readonly_role";
-- Tables the app creates later are readable too; sequences as well, so pg_dump can run as readonly.
ALTER DEFAULT PRIVILEGES FOR ROLE :"app_role" IN SCHEMA public GRANT SELECT ON TABLES TO :"readonly_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"app_role" IN SCHEMA public GRANT SELECT ON SEQUENCES TO :"readonly_role";
${LARGE_OBJECTS_SQL}
`;

/** psql input: names as psql variables (validated identifiers), then the SQL blocks above. */
function initSql(o: PostgresRenderOptions): string {
  const names = [`\\set app_role '${o.appRole}'`, `\\set readonly_role '${o.readonlyRole}'`, `\\set backup_role '${o.backupRole}'`, `\\set replication_role '${o.replicationRole}'`].join('\n');
  const replication = [(o.pitr ? REPLICATION_ROLE_SQL : RETIRED_REPLICATION_ROLE_SQL).trim()];
  const perDatabase = o.databases.map((database) => [`\\set database '${database}'`, DATABASE_SQL.trim(), ...(o.pitr ? [REPLICATION_DATABASE_SQL] : [])].join('\n'));
  return [names, ROLES_SQL.trim(), ...replication, ...perDatabase].join('\n\n');
}

/**
 * The init script: idempotent, so the official image can run it at first start and an operator
 * (or a shared server's provisioning) can run it again to rotate passwords.
 */
export function renderPostgresInitScript(o: PostgresRenderOptions): string {
  checkOptions(o);
  return shellScript(
    [
      'Tenantry: creates the tenant databases and least-privilege roles. Safe to run again: it creates',
      'only what is missing, re-asserts privileges and sets the roles\' passwords from the environment.',
    ],
    [
      requireEnvLine('TENANTRY_APP_PASSWORD'),
      requireEnvLine('TENANTRY_READONLY_PASSWORD'),
      requireEnvLine('TENANTRY_BACKUP_PASSWORD'),
      ...(o.pitr ? [requireEnvLine('TENANTRY_REPLICATION_PASSWORD')] : []),
      "# libpq's PG* variables win when set (a shared server, tests); otherwise the official image's",
      '# init phase defaults apply: its local socket and POSTGRES_USER.',
      'exec psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \\',
      '  --username "${PGUSER:-${POSTGRES_USER:-postgres}}" --dbname "${PGDATABASE:-postgres}" <<\'SQL\'',
      initSql(o),
      'SQL',
    ],
  );
}

function formatParameter(value: string | number | boolean): string {
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  return String(value);
}

/** `-c key=value` pairs sorted by key, so that equal options always give the same command. */
function parameterArgs(parameters: PostgresRenderOptions['parameters']): string[] {
  return Object.keys(parameters)
    .sort()
    .flatMap((key) => {
      if (!/^[a-z][a-z0-9_.]*$/.test(key)) {
        throw new Error(`${RENDERER}: parameter names are lower-case Postgres settings (value: ${JSON.stringify(key)})`);
      }
      const value = formatParameter(parameters[key]);
      // One argv entry each (no shell): spaces, quotes and "$" pass as they are; a control character would not.
      if (/[\x00-\x1f\x7f]/.test(value)) {
        throw new Error(`${RENDERER}: parameter ${key} has a control character in its value (value: ${JSON.stringify(value)})`);
      }
      return ['-c', `${key}=${value}`];
    });
}

/** The server's command line: `postgres` with the parameters as sorted `-c` pairs. */
export function renderPostgresCommand(parameters: PostgresRenderOptions['parameters']): string[] {
  return ['postgres', ...parameterArgs(parameters)];
}

/**
 * pg_hba.conf with point-in-time recovery: the official image's rules as it writes them at initdb
 * (trust on the socket and loopback, where only the container itself connects; a password from
 * anywhere else), plus one line that lets exactly the replication role in for replication. The
 * image has no replication rule for other hosts, and its file lives in the data directory, written
 * once at first start: rendered here, the rule reaches servers deployed before it, and a restored
 * data directory cannot bring back an older set of rules.
 */
export function renderPitrHba(replicationRole: string): string {
  checkIdentifier(RENDERER, 'pitr.replicationRole', replicationRole);
  return [
    '# Tenantry: the official postgres image\'s rules, and replication for the backup agent\'s role only.',
    '# TYPE  DATABASE     USER  ADDRESS       METHOD',
    'local   all          all                 trust',
    'host    all          all   127.0.0.1/32  trust',
    'host    all          all   ::1/128       trust',
    'local   replication  all                 trust',
    'host    replication  all   127.0.0.1/32  trust',
    'host    replication  all   ::1/128       trust',
    `host    replication  ${replicationRole}  all  scram-sha-256`,
    'host    all          all   all           scram-sha-256',
    '',
  ].join('\n');
}

/**
 * The Postgres container: image entrypoint kept (it runs the init script on an empty data dir).
 * With point-in-time recovery the restore-on-start script runs first and then execs it, and the
 * server reads the rendered pg_hba.conf.
 */
export function renderPostgres(o: PostgresRenderOptions): ContainerLaunch {
  const initDir = o.initDir ?? DEFAULT_INIT_DIR;
  const init = { path: `${initDir}/${INIT_SCRIPT_NAME}`, content: renderPostgresInitScript(o), executable: true };
  const env = ['POSTGRES_PASSWORD', 'TENANTRY_APP_PASSWORD', 'TENANTRY_READONLY_PASSWORD', 'TENANTRY_BACKUP_PASSWORD'];
  if (!o.pitr) return { files: [init], command: renderPostgresCommand(o.parameters), env };
  return withPitr({ files: [init], command: renderPostgresCommand(o.parameters), env: [...env, 'TENANTRY_REPLICATION_PASSWORD'] }, o.parameters, o.pitr, o.replicationRole);
}

/**
 * The environment's shared server: no init script (its tenants' databases are provisioned one
 * tenant at a time, constructs/shared-postgres.ts); with point-in-time recovery, the same streaming
 * parameters, pg_hba.conf and restore on start as a dedicated server, for the environment's own
 * replication role (created by renderReplicationRoleScript).
 */
export function renderSharedPostgres(parameters: PostgresRenderOptions['parameters'], pitr?: PostgresPitrOptions & { replicationRole: string }): ContainerLaunch {
  const plain = { files: [], command: renderPostgresCommand(parameters), env: ['POSTGRES_PASSWORD'] };
  return pitr ? withPitr(plain, parameters, pitr, pitr.replicationRole) : plain;
}

function withPitr(launch: ContainerLaunch, parameters: PostgresRenderOptions['parameters'], pitr: PostgresPitrOptions, replicationRole: string): ContainerLaunch {
  return {
    ...launch,
    files: [
      ...launch.files,
      { path: PITR_HBA_FILE, content: renderPitrHba(replicationRole) },
      { path: RESTORE_ON_START_SCRIPT, content: renderRestoreOnStart(), executable: true },
    ],
    entrypoint: ['/bin/sh', RESTORE_ON_START_SCRIPT, IMAGE_ENTRYPOINT],
    command: renderPostgresCommand({ ...parameters, ...pitrServerParameters(pitr), hba_file: PITR_HBA_FILE }),
  };
}

/**
 * The shared server's replication role alone, for its one-shot provisioning container: the role
 * the environment's backup agent streams the whole server with. It gets CONNECT on no tenant's
 * database (adding a tenant must not change the environment's archive); recovery verification
 * counts the `postgres` database, which PUBLIC may connect to.
 */
export function renderReplicationRoleScript(replicationRole: string): string {
  checkIdentifier(RENDERER, 'pitr.replicationRole', replicationRole);
  return shellScript(
    ['Tenantry: creates the shared server\'s replication role, or re-asserts it and sets its password. Safe to run again.'],
    [
      requireEnvLine('TENANTRY_REPLICATION_PASSWORD'),
      'exec psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \\',
      '  --username "${PGUSER:-${POSTGRES_USER:-postgres}}" --dbname "${PGDATABASE:-postgres}" <<\'SQL\'',
      `\\set replication_role '${replicationRole}'`,
      // ALTER ROLE … PASSWORD must not reach the server log (ROLES_SQL says why).
      QUIET_SESSION_SQL,
      REPLICATION_ROLE_SQL.trim(),
      'SQL',
    ],
  );
}

/** The official image's entrypoint (on its PATH): initialises an empty data dir, drops to postgres. */
const IMAGE_ENTRYPOINT = 'docker-entrypoint.sh';

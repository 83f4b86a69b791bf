/**
 * The backup role's privileges against real PostgreSQL servers (every version Tenantry supports
 * that can run here): the init script creates two tenants' roles and databases on one server, as
 * on an environment's shared server; the agent backs one tenant up and verifies it as its backup
 * role, not as a superuser; a restore runs only with the operator's elevated credential and brings
 * back everything (contents, large objects, policies, owners, grants).
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Client } from 'pg';
import { tenantRoles } from '../../config/postgres-names';
import { RESTORE_CREDENTIAL_ENV } from '../../runtime/agent/config';
import { renderPostgres } from '../../runtime/render/postgres';
import { postgresVersionsUnderTest, PostgresServer, startPostgres, tempDir, withDatabase } from '../helpers/servers';
import { cli, manifests, writeConfig } from './harness';

const ACME = { tenant: 'acme', databases: ['app', 'reports'], ...tenantRoles('acme') };
const OTHER = { tenant: 'other', databases: ['other'], ...tenantRoles('other') };
/** Added to the shared server after the others, under a database name ACME's backup role takes first. */
const LATE = { tenant: 'late', databases: ['late'], ...tenantRoles('late') };
type TenantSetup = typeof ACME;
const passwords = (t: TenantSetup) => ({ app: `${t.tenant} app pw`, readonly: `${t.tenant} ro pw`, backup: `${t.tenant} 'backup' $pw` });

/** The app's data: RLS with FORCE and a policy that hides rows, several schemas, large objects, grants. */
const APP_SCHEMA = `
  CREATE TABLE public.notes (id int PRIMARY KEY, owner text NOT NULL, body text);
  INSERT INTO public.notes SELECT i, CASE WHEN i % 3 = 0 THEN 'someone_else' ELSE current_user END, 'note ' || i FROM generate_series(1, 300) i;
  ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
  ALTER TABLE public.notes FORCE ROW LEVEL SECURITY;
  CREATE POLICY own_notes ON public.notes USING (owner = current_user);
  CREATE SCHEMA billing;
  CREATE TABLE billing.invoices (id serial PRIMARY KEY, amount numeric(10,2), doc oid);
  INSERT INTO billing.invoices (amount, doc) SELECT i * 1.25, lo_from_bytea(0, convert_to('invoice ' || i || repeat('x', i * 10), 'UTF8')) FROM generate_series(1, 20) i;
  GRANT USAGE ON SCHEMA billing TO ${ACME.readonlyRole};
  GRANT SELECT ON billing.invoices TO ${ACME.readonlyRole};
  CREATE SCHEMA audit;
  CREATE TABLE audit.events (at timestamptz DEFAULT '2025-01-01', what jsonb);
  INSERT INTO audit.events (what) SELECT jsonb_build_object('n', i) FROM generate_series(1, 50) i;
  REVOKE ALL ON SCHEMA audit FROM PUBLIC;`;

function runScript(script: string, env: NodeJS.ProcessEnv): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile('/bin/sh', [script], { env, timeout: 60_000 }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, output: `${stdout}${stderr}` }));
  });
}

/**
 * Everything a restore must bring back, read as the superuser (who sees past RLS). Privileges are
 * compared as they take effect: an ACL that equals the default (null) is the default spelled out.
 */
async function snapshotOf(server: PostgresServer, database: string): Promise<Record<string, unknown>> {
  const superuser = <T>(db: string, use: (c: Client) => Promise<T>) => withDatabase(server, db, use);
  const rows = async (c: Client, sql: string) => (await c.query(sql)).rows;
  const databaseRow = await superuser('postgres', (c) => c.query(`SELECT pg_get_userbyid(datdba) AS owner, coalesce(datacl, acldefault('d'::"char", datdba))::text AS acl FROM pg_database WHERE datname = $1`, [database]));
  return superuser(database, async (c) => {
    const tables = await rows(c, `SELECT format('%I.%I', n.nspname, c.relname) AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1`);
    const contents: Record<string, unknown> = {};
    for (const { t } of tables) contents[t] = (await rows(c, `SELECT count(*)::int AS n, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS sum FROM ${t} x`))[0];
    return {
      database: databaseRow.rows[0],
      contents,
      relations: await rows(c, `SELECT n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner) AS owner, coalesce(c.relacl, acldefault((CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::"char", c.relowner))::text AS acl, c.relrowsecurity, c.relforcerowsecurity
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1, 2`),
      schemas: await rows(c, `SELECT nspname, pg_get_userbyid(nspowner) AS owner, coalesce(nspacl, acldefault('n'::"char", nspowner))::text AS acl FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1`),
      policies: await rows(c, 'SELECT schemaname, tablename, policyname, permissive, roles::text, cmd, qual, with_check FROM pg_policies ORDER BY 1, 2, 3'),
      largeObjects: await rows(c, `SELECT pg_get_userbyid(lomowner) AS owner, coalesce(lomacl, acldefault('L'::"char", lomowner))::text AS acl, md5(lo_get(oid)) AS sum FROM pg_largeobject_metadata ORDER BY oid`),
      functions: await rows(c, `SELECT n.nspname, p.proname, pg_get_userbyid(p.proowner) AS owner, coalesce(p.proacl, acldefault('f'::"char", p.proowner))::text AS acl, p.prosecdef FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`),
      defaultPrivileges: await rows(c, 'SELECT pg_get_userbyid(defaclrole) AS role, defaclnamespace::regnamespace::text AS schema, defaclobjtype, defaclacl::text AS acl FROM pg_default_acl ORDER BY 1, 2, 3'),
    };
  });
}

describe.each(postgresVersionsUnderTest())('backup role on a real PostgreSQL $major server', ({ major, binDir }) => {
  let server: PostgresServer;
  /** The agent and the init script use this version's client tools. */
  let toolPath: string;
  let configPath: string;
  let config: ReturnType<typeof writeConfig>['config'];
  const agentEnv = () => ({ PATH: toolPath, PG_PASSWORD: passwords(ACME).backup });

  const as = <T>(t: TenantSetup, role: 'app' | 'backup', database: string, use: (db: Client) => Promise<T>) =>
    withDatabase(server, database, use, { user: role === 'app' ? t.appRole : t.backupRole, password: passwords(t)[role] });

  const processPath = process.env.PATH;

  /** The init script, run as a shared server's provisioning runs it. */
  const provision = (t: TenantSetup) => {
    const launch = renderPostgres({ databases: t.databases, appRole: t.appRole, readonlyRole: t.readonlyRole, backupRole: t.backupRole, replicationRole: t.replicationRole, parameters: {} });
    const script = path.join(tempDir('init'), 'init.sh');
    fs.writeFileSync(script, launch.files[0].content);
    const p = passwords(t);
    return runScript(script, { PATH: toolPath, ...server.env, TENANTRY_APP_PASSWORD: p.app, TENANTRY_READONLY_PASSWORD: p.readonly, TENANTRY_BACKUP_PASSWORD: p.backup });
  };

  beforeAll(async () => {
    server = await startPostgres({ binDir, parameters: { jit: 'off' } });
    toolPath = `${binDir}:${processPath}`;
    // The agent finds Debian's versions by their directory, others on its own PATH (as in an image).
    process.env.PATH = toolPath;
    for (const t of [ACME, OTHER]) expect(await provision(t)).toEqual({ code: 0, output: '' });
    await as(ACME, 'app', 'app', (db) => db.query(APP_SCHEMA));
    await as(ACME, 'app', 'reports', (db) => db.query(`CREATE TABLE monthly (month date PRIMARY KEY, total bigint); INSERT INTO monthly SELECT d, 7 FROM generate_series('2024-01-01'::date, '2024-12-01', '1 month') d`));
    await as(OTHER, 'app', 'other', (db) => db.query(`CREATE TABLE secrets (v text); INSERT INTO secrets VALUES ('other tenant data'); SELECT lo_from_bytea(0, 'other lo')`));
    ({ path: configPath, config } = writeConfig({
      tenant: ACME.tenant,
      jobs: [
        {
          name: 'pg',
          kind: 'postgres',
          schedule: '0 3 * * *',
          retention: { daily: 7, weekly: 4, monthly: 6 },
          offsite: false,
          // 0: every table's data goes through the chunk copies too, as big tables do.
          postgres: { host: server.host, port: server.port, user: ACME.backupRole, passwordEnv: 'PG_PASSWORD', databases: ACME.databases, parallelJobs: 2, splitTablesLargerThanMb: 0 },
        },
      ],
    }));
  });

  afterAll(async () => {
    process.env.PATH = processPath;
    await server?.stop();
  });

  it('creates the backup role without superuser, role creation or replication; BYPASSRLS, CREATEDB and pg_read_all_data', async () => {
    const roles = await withDatabase(server, 'postgres', async (db) =>
      (
        await db.query(
          `SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolreplication, rolbypassrls, rolcreatedb,
                  ARRAY(SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = r.oid ORDER BY 1)::text AS member_of
             FROM pg_roles r WHERE rolname = ANY($1) ORDER BY 1`,
          [[ACME.backupRole, OTHER.backupRole]],
        )
      ).rows,
    );
    const expected = { rolcanlogin: true, rolsuper: false, rolcreaterole: false, rolreplication: false, rolbypassrls: true, rolcreatedb: true, member_of: '{pg_read_all_data}' };
    expect(roles).toEqual([
      { rolname: ACME.backupRole, ...expected },
      { rolname: OTHER.backupRole, ...expected },
    ]);
  });

  it("keeps each tenant's backup role out of the other tenant's databases on one server", async () => {
    for (const database of OTHER.databases) {
      await expect(as(ACME, 'backup', database, async () => undefined)).rejects.toThrow(`permission denied for database "${database}"`);
    }
    for (const database of ACME.databases) {
      await expect(as(OTHER, 'backup', database, async () => undefined)).rejects.toThrow(`permission denied for database "${database}"`);
    }
    // In its own database it reads past FORCE'd row-level security, and writes nothing.
    await as(ACME, 'backup', 'app', async (db) => {
      expect((await db.query('SELECT count(*)::int AS n FROM public.notes')).rows).toEqual([{ n: 300 }]);
      await expect(db.query(`INSERT INTO public.notes VALUES (1000, 'x', 'x')`)).rejects.toThrow(/permission denied/);
      await expect(db.query('SELECT lo_unlink(doc) FROM billing.invoices LIMIT 1')).rejects.toThrow(/must be owner of large object/);
    });
  });

  it('backs up RLS tables, large objects, several schemas and two databases, and verifies them, as the backup role', async () => {
    const run = await cli(['run', 'pg', '--config', configPath], agentEnv());
    expect(run.stderr).not.toContain(passwords(ACME).backup);
    expect({ code: run.code, stdout: run.stdout }).toEqual({ code: 0, stdout: expect.stringContaining(': ok,') });
    const [manifest] = await manifests(config, 'pg');
    expect(manifest.source.version).toMatch(new RegExp(`^${major}\\.`));
    expect(manifest.details).toMatchObject({ rolePasswords: false, databases: { app: { tables: { 'public.notes': 300, 'billing.invoices': 20, 'audit.events': 50 } }, reports: { tables: { 'public.monthly': 12 } } } });

    const verify = await cli(['verify', manifest.id, '--config', configPath], agentEnv());
    expect(verify.stdout).toContain('verification passed');
    expect(verify.code).toBe(0);
    // The scratch databases are gone again.
    const left = await withDatabase(server, 'postgres', async (db) => (await db.query(`SELECT datname FROM pg_database WHERE datname LIKE 'tenantry_verify%'`)).rows);
    expect(left).toEqual([]);
  });

  it('refuses to restore without the elevated credential, before touching anything, and says how to pass it', async () => {
    const before = await snapshotOf(server, 'app');
    const result = await cli(['restore', 'pg', '--from', 'latest', '--force', '--config', configPath], agentEnv());
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`may only read`);
    expect(result.stderr).toContain(`docker exec -e ${RESTORE_CREDENTIAL_ENV.userEnv} -e ${RESTORE_CREDENTIAL_ENV.passwordEnv} `);
    expect(result.stderr).toContain('tenantry-agent restore pg --from latest --force\n');
    expect(await snapshotOf(server, 'app')).toEqual(before);
  });

  it('restores everything with the elevated credential: contents, large objects, policies, owners, grants', async () => {
    const before = { app: await snapshotOf(server, 'app'), reports: await snapshotOf(server, 'reports'), other: await snapshotOf(server, 'other') };
    // Damage the tenant's data the way an incident would.
    await as(ACME, 'app', 'app', (db) => db.query('DELETE FROM billing.invoices; DROP TABLE audit.events; SELECT lo_unlink(oid) FROM pg_largeobject_metadata'));
    await as(ACME, 'app', 'reports', (db) => db.query('TRUNCATE monthly'));

    const restore = await cli(['restore', 'pg', '--from', 'latest', '--force', '--config', configPath], {
      ...agentEnv(),
      [RESTORE_CREDENTIAL_ENV.userEnv]: server.superuser,
      [RESTORE_CREDENTIAL_ENV.passwordEnv]: server.password,
    });
    expect(restore.stderr).not.toContain(server.password);
    expect(restore.code).toBe(0);
    const after = { app: await snapshotOf(server, 'app'), reports: await snapshotOf(server, 'reports'), other: await snapshotOf(server, 'other') };
    expect(after).toEqual(before);
    expect((before.app.largeObjects as unknown[]).length).toBe(20);

    // A copy under another name is closed to every other role, as the scratch databases of
    // verification are: on a shared server the other tenant's backup role (pg_read_all_data) cannot read it.
    const copy = await cli(['restore', 'pg', '--from', 'latest', '--only', 'reports', '--target', 'reports_copy', '--config', configPath], {
      ...agentEnv(),
      [RESTORE_CREDENTIAL_ENV.userEnv]: server.superuser,
      [RESTORE_CREDENTIAL_ENV.passwordEnv]: server.password,
    });
    expect(copy.code).toBe(0);
    await expect(as(OTHER, 'backup', 'reports_copy', async () => undefined)).rejects.toThrow('permission denied for database "reports_copy"');

    // The restored databases back up as the backup role again, a new large object included.
    await as(ACME, 'app', 'app', (db) => db.query(`SELECT lo_from_bytea(0, 'after the restore')`));
    const again = await cli(['run', 'pg', '--config', configPath], agentEnv());
    expect(again.code).toBe(0);
  });

  it('fails with what to do when a large object is not the app\'s and no grant lets the backup role read it', async () => {
    const superuser = <T>(use: (db: Client) => Promise<T>) => withDatabase(server, 'app', use);
    const oid = await superuser(async (db) => (await db.query<{ oid: number }>(`SELECT lo_from_bytea(0, 'the superuser''s') AS oid`)).rows[0].oid);
    const refused = await cli(['run', 'pg', '--config', configPath], agentEnv());
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain('app: the backup role cannot read 1 large object(s) (still, after 3 grants): run the Postgres init script again');

    await superuser((db) => db.query(`GRANT SELECT ON LARGE OBJECT ${oid} TO PUBLIC`));
    const granted = await cli(['run', 'pg', '--config', configPath], agentEnv());
    expect(granted.code).toBe(0);
  });

  it("never hands a tenant a database another tenant's backup role created under its name", async () => {
    const superuser = <T>(database: string, use: (db: Client) => Promise<T>) => withDatabase(server, database, use);
    const ownerOf = (database: string) =>
      superuser('postgres', async (db) => (await db.query(`SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1`, [database])).rows[0]?.owner);
    // ACME's backup role (CREATEDB) makes a scratch database as verification does, plants a table
    // anyone may write, lets its own app role in, and renames the database to LATE's future name.
    await as(ACME, 'backup', 'postgres', (db) => db.query('CREATE DATABASE tenantry_verify_late_20250101t000000z'));
    await as(ACME, 'backup', 'tenantry_verify_late_20250101t000000z', (db) =>
      db.query(`CREATE TABLE public.orders (v text); GRANT ALL ON public.orders TO PUBLIC;
                REVOKE ALL ON DATABASE tenantry_verify_late_20250101t000000z FROM PUBLIC;
                GRANT CONNECT ON DATABASE tenantry_verify_late_20250101t000000z TO ${ACME.appRole}`),
    );
    await as(ACME, 'backup', 'postgres', (db) => db.query('ALTER DATABASE tenantry_verify_late_20250101t000000z RENAME TO late'));

    const squatted = await provision(LATE);
    expect(squatted.code).not.toBe(0);
    expect(squatted.output).toContain(`database "late" already exists, owned by "${ACME.backupRole}" instead of this tenant's app role "${LATE.appRole}"`);
    expect(squatted.output).toContain('HINT:  Inspect it as the superuser: \\l+ late shows its owner and grants');
    expect(await ownerOf('late')).toBe(ACME.backupRole);
    await expect(as(LATE, 'app', 'late', async () => undefined)).rejects.toThrow('permission denied for database "late"');

    // Given to LATE's app role by hand, the database still carries ACME's grant and table: refused.
    await superuser('postgres', (db) => db.query(`ALTER DATABASE late OWNER TO ${LATE.appRole}`));
    const handedOver = await provision(LATE);
    expect(handedOver.code).not.toBe(0);
    expect(handedOver.output).toContain(`database "late" (owner "${LATE.appRole}") has grants to or objects owned by "${ACME.appRole}", "${ACME.backupRole}" outside this tenant's roles`);

    // Dropped, it is created afresh: LATE's own, with nothing of ACME's and no way in for ACME.
    await superuser('postgres', (db) => db.query('DROP DATABASE late'));
    expect(await provision(LATE)).toEqual({ code: 0, output: '' });
    expect(await ownerOf('late')).toBe(LATE.appRole);
    await as(LATE, 'app', 'late', async (db) => expect((await db.query(`SELECT to_regclass('public.orders') AS t`)).rows).toEqual([{ t: null }]));
    await expect(as(ACME, 'app', 'late', async () => undefined)).rejects.toThrow('permission denied for database "late"');

    // Every tenant's provisioning still runs again, after backups, a restore and its copy.
    for (const t of [ACME, OTHER, LATE]) expect(await provision(t)).toEqual({ code: 0, output: '' });
  });
});

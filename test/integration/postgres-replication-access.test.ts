/**
 * Point-in-time recovery's way into a real PostgreSQL 15 server: the rendered pg_hba.conf, the
 * streaming parameters and the replication role the init script creates. Connections come from
 * this machine's non-loopback address, as the backup container's would over the Docker network
 * (the image's rules trust loopback).
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PITR_HBA_FILE, pitrServerParameters, renderPostgres, PostgresRenderOptions, renderReplicationRoleScript } from '../../runtime/render/postgres';
import { PostgresServer, startPostgres, tempDir } from '../helpers/servers';

const options: PostgresRenderOptions = {
  databases: ['orders'],
  appRole: 'acme_app',
  readonlyRole: 'acme_readonly',
  backupRole: 'acme_backup',
  replicationRole: 'acme_replication',
  parameters: {},
  pitr: { maxSlotWalKeepMb: 256 },
};
const passwords = { TENANTRY_APP_PASSWORD: 'app-pw', TENANTRY_READONLY_PASSWORD: 'ro-pw', TENANTRY_BACKUP_PASSWORD: 'bk-pw', TENANTRY_REPLICATION_PASSWORD: `rep 'pw" $1` };

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { env: { PATH: process.env.PATH, ...env }, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, output: `${stdout}${stderr}` });
    });
  });
}

const lanAddress = Object.values(os.networkInterfaces())
  .flat()
  .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

describe('replication access with point-in-time recovery (real Postgres 15)', () => {
  let server: PostgresServer;
  const psql = (user: string, password: string, conninfo: string, sql: string) =>
    run('psql', ['-X', '-At', '-v', 'ON_ERROR_STOP=1', `host=${lanAddress} port=${server.port} user=${user} dbname=orders ${conninfo}`, '-c', sql], { PGPASSWORD: password });

  beforeAll(async () => {
    if (!lanAddress) throw new Error('this test needs a non-loopback IPv4 address on this machine (the image trusts loopback connections)');
    const launch = renderPostgres(options);
    const dir = tempDir('pitr-hba');
    const hba = path.join(dir, 'pg_hba.conf');
    fs.writeFileSync(hba, launch.files.find((f) => f.path === PITR_HBA_FILE)!.content, { mode: 0o644 });
    const script = path.join(dir, 'init.sh');
    fs.writeFileSync(script, launch.files[0].content, { mode: 0o755 });
    const parameters = Object.fromEntries(Object.entries(pitrServerParameters(options.pitr!)).map(([k, v]) => [k, String(v)]));
    server = await startPostgres({ parameters: { ...parameters, hba_file: hba, listen_addresses: `127.0.0.1,${lanAddress}` } });
    expect(await run('/bin/sh', [script], { ...server.env, ...passwords })).toEqual({ code: 0, output: '' });
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
  });

  test('the server runs with the streaming parameters', async () => {
    const shown = await run('psql', ['-X', '-At', '-d', 'postgres', '-c', "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ',' ORDER BY name) FROM pg_settings WHERE name IN ('wal_level','max_slot_wal_keep_size','wal_keep_size','max_wal_senders','max_replication_slots')"], server.env);
    expect(shown.output.trim()).toBe('max_replication_slots=10,max_slot_wal_keep_size=256MB,max_wal_senders=10,wal_keep_size=0MB,wal_level=replica');
  });

  test('the replication role streams from another host with its password, and nothing else may', async () => {
    const identify = await psql('acme_replication', passwords.TENANTRY_REPLICATION_PASSWORD, 'replication=true', 'IDENTIFY_SYSTEM');
    expect(identify).toEqual({ code: 0, output: expect.stringMatching(/^\d+\|1\|/) });
    expect((await psql('acme_replication', 'wrong', 'replication=true', 'IDENTIFY_SYSTEM')).output).toContain('password authentication failed');
    for (const [role, password] of [['acme_app', passwords.TENANTRY_APP_PASSWORD], ['acme_backup', passwords.TENANTRY_BACKUP_PASSWORD], ['postgres', server.password]]) {
      expect((await psql(role, password, 'replication=true', 'IDENTIFY_SYSTEM')).output).toContain('no pg_hba.conf entry for replication connection');
    }
  });

  test('the image\'s rules still hold: the app role logs in from another host with its password', async () => {
    expect(await psql('acme_app', passwords.TENANTRY_APP_PASSWORD, '', 'SELECT current_user')).toEqual({ code: 0, output: 'acme_app\n' });
  });

  test('the replication role holds REPLICATION, and reading (past row security) for verification, nothing more', async () => {
    const attrs = await run('psql', ['-X', '-At', '-d', 'postgres', '-c', "SELECT rolcanlogin, rolreplication, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = 'acme_replication'"], server.env);
    expect(attrs.output.trim()).toBe('t|t|f|f|f|t');
    const memberOf = await run('psql', ['-X', '-At', '-d', 'postgres', '-c', "SELECT string_agg(b.rolname, ',' ORDER BY b.rolname) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member JOIN pg_roles b ON b.oid = m.roleid WHERE r.rolname = 'acme_replication'"], server.env);
    expect(memberOf.output.trim()).toBe('pg_read_all_data');
  });

  describe('verification, as the agent runs it: a normal connection to the tenant\'s database as the replication role', () => {
    const asReplication = (sql: string, dbname = 'orders') => psql('acme_replication', passwords.TENANTRY_REPLICATION_PASSWORD, `dbname=${dbname}`, sql);

    beforeAll(async () => {
      // A table whose policy hides every row from everyone but its owner: the source's count must still see them all.
      const setup = await psql('acme_app', passwords.TENANTRY_APP_PASSWORD, '', [
        'CREATE TABLE invoices (id int PRIMARY KEY)',
        'INSERT INTO invoices SELECT generate_series(1, 25)',
        'ALTER TABLE invoices ENABLE ROW LEVEL SECURITY',
        'ALTER TABLE invoices FORCE ROW LEVEL SECURITY',
        'CREATE POLICY only_app ON invoices USING (current_user = \'acme_app\')',
      ].join('; '));
      expect(setup.code).toBe(0);
      await run('psql', ['-X', '-At', '-d', 'postgres', '-c', 'CREATE DATABASE other_tenant'], server.env);
      await run('psql', ['-X', '-At', '-d', 'postgres', '-c', 'REVOKE ALL ON DATABASE other_tenant FROM PUBLIC'], server.env);
    });

    test('it counts every row, row security or not', async () => {
      expect(await asReplication('SELECT count(*) FROM invoices')).toEqual({ code: 0, output: '25\n' });
    });

    test('it writes the WAL message verification recovers to', async () => {
      expect(await asReplication("SELECT pg_logical_emit_message(false, 'tenantry-verify', '') > '0/0'::pg_lsn")).toEqual({ code: 0, output: 't\n' });
    });

    test('it cannot write, change definitions, nor enter a database that is not the tenant\'s', async () => {
      expect((await asReplication('INSERT INTO invoices VALUES (100)')).output).toContain('permission denied for table invoices');
      expect((await asReplication('CREATE TABLE planted (id int)')).output).toContain('permission denied for schema public');
      expect((await asReplication('SELECT 1', 'other_tenant')).output).toContain('permission denied for database "other_tenant"');
    });

    test('running the init script again accepts the role\'s own grant on the tenant\'s database (it is one of the tenant\'s roles)', async () => {
      const launch = renderPostgres(options);
      const script = path.join(tempDir('pitr-hba-rerun'), 'init.sh');
      fs.writeFileSync(script, launch.files[0].content, { mode: 0o755 });
      expect(await run('/bin/sh', [script], { ...server.env, ...passwords })).toEqual({ code: 0, output: '' });
    });
  });

  // Last: it turns PITR off on this server.
  test('PITR switched off later: the init script still accepts the tenant\'s database, and the left role can no longer log in or replicate', async () => {
    const { pitr: _off, ...withoutPitr } = options;
    const launch = renderPostgres(withoutPitr);
    const script = path.join(tempDir('pitr-off'), 'init.sh');
    fs.writeFileSync(script, launch.files[0].content, { mode: 0o755 });
    const { TENANTRY_REPLICATION_PASSWORD: _unused, ...loginPasswords } = passwords;
    expect(await run('/bin/sh', [script], { ...server.env, ...loginPasswords })).toEqual({ code: 0, output: '' });
    const attrs = await run('psql', ['-X', '-At', '-d', 'postgres', '-c', "SELECT rolcanlogin, rolreplication FROM pg_roles WHERE rolname = 'acme_replication'"], server.env);
    expect(attrs.output.trim()).toBe('f|f');
    expect((await psql('acme_replication', passwords.TENANTRY_REPLICATION_PASSWORD, '', 'SELECT 1')).output).toContain('is not permitted to log in');
    expect(await psql('acme_app', passwords.TENANTRY_APP_PASSWORD, '', 'SELECT count(*) FROM invoices')).toEqual({ code: 0, output: '25\n' });
  });
});

describe("the shared server's replication role script (real Postgres 15)", () => {
  let server: PostgresServer;

  beforeAll(async () => {
    server = await startPostgres({});
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
  });

  test('creates shared_replication with REPLICATION and reading only; run again, it sets the new password and nothing else', async () => {
    const script = path.join(tempDir('shared-replication'), 'replication-role.sh');
    fs.writeFileSync(script, renderReplicationRoleScript('shared_replication'), { mode: 0o755 });
    expect(await run('/bin/sh', [script], { ...server.env, TENANTRY_REPLICATION_PASSWORD: 'first' })).toEqual({ code: 0, output: '' });
    expect(await run('/bin/sh', [script], { ...server.env, TENANTRY_REPLICATION_PASSWORD: `second 'pw" $1` })).toEqual({ code: 0, output: '' });

    const attrs = await run('psql', ['-X', '-At', '-d', 'postgres', '-c', "SELECT rolcanlogin, rolreplication, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = 'shared_replication'"], server.env);
    expect(attrs.output.trim()).toBe('t|t|f|f|f|t');
    const login = await run('psql', ['-X', '-At', `host=127.0.0.1 port=${server.port} user=shared_replication dbname=postgres`, '-c', 'SELECT pg_has_role(current_user, \'pg_read_all_data\', \'MEMBER\')'], { PGPASSWORD: `second 'pw" $1` });
    expect(login).toEqual({ code: 0, output: 't\n' });
  });

  test('refuses to run without the password', async () => {
    const script = path.join(tempDir('shared-replication'), 'replication-role.sh');
    fs.writeFileSync(script, renderReplicationRoleScript('shared_replication'), { mode: 0o755 });
    const result = await run('/bin/sh', [script], { ...server.env });
    expect(result.code).not.toBe(0);
    expect(result.output).toContain('TENANTRY_REPLICATION_PASSWORD');
  });
});

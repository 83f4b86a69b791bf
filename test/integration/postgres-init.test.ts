/**
 * The rendered Postgres init script, run by /bin/sh against a real Postgres 15 server exactly as
 * the official image (or a shared server's provisioning) runs it.
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Client } from 'pg';
import { renderPostgres, PostgresRenderOptions } from '../../runtime/render/postgres';
import { PostgresServer, startPostgres, tempDir } from '../helpers/servers';

const options: PostgresRenderOptions = {
  databases: ['orders', 'billing'],
  appRole: 'acme_app',
  readonlyRole: 'acme_readonly',
  backupRole: 'acme_backup',
  replicationRole: 'acme_replication',
  parameters: { max_connections: 50 },
};

// Quotes, a backslash and a space: the script must pass passwords through untouched.
const firstPasswords = { app: `app 'pw" \\ 1`, readonly: 'ro-pw-1', backup: `bk $HOME 'pw' 1` };
const rotatedPasswords = { app: 'app-pw-2', readonly: `ro 'pw" 2`, backup: 'bk-pw-2' };

interface ScriptRun {
  code: number;
  output: string;
}

type Passwords = typeof firstPasswords;

function runInitScript(server: PostgresServer, script: string, passwords: Passwords): Promise<ScriptRun> {
  const env = {
    PATH: process.env.PATH,
    ...server.env,
    TENANTRY_APP_PASSWORD: passwords.app,
    TENANTRY_READONLY_PASSWORD: passwords.readonly,
    TENANTRY_BACKUP_PASSWORD: passwords.backup,
  };
  return new Promise((resolve) => {
    execFile('/bin/sh', [script], { env, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, output: `${stdout}${stderr}` });
    });
  });
}

async function withClient<T>(server: PostgresServer, database: string, user: string, password: string, use: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ host: server.host, port: server.port, database, user, password });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

describe('postgres init script (real Postgres 15 server)', () => {
  let server: PostgresServer;
  let script: string;

  beforeAll(async () => {
    // log_statement=all: the script must keep passwords out of the log even then.
    server = await startPostgres({ parameters: { log_statement: 'all' } });
    const launch = renderPostgres(options);
    script = path.join(tempDir('postgres-init'), path.basename(launch.files[0].path));
    fs.writeFileSync(script, launch.files[0].content, { mode: 0o755 });
    const run = await runInitScript(server, script, firstPasswords);
    expect(run).toEqual({ code: 0, output: '' });
  });

  afterAll(async () => {
    await server?.stop();
  });

  const superuser = <T>(database: string, use: (client: Client) => Promise<T>) =>
    withClient(server, database, server.superuser, server.password, use);
  const asApp = <T>(database: string, use: (client: Client) => Promise<T>) =>
    withClient(server, database, options.appRole, firstPasswords.app, use);
  const asReadonly = <T>(database: string, use: (client: Client) => Promise<T>) =>
    withClient(server, database, options.readonlyRole, firstPasswords.readonly, use);

  it('creates the databases, owned by the app role, and two login roles without elevated attributes', async () => {
    const { databases, roles } = await superuser('postgres', async (client) => ({
      databases: (
        await client.query(
          `SELECT datname, pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = ANY($1) ORDER BY datname`,
          [options.databases],
        )
      ).rows,
      roles: (
        await client.query(
          `SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls
             FROM pg_roles WHERE rolname = ANY($1) ORDER BY rolname`,
          [[options.appRole, options.readonlyRole]],
        )
      ).rows,
    }));
    expect(databases).toEqual([
      { datname: 'billing', owner: 'acme_app' },
      { datname: 'orders', owner: 'acme_app' },
    ]);
    const leastPrivilege = { rolcanlogin: true, rolsuper: false, rolcreatedb: false, rolcreaterole: false, rolreplication: false, rolbypassrls: false };
    expect(roles).toEqual([
      { rolname: 'acme_app', ...leastPrivilege },
      { rolname: 'acme_readonly', ...leastPrivilege },
    ]);
  });

  it('lets the app role create tables and write in every database', async () => {
    for (const database of options.databases) {
      await asApp(database, async (client) => {
        await client.query('CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)');
        await client.query(`INSERT INTO items (name) VALUES ('first'), ('second')`);
        const { rows } = await client.query('SELECT count(*)::int AS n FROM items');
        expect(rows).toEqual([{ n: 2 }]);
      });
    }
  });

  it('lets the readonly role read tables the app created after the script ran, and nothing more', async () => {
    for (const database of options.databases) {
      await asReadonly(database, async (client) => {
        const { rows } = await client.query('SELECT name FROM items ORDER BY id');
        expect(rows).toEqual([{ name: 'first' }, { name: 'second' }]);
        await expect(client.query(`INSERT INTO items (name) VALUES ('x')`)).rejects.toThrow(/read-only transaction/);
        // Without the read-only default, privileges alone still refuse the write.
        await client.query('SET default_transaction_read_only = off');
        await expect(client.query(`INSERT INTO items (name) VALUES ('x')`)).rejects.toThrow(/permission denied for table items/);
        await expect(client.query(`UPDATE items SET name = 'x'`)).rejects.toThrow(/permission denied/);
      });
    }
  });

  it('refuses the readonly role any object of its own: no table, no temporary table, no schema', async () => {
    await asReadonly('orders', async (client) => {
      await client.query('SET default_transaction_read_only = off');
      await expect(client.query('CREATE TABLE mine (id int)')).rejects.toThrow(/permission denied for schema public/);
      await expect(client.query('CREATE TEMPORARY TABLE mine (id int)')).rejects.toThrow(/permission denied to create temporary tables/);
      await expect(client.query('CREATE SCHEMA mine')).rejects.toThrow(/permission denied for database orders/);
    });
  });

  it('lets pg_dump run as the readonly role (tables and sequences are readable)', async () => {
    const dump = await new Promise<string>((resolve, reject) => {
      const env = { PATH: process.env.PATH, ...server.env, PGUSER: options.readonlyRole, PGPASSWORD: firstPasswords.readonly };
      execFile('pg_dump', ['--dbname', 'orders', '--data-only', '--table', 'items'], { env }, (error, stdout, stderr) =>
        error ? reject(new Error(stderr)) : resolve(stdout),
      );
    });
    expect(dump).toContain('COPY public.items (id, name) FROM stdin;');
    expect(dump).toContain("SELECT pg_catalog.setval('public.items_id_seq', 2, true);");
  });

  it('refuses connections from any other role (PUBLIC has no CONNECT)', async () => {
    await superuser('postgres', (client) => client.query(`CREATE ROLE stranger LOGIN PASSWORD 'stranger-pw'`));
    for (const database of options.databases) {
      await expect(withClient(server, database, 'stranger', 'stranger-pw', async () => undefined)).rejects.toThrow(
        `permission denied for database "${database}"`,
      );
    }
  });

  it('keeps the passwords out of the server log even with log_statement=all', () => {
    const log = fs.readFileSync(path.join(path.dirname(server.dataDir), 'server.log'), 'utf8');
    expect(log).toContain('CREATE TABLE items'); // the log does record statements
    for (const password of Object.values(firstPasswords)) expect(log).not.toContain(password);
  });

  it('runs again without error, keeps the data and rotates every password', async () => {
    const rerun = await runInitScript(server, script, rotatedPasswords);
    expect(rerun).toEqual({ code: 0, output: '' });

    await expect(asApp('orders', async () => undefined)).rejects.toThrow(/password authentication failed/);
    await expect(asReadonly('orders', async () => undefined)).rejects.toThrow(/password authentication failed/);
    const count = (user: string, password: string) =>
      withClient(server, 'billing', user, password, async (client) => (await client.query('SELECT count(*)::int AS n FROM items')).rows[0].n);
    await expect(count(options.appRole, rotatedPasswords.app)).resolves.toBe(2);
    await expect(count(options.readonlyRole, rotatedPasswords.readonly)).resolves.toBe(2);
    await expect(count(options.backupRole, rotatedPasswords.backup)).resolves.toBe(2);
    await expect(withClient(server, 'billing', options.backupRole, firstPasswords.backup, async () => undefined)).rejects.toThrow(/password authentication failed/);
  });

  it('stops with the variable name, before touching the server, when a password is missing', async () => {
    const run = await runInitScript(server, script, { app: '', readonly: 'x', backup: 'y' });
    expect(run.code).not.toBe(0);
    expect(run.output).toContain('TENANTRY_APP_PASSWORD must be set');
  });
});

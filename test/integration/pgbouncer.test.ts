/**
 * The rendered pgbouncer.ini and start script, run by a real PgBouncer 1.18 (as the postgres
 * user: it refuses root) in front of a real Postgres 15 prepared by the rendered init script.
 */
import { execFile } from 'child_process';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { Client } from 'pg';
import { renderPgBouncer, PgBouncerRenderOptions } from '../../runtime/render/pgbouncer';
import { renderPostgresInitScript } from '../../runtime/render/postgres';
import type { ContainerLaunch } from '../../runtime/render/types';
import { writeLaunchFiles } from '../helpers/launch';
import { freePort, PostgresServer, ServerProcess, startPgBouncer, startPostgres, tempDir } from '../helpers/servers';

const APP_ROLE = 'acme_app';
const DATABASES = ['orders', 'billing'];

function prepareDatabases(server: PostgresServer, appPassword: string): Promise<void> {
  const script = path.join(tempDir('pgbouncer-init'), 'init.sh');
  fs.writeFileSync(script, renderPostgresInitScript({ databases: DATABASES, appRole: APP_ROLE, readonlyRole: 'acme_readonly', backupRole: 'acme_backup', replicationRole: 'acme_replication', parameters: {} }));
  const env = { PATH: process.env.PATH, ...server.env, TENANTRY_APP_PASSWORD: appPassword, TENANTRY_READONLY_PASSWORD: 'unused-here', TENANTRY_BACKUP_PASSWORD: 'unused-here-too' };
  return new Promise((resolve, reject) => {
    execFile('/bin/sh', [script], { env }, (error, _stdout, stderr) => (error ? reject(new Error(stderr)) : resolve()));
  });
}

describe('pgbouncer (real PgBouncer 1.18 in front of Postgres 15)', () => {
  const appPassword = randomBytes(18).toString('base64url');
  let postgres: PostgresServer;
  let bouncer: ServerProcess;
  let options: PgBouncerRenderOptions;
  let launch: ContainerLaunch;

  beforeAll(async () => {
    postgres = await startPostgres();
    await prepareDatabases(postgres, appPassword);
    const dir = tempDir('pgbouncer');
    options = {
      listenAddr: '127.0.0.1',
      listenPort: await freePort(),
      serverHost: postgres.host,
      serverPort: postgres.port,
      databases: DATABASES,
      user: APP_ROLE,
      poolMode: 'transaction',
      // One server connection: only transaction pooling lets two clients share it.
      poolSize: 1,
      maxClients: 10,
      configDir: path.join(dir, 'config'),
      runDir: path.join(dir, 'run'),
    };
    launch = renderPgBouncer(options);
    writeLaunchFiles(launch);
    const [entryShell, entryScript] = launch.entrypoint ?? [];
    expect(entryShell).toBe('/bin/sh');
    bouncer = await startPgBouncer(path.join(options.configDir!, 'pgbouncer.ini'), options.listenPort, { PGBOUNCER_PASSWORD: appPassword }, entryScript);
  });

  afterAll(async () => {
    await bouncer?.stop();
    await postgres?.stop();
  });

  const clientFor = (database: string, password = appPassword, extra: Partial<{ options: string }> = {}) =>
    new Client({ host: '127.0.0.1', port: options.listenPort, database, user: APP_ROLE, password, ...extra });

  it('lets the app role query every database through PgBouncer with the generated password', async () => {
    for (const database of DATABASES) {
      const client = clientFor(database);
      await client.connect();
      try {
        const { rows } = await client.query('SELECT current_database() AS db, current_user AS who');
        expect(rows).toEqual([{ db: database, who: APP_ROLE }]);
      } finally {
        await client.end();
      }
    }
  });

  it('pools by transaction: two open clients share one server connection', async () => {
    const first = clientFor('orders');
    const second = clientFor('orders');
    await first.connect();
    await second.connect();
    try {
      await first.query('BEGIN');
      await first.query('CREATE TABLE pooled (n int)');
      await first.query('INSERT INTO pooled VALUES (1)');
      await first.query('COMMIT');
      // With a pool of one, a session-mode pooler would make this client wait for the first to disconnect.
      const { rows } = await second.query('SELECT n FROM pooled');
      expect(rows).toEqual([{ n: 1 }]);
      const pid = async (client: Client) => (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      expect(await pid(first)).toBe(await pid(second));
    } finally {
      await first.end();
      await second.end();
    }
  });

  it('accepts clients that send the options startup parameter', async () => {
    const client = clientFor('billing', appPassword, { options: '-c search_path=public' });
    await client.connect();
    await expect(client.query('SELECT 1 AS one')).resolves.toMatchObject({ rows: [{ one: 1 }] });
    await client.end();
  });

  it('refuses any other startup parameter, naming it (the README says to set such defaults per role)', async () => {
    const client = new Client({ host: '127.0.0.1', port: options.listenPort, database: 'billing', user: APP_ROLE, password: appPassword, statement_timeout: 5000 });
    client.on('error', () => undefined);
    await expect(client.connect()).rejects.toThrow(/unsupported startup parameter: statement_timeout/);
  });

  it('lets the app role read pool statistics on the console database (stats_users), but not administer it', async () => {
    // The console speaks only the simple query protocol, which pg uses for parameterless queries.
    const console = clientFor('pgbouncer');
    await console.connect();
    const pools = await console.query('SHOW POOLS');
    expect(pools.rows.map((r: { database: string }) => r.database)).toEqual(expect.arrayContaining(['pgbouncer']));
    await expect(console.query('PAUSE')).rejects.toThrow(/admin access needed|not allowed/i);
    await console.end();
  });

  it('refuses a wrong password', async () => {
    const client = clientFor('orders', 'not-the-password');
    // PgBouncer 1.18 words a SCRAM failure differently from Postgres ("password authentication failed").
    await expect(client.connect()).rejects.toThrow('SASL authentication failed');
  });

  it('writes the auth file with mode 600, and no rendered file contains the password', () => {
    const authFile = path.join(options.runDir!, 'userlist.txt');
    expect(fs.statSync(authFile).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(authFile, 'utf8')).toBe(`"${APP_ROLE}" "${appPassword}"\n`);
    for (const file of launch.files) expect(file.content).not.toContain(appPassword);
  });
});

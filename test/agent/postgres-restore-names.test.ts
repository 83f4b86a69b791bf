/**
 * What a restore runs and drops by name, against real PostgreSQL servers: the archive's
 * database-level SQL is applied only as the statements it must be (never text that a literal
 * or a comment smuggles in), and only the agent's own half-restored copies are ever dropped.
 */
import { AgentConfig, RESTORE_CREDENTIAL_ENV } from '../../runtime/agent/config';
import { postgresVersionsUnderTest, PostgresServer, startPostgres, withDatabase } from '../helpers/servers';
import { cli, writeConfig } from './harness';

const databases = (server: PostgresServer) =>
  withDatabase(server, 'postgres', async (db) => (await db.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1') ORDER BY 1")).rows.map((r) => r.datname));

describe.each(postgresVersionsUnderTest())('restore names and database SQL on a real PostgreSQL $major server', ({ binDir }) => {
  let server: PostgresServer;
  let configPath: string;
  let env: NodeJS.ProcessEnv;
  const processPath = process.env.PATH;

  beforeAll(async () => {
    server = await startPostgres({ binDir });
    process.env.PATH = `${binDir}:${processPath}`;
    env = { PG_PASSWORD: server.password, [RESTORE_CREDENTIAL_ENV.userEnv]: 'postgres', [RESTORE_CREDENTIAL_ENV.passwordEnv]: server.password };
    await withDatabase(server, 'postgres', async (db) => {
      await db.query('CREATE ROLE t_app LOGIN');
      await db.query('CREATE DATABASE evil OWNER t_app');
      await db.query('CREATE DATABASE app');
      // What a tenant's application role may do to its own database.
      await db.query("SET ROLE t_app; COMMENT ON DATABASE evil IS E'x\\n--'; ALTER DATABASE evil SET application_name = '; ALTER ROLE t_app SUPERUSER; --'; RESET ROLE");
    });
    await withDatabase(server, 'app', (db) => db.query('CREATE TABLE t (id int); INSERT INTO t VALUES (1)'));
    let config: AgentConfig;
    ({ config, path: configPath } = writeConfig({
      jobs: [{
        name: 'pg', kind: 'postgres', schedule: '0 3 * * *', retention: { daily: 7, weekly: 4, monthly: 6 }, offsite: false,
        postgres: { host: server.host, port: server.port, user: 'postgres', passwordEnv: 'PG_PASSWORD', databases: ['evil', 'app'], parallelJobs: 2, splitTablesLargerThanMb: 0 },
      }],
    }));
    expect(config.jobs).toHaveLength(1);
    const run = await cli(['run', 'pg', '--config', configPath], env);
    expect({ code: run.code, errors: run.logs.filter((l) => l.level === 'error') }).toEqual({ code: 0, errors: [] });
  });

  afterAll(async () => {
    process.env.PATH = processPath;
    await server?.stop();
  });

  test('a comment and a setting that hold SQL are restored as text, not run', async () => {
    const copy = await cli(['restore', 'pg', '--from', 'latest', '--only', 'evil', '--target', 'evil_copy', '--config', configPath], env);
    const state = await withDatabase(server, 'postgres', async (db) => ({
      superuser: (await db.query("SELECT rolsuper FROM pg_roles WHERE rolname = 't_app'")).rows[0].rolsuper,
      comment: (await db.query("SELECT shobj_description(oid, 'pg_database') AS c FROM pg_database WHERE datname = 'evil_copy'")).rows[0]?.c,
      settings: (await db.query("SELECT s.setconfig::text AS config FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'evil_copy'")).rows,
    }));
    expect(state).toEqual({ superuser: false, comment: 'x\n--', settings: [{ config: '{"application_name=; ALTER ROLE t_app SUPERUSER; --"}' }] });
    expect(copy.code).toBe(0);
    await withDatabase(server, 'postgres', (db) => db.query('DROP DATABASE evil_copy'));
  });

  test('databases that merely share the prefix of a half-restored copy, or are not marked as one, are never dropped', async () => {
    await withDatabase(server, 'postgres', async (db) => {
      await db.query('CREATE DATABASE app__restoring_customer');
      // The name of a half-restored copy, but not one the agent created.
      await db.query('CREATE DATABASE app__restoring_20200101000000');
    });
    const before = await databases(server);
    const restored = await cli(['restore', 'pg', '--from', 'latest', '--only', 'app', '--force', '--config', configPath], env);
    expect(restored.code).toBe(0);
    const aside = /kept as "(app__before_restore_\d{14})"/.exec(restored.stdout)?.[1];
    expect(aside).toBeDefined();
    expect(await databases(server)).toEqual([...before, aside!].sort());
    expect(restored.logs).toContainEqual(expect.objectContaining({ msg: 'not dropping a database named like a half-restored copy: the agent did not mark it as one', fields: { database: 'app__restoring_20200101000000' } }));
    await withDatabase(server, 'postgres', async (db) => {
      for (const name of ['app__restoring_customer', 'app__restoring_20200101000000', aside!]) await db.query(`DROP DATABASE ${name}`);
    });
  });

  test.each([
    ['names a reserved infix', 'other__restoring_x', '"other__restoring_x" cannot be restored into: "__restoring_" is reserved for the copies a restore makes'],
    ['is too long for its restore copies', 'a'.repeat(33), `"${'a'.repeat(33)}" cannot be restored into: it is 33 bytes long; a restore names its copies <database>__before_restore_<14 digits>, which PostgreSQL would cut at 63 bytes: use a name of at most 32 bytes`],
  ])('a --target that %s is refused before anything is touched', async (_, target, message) => {
    const before = await databases(server);
    const refused = await cli(['restore', 'pg', '--from', 'latest', '--only', 'app', '--target', target, '--config', configPath], env);
    expect(refused.stderr).toContain(message);
    expect(refused.code).toBe(2);
    expect(await databases(server)).toEqual(before);
  });
});

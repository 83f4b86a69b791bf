/**
 * Restores that never destroy first, and verification that compares what a restore can keep,
 * against real PostgreSQL servers (every version Tenantry supports that runs here).
 *
 * A restore that fails at any stage (a role the archive needs is missing, a chunk that will not
 * load, an index that cannot be built, the server killed) leaves the existing database exactly as
 * it was: its contents (md5 of each table's rows in order), definitions (pg_dump --schema-only),
 * owner, grants (datacl), comment, connection limit and settings (pg_db_role_setting).
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Client } from 'pg';
import { AgentConfig, RESTORE_CREDENTIAL_ENV } from '../../runtime/agent/config';
import type { SplitTable } from '../../runtime/agent/jobs/postgres/chunks';
import { renderManifest } from '../../runtime/agent/manifest';
import { restoreBackup, RestoreOptions } from '../../runtime/agent/runner';
import { BackupStore } from '../../runtime/agent/store';
import { postgresVersionsUnderTest, PostgresServer, startPostgres, withDatabase } from '../helpers/servers';
import { cli, manifests, postgresJob, spawnCli, testAgent, writeConfig } from './harness';

const MOODS = ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8', 'm9'];

const ROLES = `
  CREATE ROLE app_owner LOGIN PASSWORD 'owner-pw';
  CREATE ROLE reader LOGIN PASSWORD 'reader-pw';
  CREATE ROLE ghost;`;

/** Run in the database `app` as its owner (as a tenant's app role creates its objects). */
const SCHEMA = `
  SET ROLE app_owner;
  CREATE TYPE mood AS ENUM (${MOODS.map((m) => `'${m}'`).join(', ')});
  CREATE TYPE tagged AS (m mood, n int);
  -- The hash of an enum is the hash of its OID; a restore gives the type new OIDs.
  CREATE TABLE by_mood (id int NOT NULL, m mood NOT NULL) PARTITION BY HASH (m);
  CREATE TABLE by_tag (id int NOT NULL, t tagged NOT NULL) PARTITION BY HASH (t);
  CREATE TABLE by_region (id int NOT NULL, region text NOT NULL) PARTITION BY LIST (region);
  CREATE TABLE by_region_north PARTITION OF by_region FOR VALUES IN ('north');
  CREATE TABLE by_region_south PARTITION OF by_region FOR VALUES IN ('south');
  DO $$ BEGIN FOR r IN 0..3 LOOP
    EXECUTE format('CREATE TABLE by_mood_%s PARTITION OF by_mood FOR VALUES WITH (MODULUS 4, REMAINDER %s)', r, r);
    EXECUTE format('CREATE TABLE by_tag_%s PARTITION OF by_tag FOR VALUES WITH (MODULUS 4, REMAINDER %s)', r, r);
  END LOOP; END $$;
  INSERT INTO by_mood SELECT i, ('m' || i % 10)::mood FROM generate_series(1, 1000) i;
  INSERT INTO by_tag SELECT i, ROW(('m' || i % 10)::mood, i % 3)::tagged FROM generate_series(1, 900) i;
  INSERT INTO by_region SELECT i, CASE WHEN i % 3 = 0 THEN 'north' ELSE 'south' END FROM generate_series(1, 300) i;
  -- Small enough for one chunk (one 8 kB block): its data travels in one chunk file.
  CREATE TABLE accounts (id int PRIMARY KEY, email text UNIQUE, note text);
  INSERT INTO accounts SELECT i, 'a' || i || '@example.com', 'n' || i FROM generate_series(1, 50) i;
  GRANT SELECT ON accounts TO ghost;
  GRANT SELECT ON accounts TO reader;
  ALTER TABLE accounts OWNER TO app_owner;
  ALTER TABLE by_mood OWNER TO app_owner;`;

/** Database-level properties pg_restore brings only with --create, under the archive's own name. */
const DATABASE_PROPERTIES = `
  ALTER DATABASE app OWNER TO app_owner;
  ALTER DATABASE app SET work_mem = '7MB';
  ALTER ROLE reader IN DATABASE app SET search_path = 'public';
  ALTER DATABASE app CONNECTION LIMIT 20;
  COMMENT ON DATABASE app IS 'the app''s data';
  REVOKE CONNECT, TEMPORARY ON DATABASE app FROM PUBLIC;
  GRANT CONNECT ON DATABASE app TO reader;`;

/** Everything about a database a restore must keep, or a failed restore must not touch. */
async function stateOf(server: PostgresServer, database: string): Promise<Record<string, unknown>> {
  const definitions = execFileSync(path.join(server.binDir, 'pg_dump'), ['--schema-only', `--dbname=${database}`], { env: { ...process.env, ...server.env } })
    .toString()
    .split('\n')
    // \restrict carries a random key per run.
    .filter((line) => !/^\\(un)?restrict /.test(line))
    .join('\n');
  const [databaseRow, settings] = await withDatabase(server, 'postgres', async (db) => [
    (await db.query(`SELECT pg_get_userbyid(datdba) AS owner, datacl::text AS acl, datconnlimit, datallowconn, shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1`, [database])).rows[0],
    (await db.query(`SELECT coalesce(r.rolname, '') AS role, s.setconfig::text AS config FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE d.datname = $1 ORDER BY 1`, [database])).rows,
  ]);
  // Partitioned tables whole, every other table on its own; the rows of each hash partition apart.
  const [contents, hashPartitions] = await withDatabase(server, database, async (db) => {
    const tables = (await db.query<{ t: string; kind: string; hashed: boolean }>(`SELECT format('%I.%I', n.nspname, c.relname) AS t, c.relkind AS kind,
        c.relispartition AND EXISTS (SELECT FROM pg_partitioned_table p WHERE p.partrelid = (SELECT inhparent FROM pg_inherits WHERE inhrelid = c.oid) AND p.partstrat = 'h') AS hashed
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1`)).rows;
    const whole: Record<string, string> = {};
    const hashed: Record<string, string> = {};
    for (const { t, kind, hashed: inHash } of tables) {
      const { rows } = await db.query(`SELECT count(*) AS n, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS sum FROM ${kind === 'p' ? '' : 'ONLY'} ${t} x`);
      (inHash ? hashed : whole)[t] = `${rows[0].n}:${rows[0].sum}`;
    }
    return [whole, hashed];
  });
  return { database: databaseRow, settings, definitions, contents, hashPartitions };
}

/** What a restore keeps: everything but which hash partition a row is in (see hashPartitionRoots). */
function restorable(state: Record<string, unknown>): Record<string, unknown> {
  return { ...state, hashPartitions: undefined };
}

/** Rows of each partition of the hash-partitioned tables, and whole partitioned tables. */
function partitionCounts(server: PostgresServer, database: string): Promise<Record<string, number>> {
  return withDatabase(server, database, async (db) => {
    const { rows } = await db.query<{ t: string; n: number }>(`
      SELECT c.relname AS t, (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM ONLY %I', c.relname), false, true, '')))[1]::text::int AS n
      FROM pg_class c WHERE c.relname ~ '^by_(mood|tag)_\\d$' ORDER BY 1`);
    return Object.fromEntries(rows.map((r) => [r.t, r.n]));
  });
}

function databasesLike(server: PostgresServer, pattern: string): Promise<string[]> {
  return withDatabase(server, 'postgres', async (db) => (await db.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname LIKE $1 ORDER BY 1', [pattern])).rows.map((r) => r.datname));
}

describe.each(postgresVersionsUnderTest())('Postgres restore and verification on a real PostgreSQL $major server', ({ binDir }) => {
  let server: PostgresServer;
  let config: AgentConfig;
  let configPath: string;
  let env: NodeJS.ProcessEnv;
  let original: Record<string, unknown>;
  const processPath = process.env.PATH;

  const restoreOptions = (over: Partial<RestoreOptions> = {}): RestoreOptions => ({ from: 'latest', force: true, withGlobals: false, fromOffsite: false, ignoreVerification: false, ...over });
  /**
   * The restore through the runner, with `fault` called once the files passed their checksums and
   * the restore starts writing to the server (an in-place restore logged the second message right
   * before it dropped the target).
   */
  const restoreWithFault = (fault: () => void) => {
    const writing = ['restoring into a temporary database', 'replacing a non-empty database (--force)'];
    const { agent, lines } = testAgent(config, env, { onLog: (entry) => writing.includes(entry.msg) && fault() });
    return { lines, done: restoreBackup(agent, config.jobs[0], restoreOptions()) };
  };
  const chunkOf = async (table: string) => {
    const [manifest] = await manifests(config, 'pg');
    const split = (manifest.details as { databases: { app: { split: SplitTable[] } } }).databases.app.split;
    const entry = split.find((t) => t.label === table)!;
    expect(entry.parts).toHaveLength(1);
    return { file: path.join(new BackupStore(config.backupDir, 'pg').backupDir(manifest.id), entry.parts[0].file), columns: entry.columns };
  };

  beforeAll(async () => {
    server = await startPostgres({ binDir });
    process.env.PATH = `${binDir}:${processPath}`;
    env = { PG_PASSWORD: server.password, [RESTORE_CREDENTIAL_ENV.userEnv]: 'postgres', [RESTORE_CREDENTIAL_ENV.passwordEnv]: server.password };
    await withDatabase(server, 'postgres', async (db) => {
      await db.query(ROLES);
      await db.query('CREATE DATABASE app');
      await db.query(DATABASE_PROPERTIES);
    });
    await withDatabase(server, 'app', (db) => db.query(SCHEMA));
    original = await stateOf(server, 'app');
    ({ config, path: configPath } = writeConfig({ jobs: [postgresJob(server, ['app'], 0)] }));
    const run = await cli(['run', 'pg', '--config', configPath], env);
    expect({ code: run.code, errors: run.logs.filter((l) => l.level === 'error') }).toEqual({ code: 0, errors: [] });
  });

  afterAll(async () => {
    process.env.PATH = processPath;
    await server?.stop();
  });

  afterEach(async () => {
    // Whatever a test did, nothing half-restored is left on the server.
    expect(await databasesLike(server, '%\\_\\_restoring\\_%')).toEqual([]);
  });

  test('hash partitions on an enum and on a composite verify, and restore with every row (in other partitions)', async () => {
    const [backup] = await manifests(config, 'pg');
    const verified = await cli(['verify', backup.id, '--config', configPath], env);
    expect(verified.stdout).toContain(`${backup.id}: verification passed`);
    expect(verified.code).toBe(0);

    const copy = await cli(['restore', 'pg', '--from', backup.id, '--target', 'hashed_copy', '--config', configPath], env);
    expect(copy.code).toBe(0);
    const [source, restored] = [await stateOf(server, 'app'), await stateOf(server, 'hashed_copy')];
    expect(restored.contents).toEqual(source.contents);
    expect(Object.keys(source.contents as object)).toEqual(expect.arrayContaining(['public.by_mood', 'public.by_tag', 'public.by_region_north']));
    // The case this test is about: the same rows sit in other hash partitions after the restore.
    expect(await partitionCounts(server, 'hashed_copy')).not.toEqual(await partitionCounts(server, 'app'));
    await withDatabase(server, 'postgres', (db) => db.query('DROP DATABASE hashed_copy'));
  });

  test.each([
    ['app dbname=postgres', 'would be read by libpq as a connection string, not a database name'],
    ['postgresql://elsewhere/app', 'would be read by libpq as a connection string, not a database name'],
    ['a'.repeat(64), 'is longer than 63 bytes (PostgreSQL would shorten it to another name)'],
  ])('--target %s is refused before anything is touched', async (target, problem) => {
    const databases = await databasesLike(server, '%');
    const refused = await cli(['restore', 'pg', '--from', 'latest', '--target', target, '--config', configPath], env);
    expect({ code: refused.code, stderr: refused.stderr }).toEqual({ code: 2, stderr: `tenantry-agent: --target ${JSON.stringify(target)} ${problem}; name the database to restore into, e.g. --target app_copy\n` });
    expect(await databasesLike(server, '%')).toEqual(databases);
  });

  test('a missing role is found before anything is touched, and the refusal names --with-globals', async () => {
    // The archive grants to ghost; the server now calls that role something else.
    await withDatabase(server, 'postgres', (db) => db.query('ALTER ROLE ghost RENAME TO ghost_renamed'));
    try {
      const before = await stateOf(server, 'app');
      const refused = await cli(['restore', 'pg', '--from', 'latest', '--force', '--config', configPath], env);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain('the backup needs roles this server does not have: ghost; nothing was changed.');
      expect(refused.stderr).toContain('tenantry-agent restore pg --from latest --force --with-globals\n');
      expect(await stateOf(server, 'app')).toEqual(before);
    } finally {
      await withDatabase(server, 'postgres', (db) => db.query('ALTER ROLE ghost_renamed RENAME TO ghost'));
    }
  });

  test('a chunk damaged after the checksum check fails the data load and leaves the database as it was', async () => {
    const { file } = await chunkOf('public.accounts');
    const saved = fs.readFileSync(file);
    const { done } = restoreWithFault(() => {
      const damaged = Buffer.from(saved);
      damaged.fill(0x55, 8, damaged.length - 4);
      fs.writeFileSync(file, damaged);
    });
    const failure = await done.then(() => 'no failure', (error: Error) => error.message).finally(() => fs.writeFileSync(file, saved));
    expect(await stateOf(server, 'app')).toEqual(original);
    expect(failure).toMatch(/^app: restore failed before anything existing was changed \("app" is as it was, the half-restored copy is dropped\): .*Data corruption detected/s);
  });

  test('a unique index that cannot be built over the loaded rows fails the restore and leaves the database as it was', async () => {
    const { file, columns } = await chunkOf('public.accounts');
    const saved = fs.readFileSync(file);
    // As many rows as the backup recorded, two of them with one id.
    const duplicated = execFileSync('sh', ['-c', `psql --no-psqlrc --quiet --dbname=app --command="COPY (SELECT CASE WHEN id = 2 THEN 1 ELSE id END, email, note FROM accounts) TO STDOUT (FORMAT binary)" | zstd --quiet`], {
      env: { ...process.env, ...server.env },
    });
    expect(columns).toBe('id, email, note');
    const { done } = restoreWithFault(() => fs.writeFileSync(file, duplicated));
    const failure = await done.then(() => 'no failure', (error: Error) => error.message).finally(() => fs.writeFileSync(file, saved));
    expect(await stateOf(server, 'app')).toEqual(original);
    expect(failure).toMatch(/^app: restore failed before anything existing was changed \("app" is as it was, the half-restored copy is dropped\): .*could not create unique index "accounts_pkey"/s);
  });

  test('a row count that differs from the dump\'s fails the restore and leaves the database as it was', async () => {
    // A row that was not in the dump arrives in the temporary database while it is being filled.
    let intruder: Promise<void> = Promise.resolve();
    const { done } = restoreWithFault(() => {
      intruder = (async () => {
        const [temporary] = await databasesLike(server, 'app\\_\\_restoring\\_%');
        if (temporary === undefined) throw new Error('no temporary database');
        await withDatabase(server, temporary, async (db) => {
          const deadline = Date.now() + 30_000;
          while (!(await db.query("SELECT to_regclass('public.accounts') AS t")).rows[0].t && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
          await db.query("INSERT INTO public.accounts VALUES (1000, 'late@example.com', 'late')");
        });
      })();
    });
    const failure = await done.then(() => 'no failure', (error: Error) => error.message);
    await intruder.catch(() => undefined);
    expect(await stateOf(server, 'app')).toEqual(original);
    expect(failure).toMatch(/^app: restore failed before anything existing was changed \("app" is as it was, the half-restored copy is dropped\): the restored copy differs from the dump's snapshot: public.accounts has 51 rows, expected 50$/);
  });

  test('a server killed mid-restore leaves the database as it was; the next restore clears what was left and succeeds', async () => {
    const { done } = restoreWithFault(() => server.kill('SIGKILL'));
    const failure = await done.then(() => 'no failure', (error: Error) => error.message);
    await server.restart();
    expect(await stateOf(server, 'app')).toEqual(original);
    expect(failure).toMatch(/^app: restore failed before anything existing was changed \("app" is as it was; the half-restored copy "app__restoring_\d{14}" is left behind: drop it with DROP DATABASE "app__restoring_\d{14}";\)/);

    await withDatabase(server, 'app', (db) => db.query('DELETE FROM accounts WHERE id > 10'));
    const damaged = await stateOf(server, 'app');
    // An application session on the database being replaced: renaming needs it gone.
    const application = new Client({ host: server.host, port: server.port, user: 'app_owner', password: 'owner-pw', database: 'app' });
    application.on('error', () => undefined);
    await application.connect();
    const retried = await cli(['restore', 'pg', '--from', 'latest', '--force', '--config', configPath], env);
    expect(retried.code).toBe(0);
    expect(retried.logs).toContainEqual(expect.objectContaining({ msg: 'ended sessions on the database being replaced', fields: { database: 'app', sessions: 1 } }));
    await expect(application.query('SELECT 1')).rejects.toThrow();
    await application.end().catch(() => undefined);
    expect(retried.logs.map((l) => l.msg)).toContain('dropping a half-restored database an earlier restore left behind');
    // Same name: the restored database has the original's owner, settings, comment, grants and
    // connection limit; the one it replaced is kept aside exactly as it was.
    expect(restorable(await stateOf(server, 'app'))).toEqual(restorable(original));
    const aside = /kept as "(app__before_restore_\d{14})"; drop it once you no longer need it: DROP DATABASE "\1";/.exec(retried.stdout)?.[1];
    expect(aside).toBeDefined();
    expect(await stateOf(server, aside!)).toEqual(damaged);
    await withDatabase(server, 'postgres', (db) => db.query(`DROP DATABASE ${aside}`));
  });

  test('a swap killed after closing the target: the next restore opens it again and keeps it open aside', async () => {
    // What a restore killed between ALLOW_CONNECTIONS false and the rename leaves: the target
    // closed, beside a fully restored temporary database (its connection limit no longer 0).
    await withDatabase(server, 'postgres', async (db) => {
      await db.query('CREATE DATABASE app__restoring_20000101000000 CONNECTION LIMIT -1');
      await db.query('ALTER DATABASE app WITH ALLOW_CONNECTIONS false');
    });
    const retried = await cli(['restore', 'pg', '--from', 'latest', '--force', '--config', configPath], env);
    expect(retried.code).toBe(0);
    expect(retried.logs.map((l) => l.msg)).toContain('an interrupted restore left the database refusing connections; it accepts them again');
    const aside = /kept as "(app__before_restore_\d{14})"/.exec(retried.stdout)![1];
    const allow = await withDatabase(server, 'postgres', async (db) => (await db.query('SELECT datname, datallowconn FROM pg_database WHERE datname IN ($1, $2) ORDER BY 1', ['app', aside])).rows);
    expect(allow).toEqual([{ datname: 'app', datallowconn: true }, { datname: aside, datallowconn: true }]);
    // The interrupted restore's copy no longer carries the agent's mark (it had the archive's own
    // properties already), so it is left for the operator, with a warning, never dropped unasked.
    expect(retried.logs.map((l) => l.msg)).toContain('not dropping a database named like a half-restored copy: the agent did not mark it as one');
    await withDatabase(server, 'postgres', (db) => db.query(`DROP DATABASE ${aside}`));
    await withDatabase(server, 'postgres', (db) => db.query('DROP DATABASE app__restoring_20000101000000'));
  });

  test('under another name the database keeps its owner, settings, comment, grants and connection limit', async () => {
    const copy = await cli(['restore', 'pg', '--from', 'latest', '--target', 'app_elsewhere', '--config', configPath], env);
    expect(copy.code).toBe(0);
    expect(restorable(await stateOf(server, 'app_elsewhere'))).toEqual(restorable(original));
    expect(original.database).toMatchObject({ owner: 'app_owner', comment: "the app's data", datconnlimit: 20, acl: '{app_owner=CTc/app_owner,reader=c/app_owner}' });
    expect(original.settings).toEqual([{ role: '', config: '{work_mem=7MB}' }, { role: 'reader', config: '{search_path=public}' }]);
    await withDatabase(server, 'postgres', (db) => db.query('DROP DATABASE app_elsewhere'));
  });

  test('a backup whose verification failed: restored only with --ignore-verification, and kept by retention', async () => {
    const store = new BackupStore(config.backupDir, 'pg');
    const [backup] = await manifests(config, 'pg');
    // A copy dated yesterday (inside the daily retention), whose verification disagreed.
    const yesterday = new Date(Date.now() - 24 * 3600 * 1000);
    const id = `pg-${yesterday.toISOString().replace(/[-:]/g, '')}`;
    fs.cpSync(store.backupDir(backup.id), store.backupDir(id), { recursive: true });
    fs.writeFileSync(
      path.join(store.backupDir(id), 'manifest.json'),
      // Signed as the agent signs it: a manifest edited without its checksum would be refused as damaged.
      renderManifest({ ...backup, id, startedAt: yesterday.toISOString(), verified: { at: new Date().toISOString(), method: 'sha256 + test restore with row counts', result: 'failed', details: 'public.t has 1 rows, expected 2' } }),
    );

    const refused = await cli(['restore', 'pg', '--from', id, '--target', 'app_unverified', '--config', configPath], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`backup ${id} failed its verification (public.t has 1 rows, expected 2); its files are intact: to restore it all the same, run \`tenantry-agent restore pg --from ${id} --target app_unverified --ignore-verification\``);
    const restored = await cli(['restore', 'pg', '--from', id, '--target', 'app_unverified', '--ignore-verification', '--config', configPath], env);
    expect(restored.code).toBe(0);
    expect(restorable(await stateOf(server, 'app_unverified'))).toEqual(restorable(original));
    await withDatabase(server, 'postgres', (db) => db.query('DROP DATABASE app_unverified'));

    const run = await cli(['run', 'pg', '--config', configPath], env);
    expect(run.code).toBe(0);
    expect(store.exists(id)).toBe(true);
  });

  /**
   * A tenant's own code, planted in its database, that makes a role superuser when a superuser
   * runs it: a public.format(text, name, name), a better match for format('%I.%I', nspname,
   * relname) than pg_catalog.format(text, VARIADIC "any"), and a CHECK constraint whose function
   * runs for every row loaded. The restore must run neither as a superuser; TMPDIR names a
   * directory nobody can write (the backup container's root is read-only, without a /tmp).
   */
  test.each([
    ['in chunk files', 0],
    ['in the archive', 1000],
  ])('tenant code in the database runs with the tenant\'s rights only, data %s', async (_, splitTablesLargerThanMb) => {
    const database = `hostile_${splitTablesLargerThanMb}`;
    await withDatabase(server, 'postgres', async (db) => {
      await db.query("CREATE ROLE mallory LOGIN PASSWORD 'mallory-pw'; CREATE ROLE escalated_by_format; CREATE ROLE escalated_by_check");
      await db.query(`CREATE DATABASE ${database} OWNER mallory`);
    });
    const mallory = new Client({ host: server.host, port: server.port, user: 'mallory', password: 'mallory-pw', database });
    await mallory.connect();
    await mallory.query(`
      CREATE FUNCTION public.format(f text, a name, b name) RETURNS text LANGUAGE plpgsql AS $$
      BEGIN
        IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN EXECUTE 'ALTER ROLE escalated_by_format SUPERUSER'; END IF;
        RETURN pg_catalog.format(f, a, b);
      END $$;
      CREATE FUNCTION public.plausible(n int) RETURNS boolean LANGUAGE plpgsql AS $$
      BEGIN
        IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN EXECUTE 'ALTER ROLE escalated_by_check SUPERUSER'; END IF;
        RETURN n >= 0;
      END $$;
      CREATE TABLE public.orders (id int PRIMARY KEY, n int CHECK (public.plausible(n)));
      INSERT INTO public.orders SELECT i, i FROM generate_series(1, 20) i;`);
    await mallory.end();
    const escalated = () => withDatabase(server, 'postgres', async (db) => (await db.query("SELECT rolname FROM pg_roles WHERE rolname LIKE 'escalated\\_%' AND rolsuper ORDER BY 1")).rows.map((r) => r.rolname));
    try {
      const { path: hostilePath } = writeConfig({ jobs: [postgresJob(server, [database], splitTablesLargerThanMb)] });
      const run = await cli(['run', 'pg', '--config', hostilePath], env);
      expect({ code: run.code, errors: run.logs.filter((l) => l.level === 'error') }).toEqual({ code: 0, errors: [] });
      expect(await escalated()).toEqual([]);
      // Its own process: os.tmpdir() reads the real environment, which jest does not hand to tests.
      const restore = spawnCli(['restore', 'pg', '--from', 'latest', '--target', `${database}_copy`, '--config', hostilePath], { ...env, TMPDIR: '/dev/null/not-a-directory' });
      const code = await new Promise<number | null>((resolve) => restore.on('exit', resolve));
      expect({ code, failure: restore.output().stderr.split('\n').filter((line) => line !== '' && !line.startsWith('{')) }).toEqual({ code: 0, failure: [] });
      expect(await escalated()).toEqual([]);
      const restored = await withDatabase(server, `${database}_copy`, async (db) => (await db.query('SELECT count(*)::int AS n, pg_get_userbyid(relowner) AS owner FROM public.orders, pg_class WHERE oid = \'public.orders\'::regclass GROUP BY 2')).rows);
      expect(restored).toEqual([{ n: 20, owner: 'mallory' }]);
    } finally {
      await withDatabase(server, 'postgres', async (db) => {
        for (const name of [`${database}_copy`, database]) await db.query(`DROP DATABASE IF EXISTS ${name}`);
        await db.query('DROP ROLE mallory; DROP ROLE escalated_by_format; DROP ROLE escalated_by_check');
      });
    }
  });

  test('splitTablesLargerThanMb counts the whole table: a 30 MB table held in TOAST is split at 16', async () => {
    await withDatabase(server, 'postgres', (db) => db.query('CREATE DATABASE toasty'));
    const sizes = await withDatabase(server, 'toasty', async (db) => {
      await db.query(`CREATE TABLE big (id int PRIMARY KEY, v text); ALTER TABLE big ALTER COLUMN v SET STORAGE EXTERNAL;
        INSERT INTO big SELECT i, repeat(md5(i::text), 32768) FROM generate_series(1, 30) i`);
      return (await db.query(`SELECT pg_relation_size('big')::int AS main, pg_table_size('big')::int AS whole`)).rows[0];
    });
    expect(sizes.main).toBeLessThan(16 * 1024 * 1024);
    expect(sizes.whole).toBeGreaterThan(30 * 1024 * 1024);
    const { config: toastConfig, path: toastPath } = writeConfig({ jobs: [postgresJob(server, ['toasty'], 16)] });
    const run = await cli(['run', 'pg', '--config', toastPath], env);
    expect(run.code).toBe(0);
    const [manifest] = await manifests(toastConfig, 'pg');
    const split = (manifest.details as { databases: { toasty: { split?: SplitTable[] } } }).databases.toasty.split ?? [];
    expect(split.map((t) => t.label)).toEqual(['public.big']);
  });
});

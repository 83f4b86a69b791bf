/**
 * The Postgres job against a real PostgreSQL server (Debian's, started per test file).
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { AgentConfig, RESTORE_CREDENTIAL_ENV } from '../../runtime/agent/config';
import { driverFor } from '../../runtime/agent/jobs';
import { runBackup } from '../../runtime/agent/runner';
import { lockUnchanged, TABLES_SQL, TableRef } from '../../runtime/agent/jobs/postgres/sql';
import type { SplitTable } from '../../runtime/agent/jobs/postgres/chunks';
import { BackupStore } from '../../runtime/agent/store';
import { PostgresServer, startPostgres, tempDir, withDatabase } from '../helpers/servers';
import { cli, jobDirEntries, manifests, postgresJob, testAgent, waitFor, writeConfig } from './harness';

const SCHEMA = `
  CREATE ROLE app_owner LOGIN PASSWORD 'owner-pw';
  CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE, created timestamptz DEFAULT '2025-01-01');
  CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id), total numeric(12,2), note text, items jsonb);
  CREATE TABLE blobs (id int PRIMARY KEY, payload bytea, tags text[]);
  CREATE SCHEMA billing;
  CREATE TABLE billing.invoices (id int PRIMARY KEY, amount numeric, paid boolean);
  CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
  -- A restore loads rows as the database's owner: a tenant's objects are its app role's.
  ALTER TABLE customers OWNER TO app_owner;
  ALTER TABLE orders OWNER TO app_owner;
  ALTER TABLE blobs OWNER TO app_owner;
  ALTER SCHEMA billing OWNER TO app_owner;
  ALTER TABLE billing.invoices OWNER TO app_owner;
  ALTER VIEW big_orders OWNER TO app_owner;
  ALTER DATABASE app OWNER TO app_owner;
  REVOKE CONNECT, TEMPORARY ON DATABASE app FROM PUBLIC;
  GRANT CONNECT ON DATABASE app TO app_owner;
  ALTER DATABASE app SET work_mem = '8MB';
  INSERT INTO customers (name, email) SELECT 'customer ' || i, 'c' || i || '@example.com' FROM generate_series(1, 1000) i;
  INSERT INTO orders (customer_id, total, note, items)
    SELECT 1 + i % 1000, (i * 7 % 500)::numeric / 3, CASE WHEN i % 10 = 0 THEN NULL ELSE 'note ''' || i || E'\\ttab' END, jsonb_build_object('sku', i, 'qty', i % 5)
    FROM generate_series(1, 5000) i;
  INSERT INTO blobs SELECT i, decode(md5(i::text), 'hex'), ARRAY['a' || i, 'ü' || i] FROM generate_series(1, 300) i;
  INSERT INTO billing.invoices SELECT i, i * 1.5, i % 2 = 0 FROM generate_series(1, 200) i;`;

const TABLES = ['customers', 'orders', 'blobs', 'billing.invoices'];

/** Who owns a database, who may connect, and its settings: part of a tenant's isolation. */
function databaseAccess(server: PostgresServer, database: string): Promise<unknown> {
  return withDatabase(server, 'postgres', async (db) => {
    const { rows } = await db.query(
      `SELECT pg_get_userbyid(d.datdba) AS owner, d.datacl::text AS acl, s.setconfig::text AS settings
       FROM pg_database d LEFT JOIN pg_db_role_setting s ON s.setdatabase = d.oid AND s.setrole = 0 WHERE d.datname = $1`,
      [database],
    );
    return rows[0];
  });
}

/** Row count and an md5 over every row's text form, in a stable order, per table. */
function fingerprint(server: PostgresServer, database: string): Promise<Record<string, string>> {
  return withDatabase(server, database, async (db) => {
    const out: Record<string, string> = {};
    for (const table of TABLES) {
      const { rows } = await db.query(`SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS sum FROM ${table} t`);
      out[table] = `${rows[0].n}:${rows[0].sum}`;
    }
    return out;
  });
}

describe('Postgres backup job (real PostgreSQL server)', () => {
  let server: PostgresServer;
  let config: AgentConfig;
  let configPath: string;
  let env: NodeJS.ProcessEnv;
  let original: Record<string, string>;
  let originalAccess: unknown;

  beforeAll(async () => {
    server = await startPostgres();
    // Backups here run as the superuser; restores get it the way operators pass it (docker exec -e).
    env = { PG_PASSWORD: server.password, [RESTORE_CREDENTIAL_ENV.userEnv]: 'postgres', [RESTORE_CREDENTIAL_ENV.passwordEnv]: server.password };
    await withDatabase(server, 'postgres', (db) => db.query('CREATE DATABASE app'));
    await withDatabase(server, 'app', (db) => db.query(SCHEMA));
    original = await fingerprint(server, 'app');
    originalAccess = await databaseAccess(server, 'app');
    ({ config, path: configPath } = writeConfig({ jobs: [postgresJob(server, ['app'])] }));
  });

  afterAll(async () => {
    await server?.stop();
  });

  test('run: dumps every database and the roles, checks the archive, writes a checksummed manifest', async () => {
    const result = await cli(['run', 'pg', '--config', configPath], env);
    expect(result.stderr).not.toContain(server.password);
    expect(result.code).toBe(0);

    const [manifest] = await manifests(config, 'pg');
    expect(manifest).toMatchObject({ tenant: 'acme', environment: 'test', job: 'pg', kind: 'postgres', status: 'ok' });
    expect(manifest.check).toMatchObject({ method: 'pg_restore --list', result: 'passed' });
    expect(manifest.source.version).toMatch(/^15\./);
    expect(manifest.tools.pg_dump).toMatch(/pg_dump \(PostgreSQL\) \d+/);
    const paths = manifest.files.map((f) => f.path);
    expect(paths).toContain('globals.sql');
    expect(paths).toContain('app.dump/toc.dat');
    expect(manifest.files.every((f) => /^[0-9a-f]{64}$/.test(f.sha256))).toBe(true);
    expect(manifest.sizeBytes).toBe(manifest.files.reduce((sum, f) => sum + f.size, 0));
    expect(manifest.details).toMatchObject({ databases: { app: { tables: { 'public.customers': 1000, 'public.orders': 5000, 'public.blobs': 300, 'billing.invoices': 200 } } } });
    const globals = fs.readFileSync(path.join(config.backupDir, 'pg', manifest.id, 'globals.sql'), 'utf8');
    expect(globals).toContain('CREATE ROLE app_owner');
    expect(jobDirEntries(config, 'pg').filter((name) => name.endsWith('.partial'))).toEqual([]);
  });

  test('verify: restores into a scratch database, compares row counts, drops it, records the result', async () => {
    const [backup] = await manifests(config, 'pg');
    const result = await cli(['verify', backup.id, '--config', configPath], env);
    expect(result.stdout).toContain('verification passed');
    expect(result.code).toBe(0);
    const [verified] = await manifests(config, 'pg');
    expect(verified.verified).toMatchObject({ result: 'passed', method: 'sha256 + test restore with row counts' });
    expect(verified.verified?.details).toBe('app: 4 tables, 6500 rows match');
    const scratch = await withDatabase(server, 'postgres', (db) => db.query("SELECT datname FROM pg_database WHERE datname LIKE 'tenantry_verify_%'"));
    expect(scratch.rows).toEqual([]);
  });

  test('verify fails when a file of the backup was altered', async () => {
    const store = new BackupStore(config.backupDir, 'pg');
    const [backup] = await manifests(config, 'pg');
    const id = 'pg-20000101T000000.000Z';
    fs.cpSync(store.backupDir(backup.id), store.backupDir(id), { recursive: true });
    fs.writeFileSync(path.join(store.backupDir(id), 'manifest.json'), JSON.stringify({ ...backup, id, startedAt: '2000-01-01T00:00:00.000Z', verified: undefined, trigger: undefined }));
    fs.appendFileSync(path.join(store.backupDir(id), 'globals.sql'), '-- changed\n');
    try {
      const result = await cli(['verify', id, '--config', configPath], env);
      expect(result.code).toBe(1);
      expect(result.stdout).toContain(`${id}: verification failed (sha256 + test restore with row counts): globals.sql: sha256 `);
      expect((await store.read(id)).verified?.result).toBe('failed');
    } finally {
      fs.rmSync(store.backupDir(id), { recursive: true });
    }
  });

  test('restore: a dropped database comes back with the same rows, owner, privileges and settings', async () => {
    await withDatabase(server, 'postgres', (db) => db.query('DROP DATABASE app WITH (FORCE)'));
    const result = await cli(['restore', 'pg', '--from', 'latest', '--config', configPath], env);
    expect(result.stderr).toBe(result.logs.map((l) => JSON.stringify(l)).join('\n') + '\n');
    expect(result.code).toBe(0);
    expect(await fingerprint(server, 'app')).toEqual(original);
    const owner = await withDatabase(server, 'app', (db) => db.query("SELECT tableowner FROM pg_tables WHERE tablename = 'customers'"));
    expect(owner.rows[0].tableowner).toBe('app_owner');
    expect(originalAccess).toMatchObject({ owner: 'app_owner', settings: '{work_mem=8MB}' });
    expect(await databaseAccess(server, 'app')).toEqual(originalAccess);
  });

  test('restore refuses a non-empty database without --force, and restores into another name', async () => {
    const refused = await cli(['restore', 'pg', '--from', 'latest', '--config', configPath], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim()).toMatch(/^tenantry-agent: database "app" already holds \d+ tables or other relations; restore into another --target, or pass --force to replace it \(it is kept as app__before_restore_<time>\)$/);

    const copy = await cli(['restore', 'pg', '--from', 'latest', '--target', 'app_copy', '--config', configPath], env);
    expect(copy.code).toBe(0);
    expect(await fingerprint(server, 'app_copy')).toEqual(original);

    await withDatabase(server, 'app_copy', (db) => db.query('DELETE FROM orders WHERE id > 10'));
    const forced = await cli(['restore', 'pg', '--from', 'latest', '--target', 'app_copy', '--force', '--config', configPath], env);
    expect(forced.code).toBe(0);
    expect(await fingerprint(server, 'app_copy')).toEqual(original);
    // The database it replaced is kept aside, as it was, and the output says how to drop it.
    const aside = /kept as "(app_copy__before_restore_\d{14})"; drop it once you no longer need it: DROP DATABASE "\1";/.exec(forced.stdout)?.[1];
    expect(aside).toBeDefined();
    expect((await withDatabase(server, aside!, (db) => db.query('SELECT count(*)::int AS n FROM orders'))).rows).toEqual([{ n: 10 }]);
    await withDatabase(server, 'postgres', (db) => db.query(`DROP DATABASE ${aside}`));
  });

  /** Puts stand-ins for a newer client first on PATH: they answer --version and fail at anything else. */
  function newerClientFirstOnPath(): () => void {
    const fake = tempDir('newer-client');
    for (const tool of ['pg_dump', 'pg_dumpall', 'pg_restore', 'psql']) {
      fs.writeFileSync(path.join(fake, tool), `#!/bin/sh\necho "${tool} (PostgreSQL) 99.0"\n[ "$1" = --version ] || exit 1\n`, { mode: 0o755 });
    }
    const saved = process.env.PATH;
    process.env.PATH = `${fake}:${saved ?? ''}`;
    return () => {
      process.env.PATH = saved;
    };
  }

  test('dumps with the client tools of the server\'s major version, not a newer pg_dump first on PATH', async () => {
    const restorePath = newerClientFirstOnPath();
    try {
      const result = await cli(['run', 'pg', '--config', configPath], env);
      expect(result.code).toBe(0);
      const [manifest] = await manifests(config, 'pg');
      expect(manifest.tools.pg_dump).toMatch(/^pg_dump \(PostgreSQL\) 15\./);
      expect(manifest.check?.result).toBe('passed');
      // verify and restore (roles through psql included) choose the same way.
      expect((await cli(['verify', manifest.id, '--config', configPath], env)).code).toBe(0);
      const restored = await cli(['restore', 'pg', '--from', manifest.id, '--target', 'app_tools', '--with-globals', '--config', configPath], env);
      expect(restored.code).toBe(0);
      expect(await fingerprint(server, 'app_tools')).toEqual(original);
    } finally {
      restorePath();
    }
  });

  test('the per-run check stands on its own: a driver that has dumped nothing runs the server\'s tools too', async () => {
    const [manifest] = await manifests(config, 'pg');
    const { agent } = testAgent(config, env);
    const restorePath = newerClientFirstOnPath();
    try {
      const checked = await driverFor(config.jobs[0]).check(path.join(config.backupDir, 'pg', manifest.id), manifest.details, { log: agent.log, signal: agent.signal, env });
      expect(checked).toMatch(/^app: \d+ archive entries$/);
    } finally {
      restorePath();
    }
  });

  test('retention leaves alone a backup whose manifest this agent cannot read (a newer format, or damaged)', async () => {
    const store = new BackupStore(config.backupDir, 'pg');
    const [backup] = await manifests(config, 'pg');
    const id = 'pg-20000101T000000.000Z';
    fs.cpSync(store.backupDir(backup.id), store.backupDir(id), { recursive: true });
    fs.writeFileSync(path.join(store.backupDir(id), 'manifest.json'), JSON.stringify({ ...backup, id, startedAt: '2000-01-01T00:00:00.000Z', formatVersion: 99 }));
    try {
      const result = await cli(['run', 'pg', '--config', configPath], env);
      expect(result.code).toBe(0);
      expect(fs.existsSync(store.backupDir(id))).toBe(true);
      expect(result.logs).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'kept a backup whose manifest cannot be read', fields: expect.objectContaining({ id }) }));
    } finally {
      fs.rmSync(store.backupDir(id), { recursive: true, force: true });
    }
  });

  test('a table truncated or replaced between the snapshot and its lock fails the run instead of dumping it empty', async () => {
    await withDatabase(server, 'app', (db) => db.query('CREATE TABLE churn (id int); INSERT INTO churn SELECT generate_series(1, 100); CREATE TABLE swapped (id int)'));
    for (const change of ['TRUNCATE churn', 'DROP TABLE swapped; CREATE TABLE swapped (id int)']) {
      const error = await withDatabase(server, 'app', async (session) => {
        await session.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const tables = (await session.query<TableRef>(TABLES_SQL)).rows;
        await withDatabase(server, 'app', (other) => other.query(change));
        return lockUnchanged(session, tables).then(() => undefined, (e: Error) => e.message);
      });
      expect({ change, error }).toEqual({ change, error: expect.stringMatching(change.startsWith('TRUNCATE') ? /^public\.churn changed \(TRUNCATE/ : /^table public\.swapped was replaced/) });
    }
    await withDatabase(server, 'app', (db) => db.query('DROP TABLE churn, swapped'));
  });

  test('user mistakes: one line on stderr, exit 2', async () => {
    const cases: [string[], string][] = [
      [['restore', 'pg', '--from', 'pg-19990101T000000.000Z'], 'tenantry-agent: job pg has no finished backup "pg-19990101T000000.000Z"; `tenantry-agent list pg` shows them\n'],
      [['restore', 'nope', '--from', 'latest'], 'tenantry-agent: no job named "nope" in the agent config (jobs: pg)\n'],
      [['restore', 'pg', '--from', 'latest', '--only', 'other'], 'tenantry-agent: the backup has no database "other" (it has: app)\n'],
      [['verify', 'pg-1'], 'tenantry-agent: no job has a finished backup "pg-1"; `tenantry-agent list` shows them\n'],
      [['run', 'pg', '--frobnicate'], 'tenantry-agent: unknown option --frobnicate for "run" (options: --progress, --config)\n'],
    ];
    for (const [args, message] of cases) {
      const result = await cli([...args, '--config', configPath], env);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 2, stderr: message });
    }
  });

  test('list: a readable table and JSON', async () => {
    const table = await cli(['list', '--config', configPath], env);
    expect(table.code).toBe(0);
    const [header, row] = table.stdout.split('\n');
    expect(header).toMatch(/^JOB\s+BACKUP\s+STARTED \(Europe\/Berlin\)\s+DURATION\s+SIZE\s+STATUS\s+VERIFIED\s+OFF-SITE$/);
    expect(row).toMatch(/^pg\s+pg-\d{8}T\d{6}\.\d{3}Z\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+\S+\s+[\d.]+ (KiB|MiB)\s+ok\s+passed \d{4}-\d\d-\d\d\s+not configured$/);
    const json = JSON.parse((await cli(['list', 'pg', '--json', '--config', configPath], env)).stdout);
    expect(json[0]).toMatchObject({ job: 'pg', status: 'ok', verified: { result: 'passed' }, offsite: 'not configured' });
  });
});

/**
 * Tables over `splitTablesLargerThanMb` have their data copied in ctid-range chunks beside the
 * archive. With the threshold at 0 every non-empty table goes that way, whatever its column types.
 */
describe('Postgres backup job, tables in parallel chunks (real PostgreSQL server)', () => {
  const EXTRA = `
    CREATE TABLE "Odd ""name"" table" (id int PRIMARY KEY, "Mixed Case" text, "a:b" int);
    INSERT INTO "Odd ""name"" table" SELECT i, 'v' || i, i FROM generate_series(1, 2000) i;
    -- aclitem has no binary send/receive: this table goes in COPY's text format.
    CREATE TABLE grants_log (id int PRIMARY KEY, grant_item aclitem, note text);
    INSERT INTO grants_log SELECT i, 'app_owner=r/postgres'::aclitem, 'n' || i FROM generate_series(1, 500) i;
    CREATE TABLE measures (id int PRIMARY KEY, cm numeric, inches numeric GENERATED ALWAYS AS (cm / 2.54) STORED, span int4range, at timestamptz);
    INSERT INTO measures (id, cm, span, at) SELECT i, i * 1.5, int4range(i, i + 10), '2025-01-01'::timestamptz + i * interval '1 minute' FROM generate_series(1, 3000) i;
    CREATE TABLE events (id int, day date NOT NULL, payload text) PARTITION BY RANGE (day);
    CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
    CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
    INSERT INTO events SELECT i, '2025-06-01'::date + (i % 400), repeat('x', i % 50) FROM generate_series(1, 4000) i;
    -- Binary arrays and composites name their element and field type OIDs; a restore creates
    -- mood and pair with new OIDs (checked below), and the binary chunks still load.
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE TYPE pair AS (a mood, b text);
    CREATE TABLE feelings (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, now mood, history mood[]);
    INSERT INTO feelings (now, history) SELECT (ARRAY['sad', 'ok', 'happy'])[1 + i % 3]::mood, ARRAY['ok', 'happy']::mood[] FROM generate_series(1, 700) i;
    CREATE TABLE moods (id int PRIMARY KEY, m mood, p pair);
    INSERT INTO moods SELECT i, 'happy', ROW('ok', 'p' || i)::pair FROM generate_series(1, 700) i;
    -- Hash partitions on an enum: the hash depends on OIDs, so their rows must go in through the
    -- root (pg_dump does that); they are never split.
    CREATE TABLE hashed (id int, m mood) PARTITION BY HASH (m);
    CREATE TABLE hashed_0 PARTITION OF hashed FOR VALUES WITH (MODULUS 2, REMAINDER 0);
    CREATE TABLE hashed_1 PARTITION OF hashed FOR VALUES WITH (MODULUS 2, REMAINDER 1);
    INSERT INTO hashed SELECT i, (ARRAY['sad', 'ok', 'happy'])[1 + i % 3]::mood FROM generate_series(1, 900) i;
    CREATE ROLE auditor;
    GRANT SELECT ON orders TO auditor;
    DO $$ DECLARE t regclass; BEGIN
      FOR t IN SELECT c.oid FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND pg_get_userbyid(c.relowner) = 'postgres' LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO app_owner', t);
      END LOOP; END $$;`;
  const EXTRA_TABLES = ['"Odd ""name"" table"', 'grants_log', 'measures', 'events', 'feelings', 'moods', 'hashed'];
  let server: PostgresServer;
  let config: AgentConfig;
  let configPath: string;
  let env: NodeJS.ProcessEnv;
  let original: Record<string, string>;
  let moodOid: number;

  const everything = async (database: string) => ({
    ...(await fingerprint(server, database)),
    ...(await withDatabase(server, database, async (db) => {
      const out: Record<string, string> = {};
      for (const table of EXTRA_TABLES) {
        const { rows } = await db.query(`SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS sum FROM ${table} t`);
        out[table] = `${rows[0].n}:${rows[0].sum}`;
      }
      out.orders_acl = (await db.query("SELECT relacl::text AS acl FROM pg_class WHERE relname = 'orders'")).rows[0].acl;
      out.indexes = (await db.query("SELECT string_agg(indexname, ',' ORDER BY indexname) AS names FROM pg_indexes WHERE schemaname IN ('public', 'billing')")).rows[0].names;
      return out;
    })),
  });

  beforeAll(async () => {
    server = await startPostgres();
    // Backups here run as the superuser; restores get it the way operators pass it (docker exec -e).
    env = { PG_PASSWORD: server.password, [RESTORE_CREDENTIAL_ENV.userEnv]: 'postgres', [RESTORE_CREDENTIAL_ENV.passwordEnv]: server.password };
    await withDatabase(server, 'postgres', (db) => db.query('CREATE DATABASE app'));
    await withDatabase(server, 'app', (db) => db.query(SCHEMA + EXTRA));
    original = await everything('app');
    moodOid = await withDatabase(server, 'app', async (db) => (await db.query("SELECT 'mood'::regtype::oid AS oid")).rows[0].oid);
    ({ config, path: configPath } = writeConfig({ jobs: [postgresJob(server, ['app'], 0)] }));
  });

  afterAll(async () => {
    await server?.stop();
  });

  test('run: each table in two chunks (one per worker), binary where every column type allows, rows counted by the copies', async () => {
    const result = await cli(['run', 'pg', '--config', configPath], env);
    expect({ code: result.code, errors: result.logs.filter((l) => l.level === 'error') }).toEqual({ code: 0, errors: [] });
    const [manifest] = await manifests(config, 'pg');
    const { split, tables } = (manifest.details as { databases: Record<string, { split: SplitTable[]; tables: Record<string, number> }> }).databases.app;
    const byLabel = Object.fromEntries(split.map((t) => [t.label, t]));
    expect(Object.keys(byLabel).sort()).toEqual(
      ['billing.invoices', 'public.Odd "name" table', 'public.blobs', 'public.customers', 'public.events_2025', 'public.events_2026', 'public.feelings', 'public.grants_log', 'public.measures', 'public.moods', 'public.orders'].sort(),
    );
    expect(byLabel['public.grants_log'].format).toBe('text');
    expect(byLabel['public.feelings'].format).toBe('binary');
    expect(byLabel['public.moods'].format).toBe('binary');
    expect(byLabel['public.orders'].format).toBe('binary');
    expect(byLabel['public.measures'].columns).toBe('id, cm, span, at');
    for (const table of split) {
      expect(table.parts).toHaveLength(2);
      expect(table.parts.reduce((sum, p) => sum + p.rows, 0)).toBe(tables[table.label]);
    }
    expect(tables).toMatchObject({ 'public.customers': 1000, 'public.orders': 5000, 'public.grants_log': 500, 'public.events_2025': expect.any(Number) });
    const paths = manifest.files.map((f) => f.path);
    expect(paths).toContain('app.tables/1.1.bin.zst');
    expect(paths.filter((p) => p.startsWith('app.tables/'))).toHaveLength(22);
    expect(manifest.tools.zstd).toMatch(/v\d+\.\d+/);
    expect(manifest.check?.details).toMatch(/11 tables in 22 chunks$/);
  });

  test('verify and restore: the same rows, grants and indexes as the original', async () => {
    const [backup] = await manifests(config, 'pg');
    const verified = await cli(['verify', backup.id, '--config', configPath], env);
    expect(verified.code).toBe(0);
    expect(verified.stdout).toContain('verification passed');

    await withDatabase(server, 'postgres', (db) => db.query('DROP DATABASE app WITH (FORCE)'));
    const restored = await cli(['restore', 'pg', '--from', 'latest', '--config', configPath], env);
    expect(restored.stderr).toBe(restored.logs.map((l) => JSON.stringify(l)).join('\n') + '\n');
    expect(restored.code).toBe(0);
    expect(await everything('app')).toEqual(original);
    expect(original.orders_acl).toContain('auditor=r/');
    const restoredMoodOid = await withDatabase(server, 'app', async (db) => (await db.query("SELECT 'mood'::regtype::oid AS oid")).rows[0].oid);
    expect(restoredMoodOid).not.toBe(moodOid);
  });

  test('chunk sessions ignore the database\'s and the agent\'s own settings: no timeout, one date style, one encoding', async () => {
    await withDatabase(server, 'postgres', (db) => db.query('CREATE DATABASE settings_db'));
    await withDatabase(server, 'settings_db', (db) =>
      db.query(`
        CREATE TABLE typed (id int PRIMARY KEY, d date, span interval, f float8, t text, r regclass);
        INSERT INTO typed SELECT i, date '2024-02-01' + i % 3, interval '1 day 02:03:04' * i, 0.1 + 0.2 + i, 'café ' || i, 'typed'::regclass FROM generate_series(1, 20000) i;
        ALTER DATABASE settings_db SET datestyle = 'SQL, DMY';
        ALTER DATABASE settings_db SET intervalstyle = 'sql_standard';
        ALTER DATABASE settings_db SET extra_float_digits = -3;
        ALTER DATABASE settings_db SET statement_timeout = '1ms';`),
    );
    const read = (database: string) =>
      withDatabase(server, database, async (db) => {
        await db.query("SET statement_timeout = 0; SET datestyle = 'ISO'; SET intervalstyle = 'postgres'; SET extra_float_digits = 3");
        return (await db.query("SELECT count(*)::int AS n, md5(string_agg(format('%s|%s|%s|%s|%s|%s', id, d, span, f, t, r), ',' ORDER BY id)) AS sum FROM typed")).rows[0];
      });
    const before = await read('settings_db');
    const { config: settingsConfig, path: settingsPath } = writeConfig({ jobs: [postgresJob(server, ['settings_db'], 0)] });
    const backedUp = await cli(['run', 'pg', '--config', settingsPath], env);
    expect({ code: backedUp.code, errors: backedUp.logs.filter((l) => l.level === 'error') }).toEqual({ code: 0, errors: [] });
    const [manifest] = await manifests(settingsConfig, 'pg');
    expect(manifest.formatVersion).toBe(2);
    const [typed] = (manifest.details as { databases: { settings_db: { split: SplitTable[] } } }).databases.settings_db.split;
    // regclass goes as text: its binary form is a bare OID, meaningless in another database.
    expect({ format: typed.format, encoding: typed.encoding }).toEqual({ format: 'text', encoding: 'UTF8' });

    // Restored under another name (no database settings there) by an agent whose own client
    // encoding differs from the dump's.
    const saved = process.env.PGCLIENTENCODING;
    process.env.PGCLIENTENCODING = 'LATIN1';
    try {
      const restored = await cli(['restore', 'pg', '--from', 'latest', '--target', 'settings_copy', '--config', settingsPath], env);
      expect(restored.code).toBe(0);
    } finally {
      if (saved === undefined) delete process.env.PGCLIENTENCODING;
      else process.env.PGCLIENTENCODING = saved;
    }
    expect(await read('settings_copy')).toEqual(before);
    expect(before.n).toBe(20000);
  });

  test('chunks share one snapshot: transfers running during the dump never show up half-done', async () => {
    await withDatabase(server, 'app', (db) =>
      db.query('CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL); INSERT INTO accounts SELECT i, 0 FROM generate_series(1, 200000) i; ALTER TABLE accounts OWNER TO app_owner'),
    );
    // Each transfer moves 1 between two accounts in one transaction: the total stays 0. Updated
    // rows get new versions elsewhere in the heap, so chunks read at different moments would
    // count a moved row twice or not at all.
    let transfers = 0;
    let stop = false;
    const writer = withDatabase(server, 'app', async (db) => {
      while (!stop) {
        const from = 1 + Math.floor(Math.random() * 200000);
        const to = 1 + ((from + 100000) % 200000);
        await db.query(`BEGIN; UPDATE accounts SET balance = balance - 1 WHERE id = ${from}; UPDATE accounts SET balance = balance + 1 WHERE id = ${to}; COMMIT`);
        transfers++;
      }
    });
    try {
      await waitFor('transfers under way', () => (transfers > 50 ? true : undefined), 10_000, 10);
      const { agent } = testAgent(config, env);
      const during = transfers;
      const manifest = await runBackup(agent, config.jobs[0]);
      expect(manifest.status).toBe('ok');
      expect(transfers).toBeGreaterThan(during);
      const chunked = (manifest.details as { databases: { app: { split: SplitTable[] } } }).databases.app.split.find((t) => t.label === 'public.accounts');
      expect(chunked?.parts).toHaveLength(2);

      stop = true;
      await writer;
      const copy = await cli(['restore', 'pg', '--from', manifest.id, '--target', 'app_snapshot', '--config', configPath], env);
      expect(copy.code).toBe(0);
      const totals = await withDatabase(server, 'app_snapshot', (db) => db.query('SELECT count(*)::int AS n, sum(balance)::int AS total FROM accounts'));
      expect(totals.rows[0]).toEqual({ n: 200000, total: 0 });
    } finally {
      stop = true;
      await writer;
    }
  });
});

describe('Postgres backup failures (real PostgreSQL server)', () => {
  test('server killed (SIGKILL) in the middle of a dump: run failed, nothing promoted, the earlier backup still restores', async () => {
    // Both servers share the superuser password: restoring globals.sql brings the role passwords back.
    const password = 'same-on-both-servers';
    const server = await startPostgres({ password });
    const env = { PG_PASSWORD: password, [RESTORE_CREDENTIAL_ENV.userEnv]: 'postgres', [RESTORE_CREDENTIAL_ENV.passwordEnv]: password };
    let fresh: PostgresServer | undefined;
    try {
      await withDatabase(server, 'postgres', (db) => db.query('CREATE DATABASE app'));
      await withDatabase(server, 'app', (db) => db.query(SCHEMA));
      const before = await fingerprint(server, 'app');
      const { config, path: configPath } = writeConfig({ jobs: [postgresJob(server, ['app'], 64)] });
      const { agent } = testAgent(config, env);
      const good = await runBackup(agent, config.jobs[0]);
      expect(good.status).toBe('ok');

      // Enough data that the dump takes seconds, so the kill lands while data is being written.
      await withDatabase(server, 'app', (db) => db.query("CREATE TABLE big AS SELECT i, md5(i::text) || md5((i + 1)::text) AS filler FROM generate_series(1, 3000000) i"));
      const store = new BackupStore(config.backupDir, 'pg');
      const run = runBackup(agent, config.jobs[0]);
      // Table big (~250 MB) is over the split threshold: its data goes to chunk files beside the archive.
      await waitFor('table data being written', () => {
        const partial = fs.readdirSync(store.dir).find((name) => name.endsWith('.partial'));
        const chunks = partial && path.join(store.dir, partial, 'app.tables');
        const data = chunks && fs.existsSync(chunks) ? fs.readdirSync(chunks).filter((f) => f.endsWith('.zst')) : [];
        return data.some((f) => fs.statSync(path.join(chunks as string, f)).size > 64 * 1024) ? true : undefined;
      }, 60_000, 10);
      server.kill('SIGKILL');
      const failed = await run;

      expect({ status: failed.status, why: failed.status === 'ok' ? 'the dump finished before the kill: make table big bigger' : failed.error }).toEqual({
        status: 'failed',
        // pg_dump's error or the snapshot session's, whichever notices first; with -j the
        // server may also say "postmaster exited during a parallel transaction".
        why: expect.stringMatching(/pg_dump|connection|terminat|ECONNRESET|closed|postmaster exited/i),
      });
      const entries = jobDirEntries(config, 'pg');
      expect(entries).toEqual([good.id, `${failed.id}.failed.json`].sort());
      const listed = JSON.parse((await cli(['list', '--json', '--config', configPath], env)).stdout) as { id: string; status: string }[];
      expect(listed.map((b) => [b.id, b.status])).toEqual([[good.id, 'ok'], [failed.id, 'failed']]);
      expect(agent.state.countersOf('pg').failures).toBe(1);

      // The earlier backup restores into a brand-new server (roles first, from globals.sql).
      fresh = await startPostgres({ password });
      const freshConfig = writeConfig({ jobs: [postgresJob(fresh, ['app'])] });
      fs.cpSync(path.join(config.backupDir, 'pg', good.id), path.join(freshConfig.config.backupDir, 'pg', good.id), { recursive: true });
      const restored = await cli(['restore', 'pg', '--from', good.id, '--with-globals', '--config', freshConfig.path], env);
      expect(restored.stderr).toBe(restored.logs.map((l) => JSON.stringify(l)).join('\n') + '\n');
      expect(restored.code).toBe(0);
      expect(await fingerprint(fresh, 'app')).toEqual(before);
    } finally {
      await server.stop();
      await fresh?.stop();
    }
  });

  test('a schema change queued during the dump makes the run fail at once instead of waiting on it forever', async () => {
    // One worker, two chunked tables: b_later's chunk starts after a_first's. An ALTER TABLE on
    // b_later queues behind the dump's lock; a chunk that waited for its own lock would queue
    // behind the ALTER, which waits for the dump: a cycle Postgres cannot see.
    const server = await startPostgres();
    const env = { PG_PASSWORD: server.password };
    try {
      await withDatabase(server, 'postgres', (db) => db.query('CREATE DATABASE app'));
      await withDatabase(server, 'app', (db) =>
        db.query(`CREATE TABLE a_first AS SELECT i, md5(i::text) AS filler FROM generate_series(1, 2000000) i;
                  CREATE TABLE b_later AS SELECT i FROM generate_series(1, 1000) i;`),
      );
      const job = postgresJob(server, ['app'], 0);
      const { config } = writeConfig({ jobs: [{ ...job, postgres: { ...job.postgres, parallelJobs: 1 } }] });
      const { agent } = testAgent(config, env);
      const store = new BackupStore(config.backupDir, 'pg');
      const run = runBackup(agent, config.jobs[0]);
      await waitFor('a_first being copied', () => {
        const partial = fs.existsSync(store.dir) ? fs.readdirSync(store.dir).find((name) => name.endsWith('.partial')) : undefined;
        return partial && fs.existsSync(path.join(store.dir, partial, 'app.tables', '1.1.bin.zst')) ? true : undefined;
      }, 30_000, 5);
      const alter = withDatabase(server, 'app', (db) => db.query('ALTER TABLE b_later ADD COLUMN note text'));
      const started = Date.now();
      const failed = await run;
      expect({ status: failed.status, error: failed.error }).toEqual({ status: 'failed', error: expect.stringMatching(/could not obtain lock on relation "public.b_later".*a schema change on public.b_later was waiting for the backup, which gave way to it/) });
      expect(Date.now() - started).toBeLessThan(30_000);
      await alter;
      expect(jobDirEntries(config, 'pg')).toEqual([`${failed.id}.failed.json`]);
    } finally {
      await server.stop();
    }
  });

  test('full disk (2 MiB tmpfs) in the middle of a dump: run failed, nothing promoted, the earlier backup still restores', async () => {
    const server = await startPostgres();
    const env = { PG_PASSWORD: server.password, [RESTORE_CREDENTIAL_ENV.userEnv]: 'postgres', [RESTORE_CREDENTIAL_ENV.passwordEnv]: server.password };
    const mountPoint = tempDir('small-disk');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mountPoint]);
    try {
      await withDatabase(server, 'postgres', (db) => db.query('CREATE DATABASE app'));
      await withDatabase(server, 'app', (db) => db.query(SCHEMA));
      const before = await fingerprint(server, 'app');
      const { config, path: configPath } = writeConfig({ backupDir: mountPoint, jobs: [postgresJob(server, ['app'])] });
      const { agent, notices } = testAgent(config, env);
      const good = await runBackup(agent, config.jobs[0]);
      expect(good.status).toBe('ok');

      // Random text compresses poorly: ~10 MB of dump cannot fit in what is left of 2 MiB.
      await withDatabase(server, 'app', (db) => db.query('CREATE TABLE big AS SELECT i, md5(random()::text) || md5(random()::text) AS filler FROM generate_series(1, 150000) i'));
      const failed = await runBackup(agent, config.jobs[0]);

      expect(failed.status).toBe('failed');
      expect(failed.error).toMatch(/No space left on device|could not write/i);
      expect(notices).toEqual([`backup pg failed: ${failed.error}`]);
      expect(jobDirEntries(config, 'pg')).toEqual([good.id, `${failed.id}.failed.json`].sort());

      await withDatabase(server, 'app', (db) => db.query('DROP TABLE big'));
      const restored = await cli(['restore', 'pg', '--from', good.id, '--target', 'app_again', '--config', configPath], env);
      expect(restored.code).toBe(0);
      expect(await fingerprint(server, 'app_again')).toEqual(before);
    } finally {
      execFileSync('umount', [mountPoint]);
      await server.stop();
    }
  });
});

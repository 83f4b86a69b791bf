/**
 * The name and SQL rules of a Postgres restore (runtime/agent/jobs/postgres/restore-rules.ts); the
 * restore itself runs against real servers in test/agent/postgres-restore.test.ts.
 */
import {
  affixedName, BEFORE_RESTORE_INFIX, databaseEntries, globalsForMissingRoles, isAffixedName, renameDatabaseSql, RESTORING_INFIX, rolesOfGlobals, rollUpHashPartitions, sqlNamesRole, unrestorableName,
} from '../../runtime/agent/jobs/postgres/restore-rules';

describe('names of temporary and kept databases', () => {
  const stamp = '20250601120000';

  test('are the whole name, an infix and the stamp; a name whose copies PostgreSQL would cut at 63 bytes is refused', () => {
    expect(affixedName('app', RESTORING_INFIX, stamp)).toBe('app__restoring_20250601120000');
    const longest = 'x'.repeat(32);
    expect(Buffer.byteLength(affixedName(longest, BEFORE_RESTORE_INFIX, stamp))).toBe(63);
    expect(unrestorableName(longest)).toBeUndefined();
    expect(unrestorableName('x'.repeat(33))).toMatch(/^it is 33 bytes long; .* at most 32 bytes$/);
    expect(unrestorableName('ü'.repeat(17))).toMatch(/^it is 34 bytes long/);
    expect(() => affixedName('x'.repeat(33), RESTORING_INFIX, stamp)).toThrow('cannot be restored into');
  });

  test('the infixes are reserved in any database a restore names', () => {
    expect(unrestorableName('app__restoring_customer')).toBe('"__restoring_" is reserved for the copies a restore makes');
    expect(unrestorableName('x__before_restore_')).toBe('"__before_restore_" is reserved for the copies a restore makes');
    expect(unrestorableName('app_restoring')).toBeUndefined();
  });

  test('a leftover is exactly <target>__restoring_<14 digits>', () => {
    expect(isAffixedName('app__restoring_20250601120000', 'app', RESTORING_INFIX)).toBe(true);
    for (const name of ['app__restoring_customer', 'app__restoring_2025060112000', 'app__restoring_202506011200000', 'app2__restoring_20250601120000', 'app__restoring_20250601120000\n']) {
      expect(isAffixedName(name, 'app', RESTORING_INFIX)).toBe(false);
    }
  });
});

describe('the archive\'s database entries, renamed', () => {
  const sql = [
    '\\restrict abc',
    'SET statement_timeout = 0;',
    "SELECT pg_catalog.set_config('search_path', '', false);",
    '-- Name: Shop; Type: DATABASE; Schema: -; Owner: app_owner',
    `CREATE DATABASE "Shop" WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C';`,
    'ALTER DATABASE "Shop" OWNER TO app_owner;',
    '\\connect "Shop"',
    `COMMENT ON DATABASE "Shop" IS 'ALTER DATABASE "Shop" is the shop';`,
    'ALTER DATABASE "Shop" CONNECTION LIMIT = 7;',
    `ALTER ROLE reader IN DATABASE "Shop" SET search_path TO 'x';`,
    'REVOKE CONNECT,TEMPORARY ON DATABASE "Shop" FROM PUBLIC;',
    'GRANT CONNECT ON DATABASE "Shop" TO reader;',
  ].join('\n');

  test('every statement names the new database; psql meta-commands, session settings and text inside literals are left alone', () => {
    expect(renameDatabaseSql(sql, '"Shop"', '"Shop__restoring_1"')).toEqual({
      create: `CREATE DATABASE "Shop__restoring_1" WITH TEMPLATE = template0 ENCODING = E'UTF8' LOCALE_PROVIDER = libc LOCALE = E'C';`,
      rest: [
        'ALTER DATABASE "Shop__restoring_1" OWNER TO app_owner;',
        `COMMENT ON DATABASE "Shop__restoring_1" IS E'ALTER DATABASE "Shop" is the shop';`,
        'ALTER DATABASE "Shop__restoring_1" CONNECTION LIMIT = 7;',
        `ALTER ROLE reader IN DATABASE "Shop__restoring_1" SET search_path TO E'x';`,
        'REVOKE CONNECT , TEMPORARY ON DATABASE "Shop__restoring_1" FROM PUBLIC;',
        'GRANT CONNECT ON DATABASE "Shop__restoring_1" TO reader;',
      ].join('\n'),
    });
  });

  const create = `CREATE DATABASE app WITH TEMPLATE = template0;\n`;
  const rename = (more: string) => renameDatabaseSql(create + more, 'app', 'app__restoring_1').rest;

  test('statements are split by how PostgreSQL lexes them: what a literal, a quoted name or a comment holds stays in it', () => {
    // C3 of the review: a comment holding a line that starts with "--", and a setting holding SQL.
    expect(rename(`COMMENT ON DATABASE app IS 'x\n--';\nALTER DATABASE app SET application_name TO '; ALTER ROLE t_app SUPERUSER; --';`)).toBe(
      `COMMENT ON DATABASE app__restoring_1 IS E'x\n--';\nALTER DATABASE app__restoring_1 SET application_name TO E'; ALTER ROLE t_app SUPERUSER; --';`,
    );
    expect(rename(`COMMENT ON DATABASE app IS E'it\\'s \\\\ \\x41\\n';`)).toBe(`COMMENT ON DATABASE app__restoring_1 IS E'it''s \\\\ A\n';`);
    expect(rename(`COMMENT ON DATABASE app IS $x$a'; DROP ROLE r; --$x$;`)).toBe(`COMMENT ON DATABASE app__restoring_1 IS E'a''; DROP ROLE r; --';`);
    expect(rename(`GRANT CONNECT ON DATABASE app TO "a;b"; /* ; /* nested ; */ ; */ -- ;\nALTER ROLE "x""y" IN DATABASE app SET a.b TO '1';`)).toBe(
      `GRANT CONNECT ON DATABASE app__restoring_1 TO "a;b";\nALTER ROLE "x""y" IN DATABASE app__restoring_1 SET a . b TO E'1';`,
    );
    // With standard_conforming_strings off, a backslash escapes the quote that would end the literal.
    expect(rename(`SET standard_conforming_strings = off;\nCOMMENT ON DATABASE app IS 'a\\'; ALTER ROLE r SUPERUSER; --';`)).toBe(`COMMENT ON DATABASE app__restoring_1 IS E'a''; ALTER ROLE r SUPERUSER; --';`);
  });

  test('a statement of another shape, or about another database, fails the restore', () => {
    for (const statement of [
      'ALTER ROLE t_app SUPERUSER;',
      'ALTER DATABASE app RENAME TO other;',
      'ALTER DATABASE other OWNER TO app_owner;',
      'COMMENT ON DATABASE app IS \'x\' || current_user;',
      'GRANT CONNECT ON DATABASE app TO reader; DROP DATABASE other;',
      'GRANT pg_read_all_data TO reader;',
      'SELECT pg_catalog.set_config(\'role\', \'x\', false);',
    ]) {
      expect(() => rename(statement)).toThrow(/a restore does not apply|cannot be read|session setting/);
    }
    expect(() => rename(`COMMENT ON DATABASE app IS 'x`)).toThrow('an unterminated literal');
    expect(() => rename(`COMMENT ON DATABASE app IS 'x';\n\\! rm -rf /`)).toThrow('the psql command \\!');
  });

  test('the TOC lines of the database itself are kept, nothing else', () => {
    const toc = [
      ';',
      '3390; 1262 16384 DATABASE - app app_owner',
      '3391; 0 0 COMMENT - DATABASE app app_owner',
      '3392; 0 0 DATABASE PROPERTIES - app app_owner',
      '218; 1259 16385 TABLE public accounts app_owner',
      '3393; 0 0 ACL - DATABASE app app_owner',
      '3394; 0 0 ACL public TABLE accounts app_owner',
    ].join('\n');
    expect(databaseEntries(toc).trim().split('\n').map((line) => line.split(';')[0])).toEqual(['3390', '3391', '3392', '3393']);
  });
});

describe('roles the archive needs', () => {
  const globals = [
    '\\restrict k', 'SET default_transaction_read_only = off;', 'SET standard_conforming_strings = on;', '-- Roles',
    'CREATE ROLE app_owner;', "ALTER ROLE app_owner WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:a''b';",
    'CREATE ROLE postgres;', "ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS PASSWORD 'old';",
    'CREATE ROLE reader;', 'ALTER ROLE reader WITH NOSUPERUSER LOGIN;', "ALTER ROLE reader SET search_path TO 'x';",
    'GRANT reader TO app_owner WITH INHERIT TRUE GRANTED BY postgres;', 'GRANT pg_read_all_data TO reader GRANTED BY postgres;',
  ].join('\n');

  test('--with-globals applies the CREATE ROLE, attributes and memberships of the missing roles only (M2)', () => {
    expect(globalsForMissingRoles(globals, new Set(['app_owner']))).toBe([
      'CREATE ROLE app_owner;',
      "ALTER ROLE app_owner WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD E'SCRAM-SHA-256$4096:a''b';",
      'GRANT reader TO app_owner WITH INHERIT TRUE;',
    ].join('\n'));
    expect(() => globalsForMissingRoles(globals, new Set(['postgres']))).toThrow('globals.sql gives the missing role postgres SUPERUSER');
  });


  test('globals.sql roles, quoted or not', () => {
    expect(rolesOfGlobals('CREATE ROLE app_owner;\nALTER ROLE app_owner WITH LOGIN;\nCREATE ROLE "Odd ""role""";\nCREATE ROLE postgres;\n')).toEqual(['app_owner', 'Odd "role"', 'postgres']);
  });

  test('named as owner, grantee, in a list of grantees, in default privileges; not as a mere word', () => {
    expect(sqlNamesRole('ALTER TABLE public.t OWNER TO ghost;', 'ghost')).toBe(true);
    expect(sqlNamesRole('GRANT SELECT ON TABLE public.t TO reader, ghost;', 'ghost')).toBe(true);
    expect(sqlNamesRole('ALTER DEFAULT PRIVILEGES FOR ROLE ghost IN SCHEMA public GRANT SELECT ON TABLES TO reader;', 'ghost')).toBe(true);
    expect(sqlNamesRole('CREATE POLICY p ON public.t TO "Odd ""role""" USING (true);', '"Odd ""role"""')).toBe(true);
    expect(sqlNamesRole('CREATE TABLE public.ghost (ghost int);\nGRANT SELECT ON TABLE public.t TO ghostly;', 'ghost')).toBe(false);
  });
});

test('hash partitions are counted under their root, every other table on its own', () => {
  const roots = { 'public.h_0': 'public.h', 'public.h_1': 'public.h' };
  expect(rollUpHashPartitions({ 'public.h_0': 3, 'public.h_1': 4, 'public.list_a': 5 }, roots)).toEqual({ 'public.h (all hash partitions)': 7, 'public.list_a': 5 });
});

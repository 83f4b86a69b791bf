/**
 * The name and SQL rules of a Postgres restore (runtime/agent/jobs/postgres-restore.ts); the
 * restore itself runs against real servers in test/agent/postgres-restore.test.ts.
 */
import {
  affixedName, BEFORE_RESTORE_INFIX, databaseEntries, namePrefix, renameDatabaseSql, RESTORING_INFIX, rolesOfGlobals, rollUpHashPartitions, sqlNamesRole,
} from '../../runtime/agent/jobs/postgres-restore';

describe('names of temporary and kept databases', () => {
  test('fit in 63 bytes, multi-byte names cut at a character, and every restore of a target shares the prefix', () => {
    const stamp = '20250601120000';
    expect(affixedName('app', RESTORING_INFIX, stamp)).toBe('app__restoring_20250601120000');
    for (const name of ['x'.repeat(63), 'ü'.repeat(40), 'a"b'.repeat(20)]) {
      for (const infix of [RESTORING_INFIX, BEFORE_RESTORE_INFIX]) {
        const affixed = affixedName(name, infix, stamp);
        expect(Buffer.byteLength(affixed)).toBeLessThanOrEqual(63);
        expect(affixed).toBe(`${namePrefix(name, infix)}${stamp}`);
        expect(affixed).not.toContain('\uFFFD');
      }
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
      create: `CREATE DATABASE "Shop__restoring_1" WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C';`,
      rest: [
        'ALTER DATABASE "Shop__restoring_1" OWNER TO app_owner;',
        `COMMENT ON DATABASE "Shop__restoring_1" IS 'ALTER DATABASE "Shop" is the shop';`,
        'ALTER DATABASE "Shop__restoring_1" CONNECTION LIMIT = 7;',
        `ALTER ROLE reader IN DATABASE "Shop__restoring_1" SET search_path TO 'x';`,
        'REVOKE CONNECT,TEMPORARY ON DATABASE "Shop__restoring_1" FROM PUBLIC;',
        'GRANT CONNECT ON DATABASE "Shop__restoring_1" TO reader;',
      ].join('\n'),
    });
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

/**
 * Which PostgreSQL client tools the agent runs for a server version (pickToolDir): a pure choice
 * over the directories Alpine and Debian install them in; and that the choice is passed in, not
 * kept in module state.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';
import { archiveMajor, pickToolDir } from '../../runtime/agent/jobs/postgres/tools';

const installed = (...dirs: string[]) => (file: string) => dirs.some((dir) => file === `${dir}/pg_dump`);

describe('pickToolDir', () => {
  test('the tools of the server\'s own major version when installed', () => {
    expect(pickToolDir(16, installed('/usr/libexec/postgresql16', '/usr/libexec/postgresql17'))).toBe('/usr/libexec/postgresql16');
    expect(pickToolDir(15, installed('/usr/lib/postgresql/15/bin'))).toBe('/usr/lib/postgresql/15/bin');
  });

  test('otherwise the oldest newer version (pg_dump refuses newer servers, newer pg_restore sets unknown parameters)', () => {
    expect(pickToolDir(14, installed('/usr/libexec/postgresql17', '/usr/libexec/postgresql16'))).toBe('/usr/libexec/postgresql16');
  });

  test('never an older version, and PATH (undefined) when nothing fits', () => {
    expect(pickToolDir(17, installed('/usr/libexec/postgresql16', '/usr/lib/postgresql/15/bin'))).toBeUndefined();
    expect(pickToolDir(16, installed())).toBeUndefined();
  });

  test('Alpine\'s directory before Debian\'s for the same version', () => {
    expect(pickToolDir(16, installed('/usr/lib/postgresql/16/bin', '/usr/libexec/postgresql16'))).toBe('/usr/libexec/postgresql16');
  });
});

describe('archiveMajor', () => {
  test('the major version of the pg_dump a manifest records; 0 when it records none', () => {
    expect(archiveMajor({ tools: { pg_dump: 'pg_dump (PostgreSQL) 16.4' } })).toBe(16);
    expect(archiveMajor({ tools: { pg_dump: 'pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)' } })).toBe(15);
    expect(archiveMajor({ tools: {} })).toBe(0);
  });

  test('a restore of a 16-made archive into a 15 server runs pg_restore 16, which can read it', () => {
    const dirs = installed('/usr/libexec/postgresql15', '/usr/libexec/postgresql16', '/usr/libexec/postgresql17');
    expect(pickToolDir(Math.max(15, archiveMajor({ tools: { pg_dump: 'pg_dump (PostgreSQL) 16.4' } })), dirs)).toBe('/usr/libexec/postgresql16');
  });
});

/**
 * Module-level variables and collections that a Postgres job's code could write: state that one
 * operation leaves for the next (a warning flag, a chosen tool directory) instead of a value passed in.
 */
function moduleLevelState(source: string): string[] {
  const file = ts.createSourceFile('module.ts', source, ts.ScriptTarget.Latest, true);
  // Constant tables (arrays, strings) are read only; a Map or Set at module level is a cache.
  const mutable = /^new (Map|Set|WeakMap|WeakSet)\b/;
  return file.statements.filter(ts.isVariableStatement).flatMap((statement) =>
    statement.declarationList.declarations
      .filter((d) => !(statement.declarationList.flags & ts.NodeFlags.Const) || mutable.test(d.initializer?.getText(file) ?? ''))
      .map((d) => d.name.getText(file)),
  );
}

describe('the Postgres job keeps no state between operations', () => {
  const dir = path.resolve(__dirname, '../../runtime/agent/jobs/postgres');

  test('no module of runtime/agent/jobs/postgres/ holds module-level mutable state', () => {
    const found = fs.readdirSync(dir).filter((f) => f.endsWith('.ts')).flatMap((f) => moduleLevelState(fs.readFileSync(path.join(dir, f), 'utf8')).map((name) => `${f}: ${name}`));
    expect(found).toEqual([]);
  });

  test('the check finds a flag and a cache, and passes constants', () => {
    expect(moduleLevelState("let warned = false;\nconst cache = new Map<string, boolean>();\nconst LOCK_WAIT = '60s';\nexport const TOOL_DIRS = (m: number) => [m];")).toEqual(['warned', 'cache']);
  });
});

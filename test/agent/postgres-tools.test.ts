/**
 * Which PostgreSQL client tools the agent runs for a server version (pickToolDir): a pure choice
 * over the directories Alpine and Debian install them in.
 */
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

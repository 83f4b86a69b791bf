/**
 * Which PostgreSQL client tools the agent runs for a server version (pickToolDir): a pure choice
 * over the directories Alpine and Debian install them in.
 */
import { pickToolDir } from '../../runtime/agent/jobs/postgres';

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

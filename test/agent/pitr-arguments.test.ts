import { main } from '../../runtime/agent/commands';
import { CONFIG_JSON_ENV } from '../../runtime/agent/config';

const job = (over: Record<string, unknown> = {}) => ({
  name: 'pitr',
  kind: 'postgres-pitr',
  schedule: '0 3 * * *',
  retention: { daily: 7, weekly: 4, monthly: 6 },
  offsite: false,
  pitr: { host: 'db', port: 5432, user: 'replicator', passwordEnv: 'PITR_PASSWORD', slot: 'tenantry_acme', windowDays: 7, maxLagSeconds: 60, maxSlotWalKeepMb: 1024, databases: ['app'] },
  ...over,
});
const logical = { name: 'pg', kind: 'postgres', schedule: '0 3 * * *', retention: { daily: 7, weekly: 4, monthly: 6 }, offsite: false, postgres: { host: 'db', port: 5432, user: 'b', passwordEnv: 'PG', databases: ['app'] } };
const config = (jobs: unknown[]) => JSON.stringify({ tenant: 'acme', environment: 'prod', timeZone: 'UTC', backupDir: '/nonexistent-backups', http: { port: 9187 }, jobs });

async function run(args: string[], jobs: unknown[] = [job(), logical]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const code = await main(args, { stdout: () => undefined, stderr: (t) => (stderr += t), env: { [CONFIG_JSON_ENV]: config(jobs) }, stopRequested: new Promise(() => undefined) });
  return { code, stderr };
}

describe('restore to a point: mistakes are refused with exit 2 before anything is read', () => {
  test.each([
    [['restore', 'pitr', '--to-time', '2026-12-01T17:15:00Z', '--latest'], 'restore takes one of --from, --to-time, --to-lsn, --to-name, --latest; got --to-time and --latest'],
    [['restore', 'pitr'], 'restore needs --from <backup-id|latest>, or for a postgres-pitr job one of --to-time, --to-lsn, --to-name, --latest'],
    [['restore', 'pitr', '--to-time', '2026-12-01 17:15'], '--to-time "2026-12-01 17:15" is not an ISO 8601 time with a zone'],
    [['restore', 'pitr', '--to-lsn', '3000060'], '--to-lsn: "3000060" is not an LSN'],
    [['restore', 'pitr', '--from', 'latest'], 'job pitr is a postgres-pitr job: restore it to a point with --to-time, --to-lsn, --to-name or --latest, not --from'],
    [['restore', 'pg', '--latest'], 'job pg is a postgres job: restore it with --from <backup-id|latest>'],
    [['restore', 'pitr', '--latest', '--port', '5499'], '--port starts the recovered copy of --target-dir; give --target-dir <dir> too'],
    [['restore', 'pitr', '--latest', '--only-databases', 'app'], '--only-databases <db,db> and --into <host:port> go together'],
    [['restore', 'pitr', '--latest', '--only-databases', 'app', '--into', 'db'], '--into "db" is not host:port'],
    [['restore', 'pitr', '--latest', '--only-databases', 'app', '--into', 'db:5432'], '--only-databases needs --port <a free local TCP port> for the scratch server'],
    [['restore', 'pitr', '--latest', '--only-databases', 'app', '--into', 'db:5432', '--port', '5499', '--target-dir', '/x'], '--only-databases recovers into a scratch folder of its own'],
    [['restore', 'pitr', '--latest', '--target-dir', '/x', '--port', '99999'], '--port "99999" is not a TCP port'],
  ])('%j', async (args, message) => {
    const { code, stderr } = await run(args);
    expect(stderr).toContain(message);
    expect(code).toBe(2);
  });

  test('a postgres-pitr job with a slot name Postgres would refuse is a config error at its key', async () => {
    const { code, stderr } = await run(['list'], [job({ pitr: { ...job().pitr, slot: 'Tenantry-Acme' } })]);
    expect(stderr).toContain('jobs[0].pitr.slot: must be 1-63 lowercase letters, digits and "_" (a replication slot name)');
    expect(code).toBe(2);
  });
});

import { execIn } from '../helpers/docker-deploy';
import { agentManifest, deployedTenant, psqlIn, receiverCaughtUp, stdoutOf, until, writeAroundTime } from '../helpers/docker-suite';

/*
 * Point-in-time recovery of a dedicated server, end to end, as an operator runs it on a tenant
 * deployed from the synthesized JSON: the tenant's Postgres (streaming parameters, rendered
 * pg_hba.conf, start wrapper, the backup volume read-only) and its backup agent (real Dockerfile,
 * read-only root, uid 10001). The agent's `serve` streams WAL; a base backup is taken; rows are
 * written around a time T; `tenantry-agent restore postgres-pitr --to-time T` prepares the restore
 * in the backup container; `docker restart` of the Postgres container applies it through the
 * wrapper; `verify postgres-pitr` then recovers the new timeline and compares row counts.
 */

const SECONDS = 1000;

const suite = deployedTenant({ suite: 'pitr', setupSeconds: 900, services: ['postgres', 'backup'] });

const { name } = suite;
const postgres = () => suite.deployment.get(name('postgres')).container;
const agent = () => suite.deployment.get(name('backup')).container;

/** SQL as the image's superuser on the server's socket, inside its container. */
const sql = (query: string, database = 'app') => psqlIn(postgres(), query, database);
const agentCli = (args: string[]) => execIn(agent(), ['tenantry-agent', ...args], { user: 'tenantry' });

/** The agent's /metrics, read inside its container. */
async function metrics(): Promise<string> {
  return stdoutOf(await execIn(agent(), ['node', '-e', "fetch('http://127.0.0.1:9187/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))"], { user: 'tenantry' }), 'GET /metrics');
}

function metric(text: string, metricName: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${metricName}{`) && l.includes('job="postgres-pitr"'));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

/** The receiver has flushed everything the server has written so far. */
const archived = () => receiverCaughtUp(postgres());

describe('point-in-time recovery of a tenant deployed from cdk.tf.json', () => {
  let restoreId: string;
  let target: string;
  const rowsBeforeT = Array.from({ length: 40 }, (_, i) => String(i + 1));

  test('the server runs with the streaming parameters and the rendered hba_file', async () => {
    const settings = await sql("SELECT string_agg(name || '=' || setting, ',' ORDER BY name) FROM pg_settings WHERE name IN ('wal_level', 'hba_file', 'wal_keep_size')", 'postgres');
    expect(settings).toBe('hba_file=/etc/tenantry/pg_hba.conf,wal_keep_size=0,wal_level=replica');
  });

  test("the agent's serve streams WAL: the receiver is up in /metrics", async () => {
    await until('tenantry_pitr_receiver_up 1', async () => (metric(await metrics(), 'tenantry_pitr_receiver_up') === 1 ? true : undefined));
    expect(await sql("SELECT slot_name || ':' || active FROM pg_replication_slots", 'postgres')).toBe(`tenantry_${suite.config.tenant}:true`);
  }, 90 * SECONDS);

  test('a base backup, then rows before a time T and rows after it', async () => {
    const run = await agentCli(['run', 'postgres-pitr']);
    expect(run.stderr).not.toMatch(/"level":"error"/);
    expect(run).toMatchObject({ exitCode: 0, stdout: expect.stringMatching(/: ok, \d+ bytes\n$/) });
    const [id] = run.stdout.split(':');
    const manifest = await agentManifest(agent(), 'postgres-pitr', id);
    const windowStart = await until('the restorable window in /metrics', async () => metric(await metrics(), 'tenantry_pitr_window_start_timestamp_seconds'));
    expect(windowStart).toBeCloseTo(Date.parse(manifest.details.endTime as string) / 1000, 3);
    target = await writeAroundTime(postgres());
  }, 180 * SECONDS);

  test('restore --to-time T prepares the restore in the backup container', async () => {
    const restore = await agentCli(['restore', 'postgres-pitr', '--to-time', target]);
    const out = stdoutOf(restore, 'restore --to-time');
    restoreId = /restore (\d{8}T\d{6}Z) is ready/.exec(out)![1];
    expect(stdoutOf(await execIn(agent(), ['cat', '/backups/postgres-pitr/restores/pending'], { user: 'tenantry' }), 'cat pending')).toBe(`${restoreId}\n`);
  }, 180 * SECONDS);

  test('docker restart applies it through the wrapper: exactly the rows before T, the old directory kept', async () => {
    await postgres().restart({ t: 30 });
    const rows = await until('the restored server to answer', async () => sql('SELECT string_agg(id::text, \',\' ORDER BY id) FROM events'), 120 * SECONDS);
    expect(rows.split(',')).toEqual(rowsBeforeT);
    const volume = stdoutOf(await execIn(postgres(), ['ls', '/var/lib/postgresql/data'], { user: 'postgres' }), 'ls data volume').split('\n').filter(Boolean).sort();
    expect(volume).toEqual(['pgdata', `pgdata.before-restore-${restoreId}`, 'restores-applied'].sort());
    const logs = (await postgres().logs({ stdout: true, stderr: true, tail: 200 })).toString('utf8');
    expect(logs).toContain(`restore ${restoreId} applied`);
  }, 240 * SECONDS);

  test('verify postgres-pitr passes on the restored server', async () => {
    await until('tenantry_pitr_receiver_up 1 after the restart', async () => (metric(await metrics(), 'tenantry_pitr_receiver_up') === 1 ? true : undefined), 120 * SECONDS);
    await sql("INSERT INTO events SELECT i, 'after restore' FROM generate_series(100, 110) i");
    await archived();
    const verify = await agentCli(['verify', 'postgres-pitr']);
    expect(stdoutOf(verify, 'verify postgres-pitr')).toMatch(/passed/);
  }, 300 * SECONDS);
});

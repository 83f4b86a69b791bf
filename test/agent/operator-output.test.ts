/**
 * What the operator CLI (`tenantry`) reads from the agent: `status --json`, `run --progress=json`
 * and `list --json --offsite`, each checked against the schema the CLI parses it with. The backed-up
 * service is the Qdrant stand-in, the bucket s3rver (no real S3 can run here).
 */
import * as fs from 'fs';
import { z } from 'zod';
import { offsitePrefix } from '../../config/offsite';
import { AgentConfig } from '../../runtime/agent/config';
import { listedBackupSchema } from '../../runtime/agent/listing';
import { progressLineSchema } from '../../runtime/agent/progress';
import { agentStatusSchema, STALENESS_RULE } from '../../runtime/agent/report';
import { BackupStore } from '../../runtime/agent/store';
import { freePort } from '../helpers/servers';
import { cli, manifests, writeConfig } from './harness';
import { QdrantStandIn, S3RVER_CREDENTIALS, S3StandIn, startQdrantStandIn, startS3StandIn } from './standins';

describe('the agent\'s output for the operator CLI', () => {
  let s3: S3StandIn;
  let qdrant: QdrantStandIn;
  let config: AgentConfig;
  let configPath: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    s3 = await startS3StandIn(['offsite']);
    qdrant = await startQdrantStandIn({ apiKey: 'k', collections: { big: 8 * 1024 * 1024, small: 1000 } });
    const nobody = await freePort();
    env = { QDRANT_API_KEY: 'k', S3_KEY: S3RVER_CREDENTIALS.accessKeyId, S3_SECRET: S3RVER_CREDENTIALS.secretAccessKey };
    const retention = { daily: 7, weekly: 0, monthly: 0 };
    // UTC: a schedule's longest gap is the same every day (Europe/Berlin has a 25-hour day).
    ({ config, path: configPath } = writeConfig({
      timeZone: 'UTC',
      offsite: { bucket: 'offsite', prefix: offsitePrefix('test', 'acme'), region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, accessKeyIdEnv: 'S3_KEY', secretAccessKeyEnv: 'S3_SECRET', retry: { attempts: 1, baseDelayMs: 10 } },
      jobs: [
        { name: 'vectors', kind: 'qdrant', schedule: '0 * * * *', retention, offsite: true, qdrant: { url: qdrant.url, apiKeyEnv: 'QDRANT_API_KEY' } },
        { name: 'broken', kind: 'qdrant', schedule: '@daily', retention, offsite: false, qdrant: { url: `http://127.0.0.1:${nobody}`, apiKeyEnv: 'QDRANT_API_KEY' } },
        { name: 'pg', kind: 'postgres', schedule: '@daily', retention, offsite: false, postgres: { host: '127.0.0.1', port: nobody, user: 'backup', passwordEnv: 'PG_PASSWORD', databases: ['app'] } },
      ],
    }));
  });

  afterAll(async () => {
    await s3.stop();
    await qdrant.close();
  });

  const status = async () => {
    const result = await cli(['status', '--json', '--config', configPath], env);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    return agentStatusSchema.parse(JSON.parse(result.stdout));
  };

  test('status --json before any backup: every job late, with its policy and restore credential variables', async () => {
    const before = await status();
    expect(before).toMatchObject({ tenant: 'acme', environment: 'test', rule: STALENESS_RULE });
    expect(before.jobs.map((j) => [j.job, j.lastGood, j.late, j.maxAgeSeconds])).toEqual([
      ['vectors', null, true, 2 * 3600],
      ['broken', null, true, 2 * 86400],
      ['pg', null, true, 2 * 86400],
    ]);
    expect(before.jobs.map((j) => j.restoreCredential)).toEqual([null, null, { env: ['TENANTRY_RESTORE_PGUSER', 'TENANTRY_RESTORE_PGPASSWORD'], source: null }]);
  });

  test('run --progress=json: a line per phase, bytes growing to the backup\'s size; the next run estimates from it', async () => {
    const first = await cli(['run', 'vectors', '--progress=json', '--config', configPath], env);
    expect(first.code).toBe(0);
    const lines = first.stdout.trim().split('\n');
    const summary = lines.pop();
    const progress = lines.map((l) => progressLineSchema.parse(JSON.parse(l)));
    const [manifest] = await manifests(config, 'vectors');
    expect(summary).toBe(`${manifest.id}: ok, ${manifest.sizeBytes} bytes, off-site uploaded`);
    const phases = progress.map((p) => p.phase).filter((p, i, all) => p !== all[i - 1]);
    expect(phases).toEqual(['backup', 'check', 'offsite', 'retention', 'done']);
    expect(progress.every((p) => p.id === manifest.id && p.job === 'vectors' && p.bytesTotal === null && !p.totalIsEstimate)).toBe(true);
    const bytes = progress.map((p) => p.bytesDone);
    expect(bytes).toEqual([...bytes].sort((a, b) => a - b));
    expect(progress[progress.length - 1].bytesDone).toBe(manifest.sizeBytes);
    // When the check starts, the files are all written: their size, even if writing ended between two reads.
    expect(progress.find((p) => p.phase === 'check')?.bytesDone).toBe(manifest.sizeBytes);

    const second = await cli(['run', 'vectors', '--progress=json', '--config', configPath], env);
    const next = second.stdout.trim().split('\n').slice(0, -1).map((l) => progressLineSchema.parse(JSON.parse(l)));
    expect(next.every((p) => p.bytesTotal === manifest.sizeBytes && p.totalIsEstimate)).toBe(true);
  });

  test('run --progress=json of a failing job ends with phase failed, and status counts the failure', async () => {
    const run = await cli(['run', 'broken', '--progress=json', '--config', configPath], env);
    expect(run.code).toBe(1);
    const lines = run.stdout.trim().split('\n');
    expect(progressLineSchema.parse(JSON.parse(lines[lines.length - 2]))).toMatchObject({ job: 'broken', phase: 'failed' });
    expect(lines[lines.length - 1]).toMatch(/^broken-\S+: FAILED: /);

    const after = await status();
    const vectors = after.jobs.find((j) => j.job === 'vectors')!;
    const newest = (await manifests(config, 'vectors')).pop()!;
    expect(vectors).toMatchObject({ late: false, lastGood: { id: newest.id, sizeBytes: newest.sizeBytes, verified: null }, offsiteLagSeconds: 0, failuresSinceLastGood: 0, running: false });
    expect(after.jobs.find((j) => j.job === 'broken')).toMatchObject({ late: true, lastGood: null, failuresSinceLastGood: 1, lastFailure: { id: expect.stringMatching(/^broken-/), error: expect.stringMatching(/ECONNREFUSED|connect/) } });
  });

  test('run --progress takes json only', async () => {
    expect(await cli(['run', 'vectors', '--progress=bar', '--config', configPath], env)).toMatchObject({ code: 2, stderr: 'tenantry-agent: --progress bar: the only progress format is json\n' });
  });

  test('list --json --offsite: a backup retention removed here but kept off-site is listed as off-site only', async () => {
    const [oldest] = await manifests(config, 'vectors');
    fs.rmSync(new BackupStore(config.backupDir, 'vectors').backupDir(oldest.id), { recursive: true });
    const local = z.array(listedBackupSchema).parse(JSON.parse((await cli(['list', 'vectors', '--json', '--config', configPath], env)).stdout));
    expect(local.map((b) => b.id)).not.toContain(oldest.id);
    const result = await cli(['list', 'vectors', '--json', '--offsite', '--config', configPath], env);
    expect(result.code).toBe(0);
    const listed = z.array(listedBackupSchema).parse(JSON.parse(result.stdout));
    expect(listed[0]).toEqual({ job: 'vectors', id: oldest.id, location: 'offsite', status: 'ok', startedAt: oldest.startedAt, endedAt: null, durationSeconds: null, sizeBytes: null, verified: null, offsite: 'uploaded', problem: null, contents: [] });
    expect(listed.slice(1).map((b) => [b.location, b.contents])).toEqual([['local', ['big', 'small']]]);
  });
});

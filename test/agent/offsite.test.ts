/**
 * Off-site copies against s3rver, an S3 protocol stand-in (no real S3 can run here). The backed-up
 * service is the Qdrant stand-in (see standins.ts), whose snapshots are easy to compare.
 */
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { AgentConfig } from '../../runtime/agent/config';
import { offsitePrefix } from '../../config/offsite';
import { parseManifest } from '../../runtime/agent/manifest';
import { createS3Client } from '../../runtime/agent/s3';
import { AgentState, renderMetrics, snapshotJobs } from '../../runtime/agent/status';
import { BackupStore } from '../../runtime/agent/store';
import { freePort } from '../helpers/servers';
import { cli, manifests, writeConfig } from './harness';
import { QdrantStandIn, S3RVER_CREDENTIALS, S3StandIn, startQdrantStandIn, startS3StandIn } from './standins';

// The prefix the constructs give tenant acme in environment prod: the environment is part of it.
const PREFIX = offsitePrefix('prod', 'acme');

describe('off-site copies (s3rver as the S3 protocol stand-in)', () => {
  let s3: S3StandIn;
  let qdrant: QdrantStandIn;
  let webhook: http.Server;
  const posts: unknown[] = [];
  let config: AgentConfig;
  let configPath: string;
  let env: NodeJS.ProcessEnv;

  const client = () => createS3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, ...S3RVER_CREDENTIALS });
  const remoteKeys = async () => {
    const s3Client = client();
    try {
      const listed = await s3Client.send(new ListObjectsV2Command({ Bucket: 'offsite', Prefix: `${PREFIX}/` }));
      return (listed.Contents ?? []).map((o) => o.Key ?? '').sort();
    } finally {
      s3Client.destroy();
    }
  };
  const lagOf = async () => {
    const metrics = renderMetrics(await snapshotJobs(new AgentState(config)), config, new Date());
    return Number(/tenantry_backup_offsite_lag_seconds\{[^}]*\} (\S+)/.exec(metrics)?.[1]);
  };

  beforeAll(async () => {
    s3 = await startS3StandIn(['offsite']);
    // 20 MiB: above the 16 MiB part size, so this file goes up as a multipart upload.
    qdrant = await startQdrantStandIn({ apiKey: 'k', collections: { big: 20 * 1024 * 1024 + 123, small: 1000 } });
    const webhookPort = await freePort();
    webhook = http.createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        posts.push(JSON.parse(body));
        response.end('ok');
      });
    });
    await new Promise<void>((resolve) => webhook.listen(webhookPort, '127.0.0.1', resolve));
    env = { QDRANT_API_KEY: 'k', S3_KEY: S3RVER_CREDENTIALS.accessKeyId, S3_SECRET: S3RVER_CREDENTIALS.secretAccessKey, WEBHOOK_URL: `http://127.0.0.1:${webhookPort}/hook` };
    ({ config, path: configPath } = writeConfig({
      webhook: { urlEnv: 'WEBHOOK_URL' },
      offsite: {
        bucket: 'offsite',
        prefix: PREFIX,
        region: 'us-east-1',
        endpoint: s3.endpoint,
        forcePathStyle: true,
        accessKeyIdEnv: 'S3_KEY',
        secretAccessKeyEnv: 'S3_SECRET',
        retry: { attempts: 3, baseDelayMs: 20 },
      },
      jobs: [{ name: 'vectors', kind: 'qdrant', schedule: '@daily', retention: { daily: 7, weekly: 0, monthly: 0 }, offsite: true, qdrant: { url: qdrant.url, apiKeyEnv: 'QDRANT_API_KEY' } }],
    }));
  });

  afterAll(async () => {
    await s3.stop();
    await qdrant.close();
    await new Promise((resolve) => webhook.close(resolve));
  });

  test('uploads every file under <prefix>/<job>/<id>/ with its sha256, and the manifest', async () => {
    const result = await cli(['run', 'vectors', '--config', configPath], env);
    expect(result.stdout).toMatch(/^vectors-\S+: ok, \d+ bytes, off-site uploaded\n$/);
    expect(result.code).toBe(0);

    const [manifest] = await manifests(config, 'vectors');
    expect(manifest.offsite).toEqual({ status: 'uploaded', at: expect.any(String), location: `s3://offsite/${PREFIX}/vectors/${manifest.id}/` });
    const base = `${PREFIX}/vectors/${manifest.id}`;
    expect(await remoteKeys()).toEqual([`${base}/big.snapshot`, `${base}/manifest.json`, `${base}/small.snapshot`]);

    const s3Client = client();
    try {
      for (const file of manifest.files) {
        const head = await s3Client.send(new HeadObjectCommand({ Bucket: 'offsite', Key: `${base}/${file.path}` }));
        expect({ path: file.path, size: head.ContentLength, sha256: head.Metadata?.sha256 }).toEqual({ path: file.path, size: file.size, sha256: file.sha256 });
      }
      const remote = await s3Client.send(new GetObjectCommand({ Bucket: 'offsite', Key: `${base}/manifest.json` }));
      expect(parseManifest(await remote.Body?.transformToString() ?? '', 'remote')).toEqual(manifest);
    } finally {
      s3Client.destroy();
    }
    expect(await lagOf()).toBe(0);
  });

  test('restore --from-offsite after the local copy is gone', async () => {
    const [manifest] = await manifests(config, 'vectors');
    fs.rmSync(new BackupStore(config.backupDir, 'vectors').backupDir(manifest.id), { recursive: true });
    const original = Buffer.from(qdrant.collections.get('big') as Buffer);

    const result = await cli(['restore', 'vectors', '--from', 'latest', '--from-offsite', '--only', 'big', '--target', 'big_restored', '--config', configPath], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${manifest.id}: restored collection(s) big -> big_restored on ${qdrant.url}\n`);
    expect(qdrant.collections.get('big_restored')?.equals(original)).toBe(true);
    // The fetched copy is a normal local backup again, checked file by file.
    const [local] = await manifests(config, 'vectors');
    expect(local.files).toEqual(manifest.files);
    expect(fs.readdirSync(path.join(config.backupDir, 'vectors')).filter((n) => n.endsWith('.partial'))).toEqual([]);
  });

  test('S3 down: bounded retries, local copy kept and marked failed, webhook told; a later run uploads it', async () => {
    await s3.stop();
    const down = await cli(['run', 'vectors', '--config', configPath], env);
    expect(down.code).toBe(1);
    expect(down.stdout).toMatch(/^vectors-\S+: ok, \d+ bytes, off-site failed \(the local copy is kept; the upload is retried at the next run\)\n$/);
    const retries = down.logs.filter((l) => l.msg === 'retrying');
    expect(retries.map((l) => l.fields?.attempt)).toEqual([1, 2]);
    expect(down.logs).toContainEqual(expect.objectContaining({ level: 'error', msg: 'off-site upload failed; the local copy is kept and the upload is retried at the next run' }));
    expect(down.stderr).not.toContain(S3RVER_CREDENTIALS.secretAccessKey);

    const failedId = down.stdout.split(':')[0];
    const failed = await new BackupStore(config.backupDir, 'vectors').read(failedId);
    expect(failed.status).toBe('ok');
    expect(failed.offsite).toMatchObject({ status: 'failed', error: expect.stringMatching(/failed after 3 attempts/) });
    expect(posts).toEqual([{ text: expect.stringMatching(new RegExp(`^\\[tenantry test/acme\\] off-site upload of ${failedId} failed \\(local copy kept, retried at the next run\\): `)) }]);
    expect(await lagOf()).toBeGreaterThan(0);

    await s3.restart();
    const later = await cli(['run', 'vectors', '--config', configPath], env);
    expect(later.code).toBe(0);
    // The pending copy went up. These are manual runs (`run`): retention keeps every manual
    // backup within the daily window, so all three stay locally, each now uploaded.
    const remoteManifests = (await remoteKeys()).filter((k) => k.endsWith('manifest.json'));
    expect(remoteManifests).toHaveLength(3);
    expect(remoteManifests).toContain(`${PREFIX}/vectors/${failedId}/manifest.json`);
    expect((await manifests(config, 'vectors')).map((m) => m.offsite?.status)).toEqual(['uploaded', 'uploaded', 'uploaded']);
    expect(await lagOf()).toBe(0);
  });
});

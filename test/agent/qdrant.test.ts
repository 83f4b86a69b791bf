/**
 * The Qdrant job (stand-in HTTP server following Qdrant's snapshot API; no Qdrant can run here).
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { runBackup } from '../../runtime/agent/runner';
import { cli, jobDirEntries, manifests, testAgent, writeConfig } from './harness';
import { QdrantStandIn, startQdrantStandIn } from './standins';

const API_KEY = 'qdrant-key-123';
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

function qdrantJob(url: string) {
  return {
    name: 'vectors',
    kind: 'qdrant' as const,
    schedule: '0 4 * * *',
    retention: { daily: 7, weekly: 0, monthly: 0 },
    offsite: false,
    qdrant: { url, apiKeyEnv: 'QDRANT_API_KEY' },
  };
}

describe('Qdrant backup job (stand-in HTTP server following Qdrant\'s snapshot API; no Qdrant can run here)', () => {
  let qdrant: QdrantStandIn;
  const env = { QDRANT_API_KEY: API_KEY };

  beforeEach(async () => {
    qdrant = await startQdrantStandIn({ apiKey: API_KEY, collections: { docs: 300_000, images: 20_000 } });
  });

  afterEach(async () => {
    await qdrant.close();
  });

  test('snapshots every collection, checks Qdrant\'s sha256, deletes the server-side snapshots', async () => {
    const { config, path: configPath } = writeConfig({ jobs: [qdrantJob(qdrant.url)] });
    const result = await cli(['run', 'vectors', '--config', configPath], env);
    expect(result.code).toBe(0);
    expect(result.stderr).not.toContain(API_KEY);

    const [manifest] = await manifests(config, 'vectors');
    expect(manifest.source).toEqual({ version: '1.12.4', address: qdrant.url });
    expect(manifest.check?.details).toBe("2 collection snapshots match Qdrant's checksums");
    expect(manifest.files.map((f) => [f.path, f.sha256])).toEqual([
      ['docs.snapshot', sha256(qdrant.collections.get('docs') as Buffer)],
      ['images.snapshot', sha256(qdrant.collections.get('images') as Buffer)],
    ]);
    expect(qdrant.snapshots.size).toBe(0);
    expect(qdrant.requests.every((r) => r.authorized)).toBe(true);
    expect(qdrant.requests.filter((r) => r.route.startsWith('DELETE')).length).toBe(2);
  });

  test('a snapshot whose download does not match Qdrant\'s checksum fails the run; the server snapshot is still deleted', async () => {
    qdrant.reportWrongChecksum = true;
    const { config } = writeConfig({ jobs: [qdrantJob(qdrant.url)] });
    const { agent } = testAgent(config, env);
    const manifest = await runBackup(agent, config.jobs[0]);
    expect(manifest.status).toBe('failed');
    expect(manifest.error).toMatch(/^snapshot docs-1-.*\.snapshot of docs: downloaded sha256 [0-9a-f]{64} differs from Qdrant's 0{64}$/);
    expect(jobDirEntries(config, 'vectors')).toEqual([`${manifest.id}.failed.json`]);
    expect(qdrant.snapshots.size).toBe(0);
  });

  test('a wrong API key fails the run with Qdrant\'s answer, and never logs the key', async () => {
    const { config, path: configPath } = writeConfig({ jobs: [qdrantJob(qdrant.url)] });
    const result = await cli(['run', 'vectors', '--config', configPath], { QDRANT_API_KEY: 'wrong-key-456' });
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/FAILED: Qdrant GET \/ answered 401/);
    expect(result.stderr).not.toContain('wrong-key-456');
    expect(jobDirEntries(config, 'vectors').filter((n) => !n.endsWith('.failed.json'))).toEqual([]);
  });

  test('restore uploads the snapshot into a collection; a non-empty one is refused without --force', async () => {
    const { config, path: configPath } = writeConfig({ jobs: [qdrantJob(qdrant.url)] });
    expect((await cli(['run', 'vectors', '--config', configPath], env)).code).toBe(0);
    const original = Buffer.from(qdrant.collections.get('docs') as Buffer);

    const restored = await cli(['restore', 'vectors', '--from', 'latest', '--only', 'docs', '--target', 'docs_restored', '--config', configPath], env);
    expect(restored.code).toBe(0);
    expect(restored.stdout).toMatch(/restored collection\(s\) docs -> docs_restored on http:\/\/127\.0\.0\.1:\d+/);
    expect(qdrant.collections.get('docs_restored')?.equals(original)).toBe(true);

    const refused = await cli(['restore', 'vectors', '--from', 'latest', '--only', 'docs', '--config', configPath], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe('tenantry-agent: collection "docs" already holds 1 points; restore into another --target, or pass --force to replace it\n');

    const ambiguous = await cli(['restore', 'vectors', '--from', 'latest', '--target', 'x', '--config', configPath], env);
    expect(ambiguous.stderr).toBe('tenantry-agent: --target names one collection but the backup has 2 (docs, images); add --only <collection>\n');

    qdrant.collections.set('docs', Buffer.from('changed since the backup'));
    const forced = await cli(['restore', 'vectors', '--from', 'latest', '--only', 'docs', '--force', '--config', configPath], env);
    expect(forced.code).toBe(0);
    expect(qdrant.collections.get('docs')?.equals(original)).toBe(true);
    expect(fs.existsSync(path.join(config.backupDir, 'vectors'))).toBe(true);
  });
});

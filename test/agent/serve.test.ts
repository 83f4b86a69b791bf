/**
 * `serve`, `health`, the job lock and the cleanup of interrupted runs, with the agent running as
 * its own process. The backed-up service is the Qdrant stand-in (HTTP server following Qdrant's
 * snapshot API; no Qdrant can run here), chosen because it is fast and can be slowed down.
 */
import * as fs from 'fs';
import * as path from 'path';
import { startHttpServer } from '../../runtime/agent/http';
import { createLogger } from '../../runtime/agent/log';
import { AgentState } from '../../runtime/agent/status';
import { freePort } from '../helpers/servers';
import { cli, exitOf, httpGet, spawnCli, waitFor, writeConfig } from './harness';
import { QdrantStandIn, startQdrantStandIn } from './standins';

const env = { QDRANT_API_KEY: 'k' };

function job(url: string, schedule = '@daily') {
  return { name: 'vectors', kind: 'qdrant' as const, schedule, retention: { daily: 7, weekly: 0, monthly: 0 }, offsite: false, qdrant: { url, apiKeyEnv: 'QDRANT_API_KEY' } };
}

describe('agent process: lock, serve, health (Qdrant stand-in following its snapshot API; no Qdrant can run here)', () => {
  let qdrant: QdrantStandIn;

  beforeEach(async () => {
    qdrant = await startQdrantStandIn({ apiKey: 'k', collections: { docs: 10_000 } });
  });

  afterEach(async () => {
    await qdrant.close();
  });

  test('a second run of the same job is refused while the first holds the lock', async () => {
    qdrant.snapshotDelayMs = 4000;
    const { config, path: configPath } = writeConfig({ jobs: [job(qdrant.url)] });
    const first = spawnCli(['run', 'vectors', '--config', configPath], env);
    const lockFile = path.join(config.backupDir, 'vectors', '.lock');
    await waitFor('the first run to take the lock', () => (fs.existsSync(lockFile) ? true : undefined), 30_000);

    const second = await cli(['run', 'vectors', '--config', configPath], env);
    expect(second.code).toBe(2);
    expect(second.stderr).toBe(`tenantry-agent: job vectors is already running (PID ${first.pid}, lock ${lockFile}); wait for it to finish\n`);

    expect(await exitOf(first)).toBe(0);
    expect(first.output().stdout).toMatch(/^vectors-\S+: ok, 10000 bytes\n$/);
    expect(fs.existsSync(lockFile)).toBe(false);
  });

  test('a lock left by a process that died is broken, and its partial backup is removed, never listed as good', async () => {
    const { config, path: configPath } = writeConfig({ jobs: [job(qdrant.url)] });
    const dir = path.join(config.backupDir, 'vectors');
    fs.mkdirSync(path.join(dir, 'vectors-20250101T000000.000Z.partial'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'vectors-20250101T000000.000Z.partial', 'docs.snapshot'), 'half a snapshot');
    const dead = spawnCli(['--help']);
    await exitOf(dead);
    fs.writeFileSync(path.join(dir, '.lock'), JSON.stringify({ pid: dead.pid, startTime: '1', acquiredAt: '2025-01-01T00:00:00Z' }));

    const listed = JSON.parse((await cli(['list', '--json', '--config', configPath], env)).stdout) as { status: string }[];
    expect(listed.map((b) => b.status)).toEqual(['interrupted']);

    const result = await cli(['run', 'vectors', '--config', configPath], env);
    expect(result.code).toBe(0);
    expect(result.logs).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'removed the leftovers of an interrupted run', fields: { path: 'vectors-20250101T000000.000Z.partial' } }));
    const after = JSON.parse((await cli(['list', '--json', '--config', configPath], env)).stdout) as { status: string }[];
    expect(after.map((b) => b.status)).toEqual(['ok']);
  });

  test('serve: runs the schedule, exposes /metrics and /health, `health` agrees, SIGTERM stops it', async () => {
    const port = await freePort();
    const { path: configPath } = writeConfig({ http: { port, host: '127.0.0.1' }, jobs: [job(qdrant.url, '* * * * *')] });
    const agent = spawnCli(['serve', '--config', configPath], env);
    try {
      await waitFor('the agent to listen', async () => (await httpGet(port, '/health').catch(() => undefined))?.status, 30_000, 200);
      const fresh = await httpGet(port, '/health');
      expect(fresh.status).toBe(200);
      expect(JSON.parse(fresh.body)).toMatchObject({ status: 'ok', tenant: 'acme', environment: 'test', jobs: [{ job: 'vectors', healthy: true, lastSuccess: null, maxAgeSeconds: 120 }] });
      expect((await cli(['health', '--config', configPath])).code).toBe(0);

      // The first run of a `* * * * *` schedule comes within a minute.
      const metrics = await waitFor('a scheduled backup to show in /metrics', async () => {
        const { body } = await httpGet(port, '/metrics');
        return body.includes('tenantry_backup_last_success_timestamp_seconds{') ? body : undefined;
      }, 75_000, 500);
      const labels = 'tenant="acme",environment="test",job="vectors",kind="qdrant"';
      expect(metrics).toContain('# TYPE tenantry_backup_last_success_timestamp_seconds gauge');
      expect(metrics).toMatch(new RegExp(`tenantry_backup_size_bytes\\{${labels}\\} 10000\\n`));
      expect(metrics).toMatch(new RegExp(`tenantry_backup_duration_seconds\\{${labels}\\} [\\d.]+\\n`));
      expect(metrics).toContain(`tenantry_backup_failures_total{${labels}} 0\n`);
      expect(metrics).toContain('# TYPE tenantry_backup_failures_total counter');
      expect(metrics).toContain('# HELP tenantry_backup_offsite_lag_seconds');
      expect(metrics).toContain('# HELP tenantry_backup_last_verify_success');
      expect(agent.output().stderr).toContain('"msg":"backup finished"');
    } finally {
      agent.kill('SIGTERM');
      expect(await exitOf(agent)).toBe(0);
    }
    expect(agent.output().stderr).toContain('"msg":"stopping: running jobs are stopped and leave no partial backup behind"');
  }, 120_000);

  test('health is 503 once the last success is older than twice the schedule gap, after the grace period', async () => {
    const port = await freePort();
    const { config, path: configPath } = writeConfig({ http: { port, host: '127.0.0.1' }, jobs: [job(qdrant.url, '@daily')] });
    // An agent that started two days ago and never made a backup.
    const state = new AgentState(config, new Date(Date.now() - 2 * 86_400_000));
    const server = await startHttpServer(state, createLogger(() => undefined), '127.0.0.1', port);
    try {
      const late = await httpGet(port, '/health');
      expect(late.status).toBe(503);
      // @daily in Europe/Berlin: the longest gap is 25 h (the night the clocks go back), so 2 x 25 h.
      expect(JSON.parse(late.body).jobs).toEqual([{ job: 'vectors', healthy: false, lastSuccess: null, maxAgeSeconds: 180_000, reason: 'no good backup yet' }]);
      const check = await cli(['health', '--config', configPath]);
      expect(check.code).toBe(1);

      expect((await cli(['run', 'vectors', '--config', configPath], env)).code).toBe(0);
      expect((await httpGet(port, '/health')).status).toBe(200);
      expect((await cli(['health', '--config', configPath])).code).toBe(0);
      expect((await httpGet(port, '/nope')).status).toBe(404);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

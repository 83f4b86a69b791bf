import { parseAgentConfig } from '../../runtime/agent/config';
import { Manifest } from '../../runtime/agent/manifest';
import { AgentState, assessHealth, JobCounters, JobSnapshot } from '../../runtime/agent/status';

const config = parseAgentConfig(
  {
    tenant: 'acme',
    environment: 'prod',
    timeZone: 'UTC',
    backupDir: '/backups',
    http: { port: 9000 },
    jobs: [{ name: 'pg', kind: 'postgres', schedule: '0 * * * *', retention: { daily: 1, weekly: 0, monthly: 0 }, offsite: false, postgres: { host: 'db', port: 5432, user: 'u', passwordEnv: 'P', databases: ['app'] } }],
  },
  'test',
);
const HOUR = 3600_000;
const gaps = new Map([['pg', 3600]]);
const start = new Date('2025-06-30T00:00:00Z');

function snapshot(lastSuccessAt?: Date): JobSnapshot {
  const lastGood = lastSuccessAt && ({ endedAt: lastSuccessAt.toISOString() } as Manifest);
  return { job: config.jobs[0], counters: new JobCounters(), lastGood };
}

function healthAt(offsetMs: number, lastSuccessAt?: Date) {
  return assessHealth([snapshot(lastSuccessAt)], gaps, new AgentState(config, start), new Date(start.getTime() + offsetMs)).jobs[0];
}

describe('assessHealth (hourly job: longest gap 1 h, limit 2 h)', () => {
  test('a fresh agent without backups is healthy for one gap, then not', () => {
    expect(healthAt(59 * 60_000)).toMatchObject({ healthy: true, reason: 'grace period after start (60 s left)' });
    expect(healthAt(HOUR + 1000)).toMatchObject({ healthy: false, reason: 'no good backup yet' });
  });

  test('healthy while the last success is at most twice the gap old', () => {
    const last = new Date(start.getTime() + 5 * HOUR);
    expect(healthAt(7 * HOUR, last)).toMatchObject({ healthy: true, maxAgeSeconds: 7200 });
    expect(healthAt(7 * HOUR + 1000, last)).toMatchObject({ healthy: false, reason: 'last good backup is 7201 s old (limit 7200 s)' });
  });

  test('a restarted agent with only stale backups gets the same grace as a fresh one', () => {
    const stale = new Date(start.getTime() - 48 * HOUR);
    expect(healthAt(30 * 60_000, stale).healthy).toBe(true);
    expect(healthAt(2 * HOUR, stale).healthy).toBe(false);
  });
});

describe('assessHealth after a failed run', () => {
  test('a failed run makes the job unhealthy at once, even with a recent good backup and within the grace period', () => {
    const counters = new JobCounters();
    counters.lastFailure = { at: '2025-06-30T00:10:00.000Z', error: 'ENOSPC: no space left on device, write' };
    const recent = { endedAt: '2025-06-30T00:05:00.000Z' } as Manifest;
    const health = assessHealth([{ job: config.jobs[0], counters, lastGood: recent }], gaps, new AgentState(config, start), new Date(start.getTime() + 15 * 60_000));
    expect(health.status).toBe('unhealthy');
    expect(health.jobs[0]).toMatchObject({ healthy: false, reason: 'last run failed at 2025-06-30T00:10:00.000Z: ENOSPC: no space left on device, write' });
  });
});

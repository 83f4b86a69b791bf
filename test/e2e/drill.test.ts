/**
 * The end-to-end drill, run exactly as `npm run drill` runs it (`node dist/e2e/drill.js`, after a
 * build when dist is stale), as a child process: its processes, signal handlers and open-files
 * limit are its own, as they are from the command line. Every step of its report must pass.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DRILL_AGENT_CLI_ENV } from '../../e2e/translation';
import { standaloneAgent } from '../agent/compiled';
import { buildIfStale } from '../helpers/build';
import type { DrillReport, StepResult } from '../../e2e/report';

const REPO = path.resolve(__dirname, '..', '..');
const DRILL = path.join(REPO, 'dist', 'e2e', 'drill.js');

/** The steps every drill report must contain, in order (names start with these). */
const STEPS = [
  'preflight',
  'synthesize the dev environment',
  'start every container',
  'container healthchecks',
  'Postgres: write through PgBouncer, back up, DROP DATABASE, restore, compare',
  'Postgres: the restored database keeps its owner and privileges',
  'Postgres point-in-time recovery',
  'PgBouncer: 1000 clients connected at once',
  'Redis: SIGKILL the master',
  'stop every process by PID',
];

describe('e2e drill: tenant acme of the dev stack, run from cdk.tf.json with real servers', () => {
  let exitCode: number | null;
  let output: string;
  let report: DrillReport | undefined;

  beforeAll(() => {
    buildIfStale(DRILL);
    const dir = fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), 'drill-test-'));
    const json = path.join(dir, 'report.json');
    try {
      // The drill's agent runs as postgres, who cannot enter a private checkout (CI's clone in mktemp -d).
      const agentCli = standaloneAgent(path.join(dir, 'agent'));
      fs.chmodSync(dir, 0o755);
      const result = spawnSync(process.execPath, [DRILL, '--json', json], { cwd: REPO, encoding: 'utf8', timeout: 540_000, killSignal: 'SIGTERM', env: { ...process.env, [DRILL_AGENT_CLI_ENV]: agentCli } });
      exitCode = result.status;
      output = `${result.stdout}\n${result.stderr}`;
      if (fs.existsSync(json)) report = JSON.parse(fs.readFileSync(json, 'utf8')) as DrillReport;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);

  const step = (prefix: string): StepResult | undefined => report?.steps.find((s) => s.name.startsWith(prefix));

  it('writes a report', () => {
    if (!report) throw new Error(`the drill wrote no report (exit ${exitCode}); its output:\n${output}`);
    expect(report.steps.length).toBeGreaterThanOrEqual(STEPS.length);
  });

  it('exits 1 exactly when a step failed', () => {
    expect(exitCode).toBe(report?.ok ? 0 : 1);
  });

  it('every step passed, exit code 0', () => {
    expect(exitCode).toBe(0);
    expect(report?.ok).toBe(true);
  });

  it('prints the translation table first', () => {
    expect(report?.translation).toMatch(/^\s+1\. /);
    expect(output.indexOf('Translation table')).toBeLessThan(output.indexOf('start every container'));
  });

  it.each(STEPS)('step passed: %s', (prefix) => {
    const found = step(prefix);
    if (!found) throw new Error(`no step "${prefix}…" in the report; output:\n${output}`);
    if (!found.ok) throw new Error(`${found.name} failed: ${found.error}\n${found.details.join('\n')}`);
  });

  it('reports the figures each scenario is judged by', () => {
    expect(step('PgBouncer')?.details.join('\n')).toMatch(/server connections of \w+ to app .*: max \d+ \(pool size 25\)/);
    expect(step('Redis')?.details.join('\n')).toMatch(/failover: [\d.]+ s from kill to all sentinels/);
    expect(step('Redis')?.details.join('\n')).toMatch(/acknowledged writes missing or different on the new master: 0/);
    expect(step('Postgres')?.details.join('\n')).toMatch(/orders: \d+ rows md5 [0-9a-f]{32} → \d+ rows md5 [0-9a-f]{32}/);
    const pitr = step('Postgres point-in-time recovery')?.details.join('\n');
    expect(pitr).toMatch(/restored to T: \d+ rows; acknowledged before T [1-9]\d*, missing 0; sent after T [1-9]\d*, present 0;/);
    expect(pitr).toMatch(/restored to latest: \d+ rows; acknowledged [1-9]\d*, lost \d+ \(sent in the last \d+ ms before the kill\)/);
  });
});

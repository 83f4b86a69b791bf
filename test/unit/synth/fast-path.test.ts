import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildIfStale, REPO } from '../../helpers/build';

/*
 * stacks/cdktf-seam.ts writes stack JSON without cdktf's own resolve and stringify passes
 * (see bench/synth.ts for what that buys). TENANTRY_SYNTH_VERIFY=1 makes the app also run cdktf's
 * own path and fail on the first differing byte; these configs between them use every construct.
 */
const MAIN = path.join(REPO, 'dist', 'main.js');

beforeAll(() => buildIfStale(MAIN), 300_000);

function synth(configDir: string, env: Record<string, string>): { status: number | null; stderr: string; out: string } {
  const out = fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), 'fast-path-'));
  const result = spawnSync(process.execPath, [MAIN], {
    cwd: configDir,
    env: { ...process.env, TENANTRY_CONFIG_DIR: configDir, CDKTF_OUTDIR: out, ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: result.status, stderr: result.stderr, out };
}

const stacks = (out: string) =>
  Object.fromEntries(fs.readdirSync(path.join(out, 'stacks')).map((env) => [env, fs.readFileSync(path.join(out, 'stacks', env, 'cdk.tf.json'), 'utf8')]));

describe.each([
  ['the example config', REPO],
  ['the config corpus base (NFS, a Windows host, production with per-tenant and shared off-site buckets)', path.join(REPO, 'test', 'config', 'base')],
])('fast synthesis of %s', (_name, configDir) => {
  it('writes what cdktf itself would, byte for byte (TENANTRY_SYNTH_VERIFY=1)', () => {
    const run = synth(configDir, { TENANTRY_SYNTH_VERIFY: '1' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });

  it('writes the same JSON as cdktf\'s own synthesizer, serially (TENANTRY_SYNTH_CDKTF=all, one worker)', () => {
    const fast = synth(configDir, {});
    const cdktf = synth(configDir, { TENANTRY_SYNTH_CDKTF: 'all', TENANTRY_SYNTH_WORKERS: '1' });
    expect([fast.status, cdktf.status]).toEqual([0, 0]);
    expect(stacks(fast.out)).toEqual(stacks(cdktf.out));
  });
});

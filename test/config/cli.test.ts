import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { buildIfStale } from '../helpers/build';
import { expectedLines, findCase, materialise, splitLines, tempDir } from './corpus-lib';

/*
 * The compiled app, run as a user runs it: `node dist/main.js` from the config directory.
 * A bad config prints exactly the corpus lines plus one summary line on stderr, exits 2, prints
 * no stack trace and writes nothing; the valid base config synthesizes one stack per environment.
 */

const REPO = path.resolve(__dirname, '..', '..');
const MAIN = path.join(REPO, 'dist', 'main.js');

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly root: string;
  readonly outdir: string;
}

const dirs: string[] = [];

/** Runs the app with cwd and TENANTRY_CONFIG_DIR = the materialised config, CDKTF_OUTDIR = an empty dir. */
function runApp(caseName: string | undefined): Run {
  const root = materialise(caseName === undefined ? undefined : findCase(caseName));
  const work = tempDir('cli-out');
  dirs.push(root, work);
  const outdir = path.join(work, 'cdktf.out');
  fs.mkdirSync(outdir);
  const result = spawnSync(process.execPath, [MAIN], {
    cwd: root,
    env: { ...process.env, TENANTRY_CONFIG_DIR: root, CDKTF_OUTDIR: outdir },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, root, outdir };
}

/** Every file and folder under `dir`, relative, plus any scratch sibling ("cdktf.out.partial-<pid>"). */
function written(outdir: string): string[] {
  const list = (dir: string, prefix = ''): string[] =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
      const rel = path.posix.join(prefix, d.name);
      return d.isDirectory() ? [rel, ...list(path.join(dir, d.name), rel)] : [rel];
    });
  const siblings = fs.readdirSync(path.dirname(outdir)).filter((n) => n.startsWith(`${path.basename(outdir)}.partial`));
  return [...list(outdir), ...siblings.map((n) => `../${n}`)];
}

beforeAll(() => buildIfStale(MAIN), 300_000);
afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

describe('node dist/main.js on a bad config', () => {
  test.each(['03-yaml-duplicate-key', '24-port-conflict-same-slot', '59-many-problems-in-several-files', '180-image-not-pinned', '181-production-publishes-data-ports'])(
    '%s: exit 2, exactly the expected lines and a summary on stderr, no stack trace, nothing written',
    (name) => {
      const run = runApp(name);
      const expected = expectedLines(findCase(name));
      const lines = splitLines(run.stderr);
      expect({ status: run.status, stderr: lines }).toEqual({
        status: 2,
        stderr: [...expected, `${expected.length} problem(s) in the configuration under ${run.root}; nothing was written.`],
      });
      expect(lines.filter((l) => /^\s+at /.test(l))).toEqual([]);
      expect(run.stdout).toBe('');
      expect(written(run.outdir)).toEqual([]);
    },
  );
});

describe('node dist/main.js on the valid base config', () => {
  test('exits 0 and writes cdktf.out/stacks/<env>/cdk.tf.json for every environment', () => {
    const run = runApp(undefined);
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
    expect(run.stdout).toMatch(/^synthesized 4 environment\(s\), 6 tenant deployment\(s\) into /);
    for (const env of ['dev', 'nas', 'prod', 'win']) {
      const file = path.join(run.outdir, 'stacks', env, 'cdk.tf.json');
      expect({ env, exists: fs.existsSync(file) }).toEqual({ env, exists: true });
      const json = JSON.parse(fs.readFileSync(file, 'utf8')) as { resource?: Record<string, unknown> };
      expect(Object.keys(json.resource ?? {}).length).toBeGreaterThan(0);
    }
    expect(written(run.outdir).filter((f) => f.startsWith('../'))).toEqual([]);
  });
});

/*
 * `npx cdktf synth` runs the same app (cdktf.json's "app") as a child of cdktf-cli 0.21, the final
 * release, which decides the exit code and the output itself (@cdktf/cli-core SynthStack.synth):
 * any non-zero exit of the app becomes process.exit(1); each chunk of the app's stderr is echoed
 * to cdktf's stdout as it arrives ("[ERROR] default - …") and all of it is repeated in cdktf's
 * failure summary on stderr. The app cannot change either, so the contract under cdktf is: exit
 * code 1, each problem once on cdktf's stderr, nothing written. `npm run synth` exits 2 (README).
 */
function runCdktf(caseName: string | undefined): Run {
  const root = materialise(caseName === undefined ? undefined : findCase(caseName));
  dirs.push(root);
  fs.writeFileSync(path.join(root, 'cdktf.json'), JSON.stringify({ language: 'typescript', app: `"${process.execPath}" "${MAIN}"`, output: 'cdktf.out', sendCrashReports: 'false' }));
  const result = spawnSync(process.execPath, [path.join(REPO, 'node_modules', 'cdktf-cli', 'bundle', 'bin', 'cdktf'), 'synth'], {
    cwd: root,
    env: { ...process.env, CHECKPOINT_DISABLE: '1', FORCE_COLOR: '0', NO_COLOR: '1' },
    encoding: 'utf8',
    timeout: 180_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, root, outdir: path.join(root, 'cdktf.out') };
}

describe('npx cdktf synth (cdktf-cli) on a bad config', () => {
  test.each(['59-many-problems-in-several-files', '181-production-publishes-data-ports'])(
    '%s: exit 1 (cdktf-cli\'s code for any failed synth), each problem once on its stderr, nothing written',
    (name) => {
      const run = runCdktf(name);
      const expected = expectedLines(findCase(name));
      const stderr = splitLines(run.stderr).map((l) => l.trim());
      expect(run.status).toBe(1);
      for (const line of expected) expect({ line, times: stderr.filter((l) => l === line).length }).toEqual({ line, times: 1 });
      expect(stderr).toContain(`${expected.length} problem(s) in the configuration under ${run.root}; nothing was written.`);
      expect(stderr.filter((l) => /^at .+:\d+:\d+\)?$/.test(l))).toEqual([]);
      expect(fs.existsSync(run.outdir) ? written(run.outdir) : []).toEqual([]);
    },
    180_000,
  );

  test('the valid base config: exit 0 and a stack for every environment', () => {
    const run = runCdktf(undefined);
    expect({ status: run.status, errors: splitLines(run.stderr).filter((l) => /error/i.test(l)) }).toEqual({ status: 0, errors: [] });
    for (const env of ['dev', 'nas', 'prod', 'win']) expect({ env, exists: fs.existsSync(path.join(run.outdir, 'stacks', env, 'cdk.tf.json')) }).toEqual({ env, exists: true });
  }, 180_000);
});

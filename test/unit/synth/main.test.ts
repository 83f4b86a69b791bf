import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { AGENT_CONTEXT_DIR, agentImageContext, writeAgentImageContext } from '../../../stacks/backup-image';
import { nfsPrepareScript } from '../../../stacks/nfs-prepare';
import { loadOrThrow, REPO_ROOT, writeConfig } from './support';

/*
 * main.ts as users run it (`npm run synth`): compiled JS, in a child process, configured by
 * TENANTRY_CONFIG_DIR and CDKTF_OUTDIR. It has to be compiled: it finds package.json and the
 * agent image's sources relative to its own compiled location (dist/..), so it cannot run from
 * source. The build goes to a scratch directory (with copies of those files beside dist/), never
 * to the shared dist/.
 */

let build: string;

beforeAll(() => {
  // Inside the repository, whatever TMPDIR is: the compiled app finds node_modules by walking up.
  fs.mkdirSync(path.join(REPO_ROOT, '.tmp'), { recursive: true });
  build = fs.mkdtempSync(path.join(REPO_ROOT, '.tmp', 'tenantry-main-build-'));
  // Beside dist/ as in the repository: package.json, and what the agent image's Dockerfile copies.
  writeAgentImageContext(agentImageContext(REPO_ROOT), build);
  const tsc = spawnSync(path.join(REPO_ROOT, 'node_modules', '.bin', 'tsc'), ['-p', path.join(REPO_ROOT, 'tsconfig.json'), '--outDir', path.join(build, 'dist')], {
    encoding: 'utf8',
  });
  // Type errors elsewhere in the tree (work in progress) still emit JS; only a missing main.js is fatal here.
  if (!fs.existsSync(path.join(build, 'dist', 'main.js'))) throw new Error(`tsc did not produce main.js:\n${tsc.stdout}${tsc.stderr}`);
}, 120_000);

afterAll(() => fs.rmSync(build, { recursive: true, force: true }));

function runMain(configDir: string, outdir: string) {
  return spawnSync(process.execPath, [path.join(build, 'dist', 'main.js')], {
    cwd: configDir,
    encoding: 'utf8',
    env: { ...process.env, TENANTRY_CONFIG_DIR: configDir, CDKTF_OUTDIR: outdir },
  });
}

test('synthesizes every example environment to cdktf.out/stacks/<env>/cdk.tf.json, byte-identical on a second run', () => {
  const outdir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tenantry-main-out-')), 'cdktf.out');
  const read = () => ['dev', 'prod'].map((env) => fs.readFileSync(path.join(outdir, 'stacks', env, 'cdk.tf.json')));

  const first = runMain(REPO_ROOT, outdir);
  expect({ status: first.status, stderr: first.stderr }).toEqual({ status: 0, stderr: '' });
  expect(first.stdout).toContain('synthesized 2 environment(s), 4 tenant deployment(s)');
  const before = read();
  // prod is on NFS: its export's preparation script sits beside its stack (test/unit/synth/nfs-prepare.test.ts runs it).
  const prodScript = path.join(outdir, 'stacks', 'prod', 'nfs-prepare.sh');
  expect(fs.statSync(prodScript).mode & 0o777).toBe(0o755);
  expect(fs.readFileSync(prodScript, 'utf8')).toBe(nfsPrepareScript(loadOrThrow(REPO_ROOT).environments.find((e) => e.name === 'prod')!));
  // dev is not (any more): a script left from when it was is removed, as it would prepare directories nothing mounts.
  fs.writeFileSync(path.join(outdir, 'stacks', 'dev', 'nfs-prepare.sh'), 'stale');

  const second = runMain(REPO_ROOT, outdir);
  expect(second.status).toBe(0);
  const after = read();
  expect(after[0].equals(before[0]) && after[1].equals(before[1])).toBe(true);
  expect(fs.existsSync(path.join(outdir, 'stacks', 'dev', 'nfs-prepare.sh'))).toBe(false);
  expect(fs.existsSync(prodScript)).toBe(true);
  expect(fs.readdirSync(path.dirname(outdir)).filter((n) => n.includes('.partial-'))).toEqual([]);
  // The agent image's build context sits beside the stacks, exactly the files its Dockerfile copies.
  expect(listFiles(path.join(outdir, AGENT_CONTEXT_DIR))).toEqual(agentImageContext(REPO_ROOT).files.map((f) => f.path));
  fs.rmSync(path.dirname(outdir), { recursive: true, force: true });
});

// A policy the aspects enforce (constructs/policy.ts) is refused by the loader first, at its key,
// with every other problem; the aspects stay as the guard for constructs used as a library.
test('a policy error (an image tagged latest) is reported at its key, exit code 2, nothing written', () => {
  const root = writeConfig({
    'environments/dev.yaml': {
      name: 'dev',
      docker: { host: 'unix:///var/run/docker.sock' },
      network: { name: 'tenantry-dev', subnet: '172.30.0.0/16' },
      storage: { kind: 'volume' },
      images: { postgres: 'postgres:latest' },
    },
    'tenants/acme.yaml': { name: 'acme', environments: ['dev'], services: { postgres: {} } },
  });
  const outdir = path.join(root, 'cdktf.out');

  const result = runMain(root, outdir);

  expect({ status: result.status, stderr: result.stderr }).toEqual({
    status: 2,
    stderr: [
      `environments/dev.yaml:10:13: images.postgres: "postgres:latest" is not pinned to a version, so each deploy may pull a different image: name one, e.g. "postgres:<version>" (not "latest"), or a digest "postgres@sha256:…"`,
      `1 problem(s) in the configuration under ${root}; nothing was written.`,
      '',
    ].join('\n'),
  });
  expect(fs.existsSync(path.join(outdir, 'stacks', 'dev', 'cdk.tf.json'))).toBe(false);
});

/** Every file below `dir`, relative and "/"-separated, sorted. */
function listFiles(dir: string, prefix = ''): string[] {
  return fs
    .readdirSync(path.join(dir, prefix), { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? listFiles(dir, path.posix.join(prefix, e.name)) : [path.posix.join(prefix, e.name)]))
    .sort();
}

import { spawnSync } from 'child_process';
import * as path from 'path';
import { localStatePath } from '../../stacks/environment-app';
import { loadOrThrow, REPO_ROOT } from './synth/support';

/*
 * Nothing secret or large is committed by accident: Terraform state (every secret in plain text),
 * saved plans, the providers Terraform downloads, the development data roots. Asked of git itself
 * (`git check-ignore`), for the paths where Tenantry's own code puts them for the example config.
 */

function git(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('git', ['-C', REPO_ROOT, ...args], { input, encoding: 'utf8' });
  if (result.error) throw new Error(`git is needed for this test: ${result.error.message}`);
  return result;
}

/** Those of `paths` (relative to the repository) that .gitignore does not cover. */
function notIgnored(paths: readonly string[]): string[] {
  const result = git(['check-ignore', '--no-index', '--stdin'], paths.join('\n') + '\n');
  if (result.status !== 0 && result.status !== 1) throw new Error(`git check-ignore failed: ${result.stderr}`);
  const ignored = new Set(result.stdout.split('\n').filter(Boolean));
  return paths.filter((p) => !ignored.has(p));
}

const config = loadOrThrow(REPO_ROOT);
const outdir = path.join(REPO_ROOT, 'cdktf.out');
const inRepo = (absolute: string) => path.relative(REPO_ROOT, absolute).split(path.sep).join('/');

describe('.gitignore keeps secrets and bulk out of git', () => {
  test('the example config has a local backend and a bind data root inside the repository (so the next tests check something)', () => {
    expect(config.environments.some((e) => e.backend.kind === 'local')).toBe(true);
    expect(config.environments.some((e) => e.storage.kind === 'bind' && !inRepo(e.storage.dataRoot).startsWith('..'))).toBe(true);
  });

  test('local state where synth points Terraform, its backup and its lock file', () => {
    const paths = config.environments.flatMap((env) => {
      const relative = localStatePath(REPO_ROOT, outdir, env);
      if (relative === undefined) return [];
      const state = path.resolve(outdir, 'stacks', env.name, relative);
      return [inRepo(state), `${inRepo(state)}.backup`, inRepo(path.join(path.dirname(state), `.${path.basename(state)}.lock.info`))];
    });
    expect(paths).toContain('terraform.dev.tfstate');
    expect(notIgnored(paths)).toEqual([]);
  });

  test('a backend.path anywhere under the config directory (it must end in .tfstate)', () => {
    expect(notIgnored(['state/prod.tfstate', 'environments/dev.tfstate', 'ops/state/qa.tfstate.backup'])).toEqual([]);
  });

  test('.terraform/ (downloaded providers) in the stack working directory and anywhere else, saved plans, crash logs', () => {
    expect(notIgnored(['cdktf.out/stacks/dev/.terraform/providers/x', '.terraform/modules/m', 'stacks/.terraform/x', 'dev.tfplan', 'tfplan', 'crash.log'])).toEqual([]);
  });

  test('the development data roots under the config directory, scratch and build output', () => {
    const dataRoots = config.environments.flatMap((e) => (e.storage.kind === 'bind' ? [inRepo(e.storage.dataRoot)] : [])).filter((p) => !p.startsWith('..'));
    expect(notIgnored([...dataRoots.map((root) => `${root}/acme/postgres/data/PG_VERSION`), '.tmp/jest/x', 'cdktf.out/manifest.json', 'cdktf.out.partial-123/manifest.json', 'dist/main.js'])).toEqual([]);
  });

  test('no tracked file is one of those', () => {
    expect(git(['ls-files', '--cached', '--ignored', '--exclude-standard']).stdout).toBe('');
  });

  test('the source itself is not ignored', () => {
    expect(notIgnored(['runtime/agent/Dockerfile', 'environments/dev.yaml', 'test/config/base/environments/dev.yaml', 'docs/agent-config.md'])).toHaveLength(4);
  });
});
